// `npm run bench`: memsync against the AWS CLI and rclone on one local Ceph RGW (bluestore OSD),
// case by case, tools alternating, every case repeated; prints one table (markdown) and writes
// the figures to bench/results/. Not part of the test suite: nothing here asserts a time.
//
// Environment: BENCH_SCALE=full|small (default full), BENCH_REPS (default 3), BENCH_CASES=1,2,...
// (default 1 to 6; case 7, delta uploads, and case 8, a burst as the memory service writes and prunes it, run only when named), BENCH_BURST_SNAPSHOTS / BENCH_SWEEP_SNAPSHOTS (override the scale's counts),
// BENCH_SETTLE_MS (memsync's CLOUD_SYNC_SETTLE_MS, default 1000), BENCH_DIR (parent
// of the temp work dir, default the OS temp dir), BENCH_KEEP=1 (keep the work dir and the server's
// state), BENCH_CPU_PROF=DIR (run the agents with --cpu-prof into DIR), BENCH_RGW_STATE=DIR (use a
// server already started with `test/helpers/rgw/rgw-start.sh DIR`, left running; for development),
// BENCH_MEMSYNC_ENV='{"CLOUD_SYNC_CONCURRENCY":"8"}' (settings for every memsync run; the table then
// no longer shows memsync's defaults), BENCH_MEMSYNC_NODE_ARGS='--max-semi-space-size=16' (node's
// arguments for every memsync process instead of those of its built shebang; empty for none);
// case 7 also reads BENCH_DELTA_KEEP, BENCH_DELTA_MEMSYNC, BENCH_DELTA_PLAIN (see bench/cases/delta.ts).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_DIR, MEMSYNC_MAIN } from './lib/agent.js';
import { BenchContext, log, type Row } from './lib/context.js';
import { loadAverage } from './lib/measure.js';
import { configurePeers, peerVersions } from './lib/peers.js';
import { reuseRgw, startRgw, stopRgw, type Rgw } from './lib/rgw.js';
import { formatBytes, formatMs, formatRate, markdownTable, median } from './lib/stats.js';
import { SCALES, type Scale } from './scale.js';
import { prepareLarge, runLarge, runRssScaling } from './cases/large.js';
import { runLatency } from './cases/latency.js';
import { runBurst } from './cases/burst.js';
import { runServiceBurst } from './cases/burst-service.js';
import { runSweep } from './cases/sweep.js';
import { runRestore } from './cases/restore.js';
import { runIdle } from './cases/idle.js';
import { runDelta } from './cases/delta.js';

const BLUESTORE_BYTES = '60G'; // sparse: only what is written takes disk space

function settings(): { scale: Scale; cases: Set<number>; settleMs: number; parentDir: string; keep: boolean; cpuProfDir: string | undefined } {
  const scaleName = process.env.BENCH_SCALE ?? 'full';
  if (scaleName !== 'full' && scaleName !== 'small') throw new Error(`BENCH_SCALE must be full or small, not ${scaleName}`);
  const reps = Number(process.env.BENCH_REPS ?? SCALES[scaleName].reps);
  if (!Number.isInteger(reps) || reps < 1 || reps > 20) throw new Error('BENCH_REPS must be a whole number from 1 to 20');
  const cases = new Set((process.env.BENCH_CASES ?? '1,2,3,4,5,6').split(',').map((c) => Number(c.trim())));
  const settleMs = Number(process.env.BENCH_SETTLE_MS ?? 1000);
  const cpuProf = process.env.BENCH_CPU_PROF;
  const count = (name: string, fallback: number): number => {
    const value = Number(process.env[name] ?? fallback);
    if (!Number.isInteger(value) || value < 1 || value > 100_000) throw new Error(`${name} must be a whole number from 1 to 100000`);
    return value;
  };
  const base = SCALES[scaleName];
  return {
    scale: {
      ...base,
      reps,
      burstSnapshots: count('BENCH_BURST_SNAPSHOTS', base.burstSnapshots),
      sweepSnapshots: count('BENCH_SWEEP_SNAPSHOTS', base.sweepSnapshots),
    },
    cases,
    settleMs,
    parentDir: process.env.BENCH_DIR ?? os.tmpdir(),
    keep: process.env.BENCH_KEEP === '1',
    cpuProfDir: cpuProf === undefined || cpuProf === '' ? undefined : path.resolve(cpuProf),
  };
}

