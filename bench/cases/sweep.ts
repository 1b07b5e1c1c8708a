// Case 4: a sweep over many local snapshots that are all uploaded already: how long and how much
// memory to conclude there is nothing to do. Set-up: the agent uploads the tree once (its digest
// cache is then warm, as in production). Measured: the agent from spawn to its start sweep's
// 'sweep finished' line, and the `memsync status` command, against the peers' dry runs over the
// same local tree and the same remote prefix. "Nothing re-hashed" is checked from outside: the
// bytes the agent read (/proc/PID/io rchar) stay far below the tree's size.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { AgentRun, memsyncCommandArgs, memsyncEnv } from '../lib/agent.js';
import { alternate, log, type BenchContext } from '../lib/context.js';
import { writeTree } from '../lib/data.js';
import { TreeSampler, readChars, timeCommand, type Usage } from '../lib/measure.js';
import { PEERS, dryRunCommand, dryRunTransfers } from '../lib/peers.js';
import { formatBytes, formatMs } from '../lib/stats.js';

const SETUP_TIMEOUT_MS = 30 * 60_000;
const SWEEP_TIMEOUT_MS = 10 * 60_000;

export async function runSweep(ctx: BenchContext): Promise<void> {
  const count = ctx.scale.sweepSnapshots;
  const caseName = `4. sweep, nothing new (${count} snapshots)`;
  const backupDir = ctx.dir('data', 'sweep');
  const stateDir = ctx.dir('runs', 'c4-state');
  const prefix = 'c4/';
  const tree = await writeTree(backupDir, {
    count,
    prefix: 'auto',
    firstTime: new Date(Date.UTC(2025, 0, 1, 0, 0, 0)),
    files: ['metadata.json', 'config.json'],
    // Large enough that a re-read of the tree would show plainly in the bytes the agent reads.
    minFileBytes: 4 * 1024,
    maxFileBytes: 16 * 1024,
    seed: 4,
  });
  try {
    const vars = await ctx.memsyncVars({ backupDir, stateDir, prefix });
    await setUp(ctx, vars, count, tree.files + count, prefix);

    const runs: Record<string, Usage[]> = { memsync: [], 'memsync status': [], aws: [], rclone: [] };
    const reads: number[] = [];
    for (let rep = 0; rep < ctx.scale.reps; rep += 1) {
      for (const tool of alternate(['memsync', 'memsync status', ...PEERS] as const, rep)) {
        let usage: Usage;
        if (tool === 'memsync') {
          const result = await agentSweep(ctx, vars, count);
          usage = result.usage;
          reads.push(result.readBytes);
        } else if (tool === 'memsync status') {
          const result = await timeCommand(process.execPath, memsyncCommandArgs(['status', '--json']), { env: memsyncEnv(vars), timeoutMs: SWEEP_TIMEOUT_MS, timeFile: ctx.timeFile() });
          const report = JSON.parse(result.stdout) as { inSync?: unknown[]; pending?: unknown[] };
          usage = result;
          if (report.inSync?.length !== count || report.pending?.length !== 0) throw new Error(`memsync status: inSync ${report.inSync?.length}, pending ${report.pending?.length}`);
        } else {
          const { command, args, env } = dryRunCommand(ctx.peers, tool, backupDir, ctx.bucket, prefix.slice(0, -1));
          const result = await timeCommand(command, args, { env, timeoutMs: SWEEP_TIMEOUT_MS, timeFile: ctx.timeFile() });
          const transfers = dryRunTransfers(tool, result.stdout, result.stderr);
          if (transfers !== 0) throw new Error(`${tool} dry run would transfer ${transfers} files\n${result.stderr.slice(-1500)}`);
          usage = result;
        }
        runs[tool]?.push(usage);
        log(`${caseName} rep ${rep + 1} ${tool}: ${formatMs(usage.wallMs)}, ${formatBytes(usage.peakRssBytes)}, ${usage.cpuS.toFixed(1)} s CPU`);
      }
    }
    for (const tool of ['memsync', 'memsync status', ...PEERS]) ctx.record({ caseName, tool, runs: runs[tool] ?? [], work: { objects: tree.files }, peer: PEERS.includes(tool as 'aws') });
    ctx.note(
      `case 4: ${count} snapshots, ${tree.files} local files (${formatBytes(tree.bytes)}), ${tree.files + count} objects remote; memsync's time is agent spawn -> 'sweep finished' (reason start), so it includes Node start-up, config, the bucket probe and the watcher's start (one watch on the backup directory; nothing inside uploaded snapshots is watched), which the sweep waits for; bytes read by the agent per sweep (rchar): ${reads.map(formatBytes).join(', ')} against ${formatBytes(tree.bytes)} of file data`,
    );
  } finally {
    await rm(backupDir, { recursive: true, force: true });
    await rm(stateDir, { recursive: true, force: true });
  }
}

/** The first upload of the tree, by the agent (concurrency 16 to save bench time), then a clean stop that saves the digest cache. */
async function setUp(ctx: BenchContext, vars: Record<string, string>, count: number, objects: number, prefix: string): Promise<void> {
  const t0 = performance.now();
  const agent = new AgentRun(memsyncEnv({ ...vars, CLOUD_SYNC_CONCURRENCY: '16' }));
  try {
    await agent.waitForCount('snapshot uploaded', count, SETUP_TIMEOUT_MS);
  } finally {
    await agent.stop();
  }
  const stored = await ctx.countObjects(prefix);
  if (stored.objects !== objects) throw new Error(`sweep set-up: ${stored.objects} objects remote, expected ${objects}`);
  const wallMs = performance.now() - t0;
  log(`sweep set-up: ${count} snapshots uploaded in ${formatMs(wallMs)}`);
  ctx.note(`case 4 set-up: the agent (CLOUD_SYNC_CONCURRENCY=16) uploaded ${count} snapshots (${objects} objects) in ${formatMs(wallMs)}, ${((objects - count) / (wallMs / 1000)).toFixed(0)} files/s`);
}

async function agentSweep(ctx: BenchContext, vars: Record<string, string>, count: number): Promise<{ usage: Usage; readBytes: number }> {
  const t0 = performance.now();
  const { agent, sweep } = await ctx.startAgent(vars, 'c4', SWEEP_TIMEOUT_MS);
  const sampler = new TreeSampler(agent.pid, 100);
  try {
    const wallMs = (agent.logs.find((l) => l.message === 'sweep finished')?.atMs ?? Number.NaN) - t0;
    const readBytes = readChars(agent.pid) ?? Number.NaN;
    // Whole-process figures: the measured span is the process's life so far.
    const usage = { ...sampler.lifetime(), wallMs };
    if (sweep.queued !== 0 || sweep.inSync !== count) throw new Error(`sweep: queued ${String(sweep.queued)}, inSync ${String(sweep.inSync)}, expected 0 and ${count}`);
    return { usage, readBytes };
  } finally {
    await agent.stop();
  }
}
