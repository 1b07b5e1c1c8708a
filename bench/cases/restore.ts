// Case 5: the large snapshot of case 1 brought back into an empty directory. memsync:
// `memsync download NAME --yes` (staged, every file verified against the manifest's SHA-256,
// fsynced, renamed into place). Peers: a recursive copy down of the same remote folder.
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { memsyncCommandArgs, memsyncEnv } from '../lib/agent.js';
import { alternate, log, type BenchContext } from '../lib/context.js';
import { timeCommand, type Usage } from '../lib/measure.js';
import { PEERS, downloadCommand } from '../lib/peers.js';
import { formatBytes, formatMs } from '../lib/stats.js';
import { LARGE_NAME, memsyncDrop, type LargeData } from './large.js';

const RESTORE_TIMEOUT_MS = 15 * 60_000;

export async function runRestore(ctx: BenchContext, large: LargeData, uploadedPrefix: string | undefined): Promise<void> {
  const caseName = `5. restore (${formatBytes(large.bytes)})`;
  let prefix = uploadedPrefix;
  if (prefix === undefined) {
    prefix = 'c5/source/';
    await memsyncDrop(ctx, large.dir, prefix, 'c5-setup');
  }
  const runs: Record<string, Usage[]> = { memsync: [], aws: [], rclone: [] };
  for (let rep = 0; rep < ctx.scale.reps; rep += 1) {
    for (const tool of alternate(['memsync', ...PEERS] as const, rep)) {
      const home = ctx.dir('runs', `c5-${tool}-r${rep + 1}`);
      const backupDir = path.join(home, 'backups');
      try {
        let usage: Usage;
        if (tool === 'memsync') {
          const vars = await ctx.memsyncVars({ backupDir, stateDir: path.join(home, 'state'), prefix });
          usage = await timeCommand(process.execPath, memsyncCommandArgs(['download', LARGE_NAME, '--yes']), { env: memsyncEnv(vars), timeoutMs: RESTORE_TIMEOUT_MS, timeFile: ctx.timeFile() });
        } else {
          const target = path.join(backupDir, LARGE_NAME);
          const { command, args, env } = downloadCommand(ctx.peers, tool, ctx.bucket, `${prefix}${LARGE_NAME}`, target);
          // The peers do not fsync: `sync -f` on the directory afterwards makes their figures comparable with memsync's.
          usage = await timeCommand('/bin/sh', ['-c', '"$@" && sync -f "$TARGET"', 'sh', command, ...args], { env: { ...env, TARGET: target }, timeoutMs: RESTORE_TIMEOUT_MS, timeFile: ctx.timeFile() });
        }
        const got = await folderBytes(path.join(backupDir, LARGE_NAME));
        if (got < large.bytes - 1000) throw new Error(`${caseName} ${tool}: ${got} bytes restored, expected ${large.bytes}`);
        runs[tool]?.push(usage);
        log(`${caseName} rep ${rep + 1} ${tool}: ${formatMs(usage.wallMs)}, ${formatBytes(usage.peakRssBytes)}, ${usage.cpuS.toFixed(1)} s CPU`);
      } finally {
        await rm(home, { recursive: true, force: true });
      }
    }
  }
  for (const tool of ['memsync', ...PEERS]) ctx.record({ caseName, tool, runs: runs[tool] ?? [], work: { bytes: large.bytes }, peer: tool !== 'memsync' });
  ctx.note('case 5: memsync fsyncs every file and the directory before the rename; the peers do not fsync, so each is followed by `sync -f` on its directory, timed with it');
}

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir)) total += (await stat(path.join(dir, entry))).size;
  return total;
}