function machine(rgw: Rgw): Record<string, string> {
  const cpu = os.cpus();
  const sh = (command: string, args: string[]): string => {
    try {
      return execFileSync(command, args, { encoding: 'utf8' }).trim();
    } catch {
      return '?';
    }
  };
  const debian = existsSync('/etc/debian_version') ? readFileSync('/etc/debian_version', 'utf8').trim() : '?';
  return {
    cpu: `${cpu.length} x ${cpu[0]?.model ?? '?'}`,
    memory: formatBytes(os.totalmem()),
    os: `Debian ${debian}, Linux ${os.release()}`,
    disk: sh('df', ['-h', '--output=source,fstype,size,avail', PROJECT_DIR]).split('\n').pop() ?? '?',
    node: process.version,
    memsync: JSON.parse(readFileSync(path.join(PROJECT_DIR, 'package.json'), 'utf8')).version as string,
    ceph: `${rgw.cephVersion} (radosgw, 1 mon, 1 bluestore OSD on a sparse file)`,
    ...peerVersions(),
  };
}

function tableRows(rows: readonly Row[]): string[][] {
  const bestPeer = new Map<string, number>();
  for (const row of rows) {
    if (!row.peer || row.runs.length === 0) continue;
    const wall = median(row.runs.map((r) => r.wallMs));
    bestPeer.set(row.caseName, Math.min(bestPeer.get(row.caseName) ?? Number.POSITIVE_INFINITY, wall));
  }
  return rows.map((row) => {
    const wall = median(row.runs.map((r) => r.wallMs));
    const best = bestPeer.get(row.caseName);
    const throughput =
      row.throughputText ??
      (row.work === undefined ? '' : 'bytes' in row.work ? formatRate(row.work.bytes, wall) : `${(row.work.objects / (wall / 1000)).toFixed(0)} objects/s`);
    const ratio = !row.peer && best !== undefined && row.tool.startsWith('memsync') ? `${(wall / best).toFixed(2)}x` : '';
    return [
      row.caseName,
      row.tool,
      `${formatMs(wall)}${row.runs.length > 1 ? ` (n=${row.runs.length})` : ''}`,
      throughput,
      formatBytes(median(row.runs.map((r) => r.peakRssBytes))),
      median(row.runs.map((r) => r.cpuS)).toFixed(2),
      ratio,
    ];
  });
}

