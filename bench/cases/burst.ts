// Case 3: many small snapshots appearing at once. memsync: the running agent sees N complete
// folders renamed into its backup directory within a second or two, and the clock stops at its
// N-th 'snapshot uploaded' line. Peers: one recursive copy of the same tree.
import { readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { alternate, log, type BenchContext } from '../lib/context.js';
import { writeTree, type Tree } from '../lib/data.js';
import { TreeSampler, timeCommand, type Usage } from '../lib/measure.js';
import { PEERS, uploadCommand } from '../lib/peers.js';
import { formatBytes, formatMs } from '../lib/stats.js';

const BURST_TIMEOUT_MS = 20 * 60_000;

export async function runBurst(ctx: BenchContext): Promise<void> {
  const count = ctx.scale.burstSnapshots;
  const caseName = `3. burst (${count} snapshots)`;
  const treeDir = ctx.dir('data', 'burst');
  const tree = await writeTree(treeDir, {
    count,
    prefix: 'auto',
    firstTime: new Date(Date.UTC(2026, 10, 26, 0, 0, 0)),
    files: ['metadata.json', 'config.json', 'index.faiss'],
    minFileBytes: 4 * 1024,
    maxFileBytes: 100 * 1024,
    seed: 3,
  });
  log(`${caseName}: tree of ${tree.files} files, ${formatBytes(tree.bytes)}`);
  const runs: Record<string, Usage[]> = { memsync: [], aws: [], rclone: [] };
  try {
    for (let rep = 0; rep < ctx.scale.reps; rep += 1) {
      for (const tool of alternate(['memsync', ...PEERS] as const, rep)) {
        const prefix = `c3/${tool}/r${rep + 1}/`;
        let usage: Usage;
        if (tool === 'memsync') usage = await memsyncBurst(ctx, treeDir, tree, prefix, `c3-r${rep + 1}`);
        else {
          const { command, args, env } = uploadCommand(ctx.peers, tool, treeDir, ctx.bucket, prefix.slice(0, -1));
          usage = await timeCommand(command, args, { env, timeoutMs: BURST_TIMEOUT_MS, timeFile: ctx.timeFile() });
        }
        const stored = await ctx.countObjects(prefix);
        const expected = tree.files + (tool === 'memsync' ? count : 0);
        if (stored.objects !== expected) throw new Error(`${caseName} ${tool}: ${stored.objects} objects stored, expected ${expected}`);
        runs[tool]?.push(usage);
        log(`${caseName} rep ${rep + 1} ${tool}: ${formatMs(usage.wallMs)}, ${(tree.files / (usage.wallMs / 1000)).toFixed(0)} files/s, ${formatBytes(usage.peakRssBytes)}`);
      }
    }
  } finally {
    await rm(treeDir, { recursive: true, force: true });
  }
  for (const tool of ['memsync', ...PEERS]) ctx.record({ caseName, tool, runs: runs[tool] ?? [], work: { objects: tree.files }, peer: tool !== 'memsync' });
  ctx.note(`case 3: ${count} snapshots x 3 files (4 to 100 KiB), ${tree.files} files, ${formatBytes(tree.bytes)}; objects/s counts these files for every tool (memsync also writes and checks one manifest per snapshot)`);
}

async function memsyncBurst(ctx: BenchContext, treeDir: string, tree: Tree, prefix: string, label: string): Promise<Usage> {
  const home = ctx.dir('runs', label);
  const backupDir = path.join(home, 'backups');
  const vars = await ctx.memsyncVars({ backupDir, stateDir: path.join(home, 'state'), prefix });
  const { agent } = await ctx.startAgent(vars, label);
  const sampler = new TreeSampler(agent.pid, 100).start();
  try {
    sampler.mark();
    const t0 = performance.now();
    for (const name of tree.names) await rename(path.join(treeDir, name), path.join(backupDir, name));
    const droppedMs = performance.now() - t0;
    const last = await agent.waitForCount('snapshot uploaded', tree.names.length, BURST_TIMEOUT_MS);
    log(`${label}: ${tree.names.length} snapshots dropped in ${formatMs(droppedMs)}`);
    return { ...sampler.window(), wallMs: last.atMs - t0 };
  } finally {
    sampler.stop();
    await agent.stop();
    for (const name of await readdir(backupDir)) await rename(path.join(backupDir, name), path.join(treeDir, name)).catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  }
}