async function main(): Promise<void> {
  const s = settings();
  if (!existsSync(MEMSYNC_MAIN)) throw new Error(`${MEMSYNC_MAIN} not found: run npm run build first`);
  const workDir = await mkdtemp(path.join(s.parentDir, 'memsync-bench-'));
  const rgwDir = path.join(workDir, 'rgw');
  let rgwStarted = false;
  const cleanUp = async (): Promise<void> => {
    if (rgwStarted && !s.keep) await stopRgw(rgwDir).catch((error: unknown) => log(`rgw stop failed: ${String(error)}`));
    if (!s.keep) await rm(workDir, { recursive: true, force: true });
    else log(`kept ${workDir} (stop the server with test/helpers/rgw/rgw-stop.sh ${rgwDir})`);
  };
  let interrupted = false;
  process.once('SIGINT', () => {
    interrupted = true;
    log('interrupted: cleaning up');
    void cleanUp().finally(() => process.exit(130));
  });

  const t0 = performance.now();
  try {
    log(`scale ${s.scale.name}, ${s.scale.reps} reps, cases ${[...s.cases].join(',')}, work dir ${workDir} (load ${loadAverage()})`);
    const reuse = process.env.BENCH_RGW_STATE;
    rgwStarted = reuse === undefined; // from here on a half-started cluster is stopped too
    const rgw = reuse === undefined ? await startRgw(rgwDir, BLUESTORE_BYTES) : reuseRgw(reuse);
    log(`rgw up at ${rgw.endpoint} (Ceph ${rgw.cephVersion})`);
    await mkdir(path.join(workDir, 'peers'), { recursive: true });
    const peers = configurePeers(path.join(workDir, 'peers'), rgw);
    const overrides = JSON.parse(process.env.BENCH_MEMSYNC_ENV ?? '{}') as Record<string, string>;
    const ctx = new BenchContext(s.scale, rgw, peers, workDir, s.settleMs, s.cpuProfDir, overrides);
    if (Object.keys(overrides).length > 0) ctx.note(`memsync ran with ${JSON.stringify(overrides)} (BENCH_MEMSYNC_ENV), not its defaults`);
    await ctx.createBucket(reuse !== undefined);
    const machineInfo = machine(rgw);

    const needsLarge = s.cases.has(1) || s.cases.has(5);
    const large = needsLarge ? await prepareLarge(ctx) : undefined;
    if (s.cases.has(1) && large !== undefined) {
      await ctx.timedCase('1. large backup', () => runLarge(ctx, large));
      await ctx.timedCase('1b. memory vs size', () => runRssScaling(ctx));
    }
    if (s.cases.has(2)) await ctx.timedCase('2. latency', () => runLatency(ctx));
    if (s.cases.has(3)) await ctx.timedCase('3. burst', () => runBurst(ctx));
    if (s.cases.has(4)) await ctx.timedCase('4. sweep', () => runSweep(ctx));
    if (s.cases.has(5) && large !== undefined) await ctx.timedCase('5. restore', () => runRestore(ctx, large, s.cases.has(1) ? 'c1/memsync/r1/' : undefined));
    if (s.cases.has(6)) await ctx.timedCase('6. idle', () => runIdle(ctx));
    if (s.cases.has(7)) await ctx.timedCase('7. delta', () => runDelta(ctx));
    if (s.cases.has(8)) await ctx.timedCase('8. burst as the service makes it', () => runServiceBurst(ctx));

    const header = ['case', 'tool', 'median wall', 'throughput', 'peak RSS', 'CPU s', 'memsync / best peer'];
    const table = markdownTable(header, tableRows(ctx.rows));
    const loads = markdownTable(
      ['case', 'load avg before (1/5/15 min)', 'load avg after', 'case wall'],
      ctx.loads.map((l) => [l.caseName, l.before, l.after, `${l.wallS.toFixed(0)} s`]),
    );
    const totalS = (performance.now() - t0) / 1000;
    const report = [
      `scale: ${s.scale.name} (${s.scale.reps} reps), settle window ${s.settleMs} ms, total ${formatMs(totalS * 1000)}`,
      ...Object.entries(machineInfo).map(([k, v]) => `${k}: ${v}`),
      '',
      table,
      '',
      loads,
      '',
      ...ctx.notes.map((n) => `- ${n}`),
    ].join('\n');
    process.stdout.write(`${report}\n`);
    const resultsDir = path.join(PROJECT_DIR, 'bench', 'results');
    await mkdir(resultsDir, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    await writeFile(path.join(resultsDir, `${stamp}-${s.scale.name}.md`), `${report}\n`);
    await writeFile(path.join(resultsDir, `${stamp}-${s.scale.name}.json`), JSON.stringify({ settings: { ...s, cases: [...s.cases] }, machine: machineInfo, rows: ctx.rows, loads: ctx.loads, notes: ctx.notes }, null, 2));
    log(`results in ${resultsDir}`);
  } finally {
    if (!interrupted) await cleanUp();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`[bench] failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
