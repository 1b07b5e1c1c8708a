// Case 6: the agent with nothing to do, watching a directory of snapshots that are all uploaded
// already (by an earlier agent run, as after a restart): CPU and RSS over a quiet window, read from
// outside the process. CPU is the sum of the threads' schedstat run times (ns), so a window of
// 60 s is not limited to the 10 ms resolution of utime/stime.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { log, type BenchContext } from '../lib/context.js';
import { writeTree } from '../lib/data.js';
import { TreeSampler } from '../lib/measure.js';
import { formatBytes } from '../lib/stats.js';

/**
 * After the start sweep. State saves (2 s debounce) are over within seconds; V8's memory reducer
 * runs its few full collections once, about 15 s after the start-up allocations (seen with
 * --trace-gc: three at 16 to 18 s), and then the process is quiet. The window starts after that,
 * so it shows the steady state; the note says what the reducer costs once.
 */
const QUIET_BEFORE_MS = 30_000;

export async function runIdle(ctx: BenchContext): Promise<void> {
  const { snapshots, seconds } = ctx.scale.idle;
  const caseName = `6. idle (${snapshots} snapshots, ${seconds} s)`;
  const home = ctx.dir('runs', 'c6');
  const backupDir = path.join(home, 'backups');
  await writeTree(backupDir, {
    count: snapshots,
    prefix: 'auto',
    firstTime: new Date(Date.UTC(2026, 0, 1, 0, 0, 0)),
    files: ['metadata.json', 'config.json', 'index.faiss'],
    minFileBytes: 4 * 1024,
    maxFileBytes: 64 * 1024,
    seed: 6,
  });
  const vars = await ctx.memsyncVars({ backupDir, stateDir: path.join(home, 'state'), prefix: 'c6/' });
  const first = await ctx.startAgent(vars, 'c6-upload');
  try {
    await first.agent.waitForCount('snapshot uploaded', snapshots, 10 * 60_000);
  } finally {
    await first.agent.stop();
  }
  const { agent, sweep } = await ctx.startAgent(vars, 'c6');
  // Sampled at the window's start and end only: reading /proc/PID/stat is charged in part to the
  // process read (about 0.2 ms a read here), so sampling every second would add ~0.3% of a core
  // to an agent that itself uses a tenth of that. Peak RSS comes from the kernel's VmHWM instead.
  const sampler = new TreeSampler(agent.pid, 24 * 3600_000).start();
  try {
    if (sweep.inSync !== snapshots) throw new Error(`idle: start sweep found ${String(sweep.inSync)} of ${snapshots} snapshots in sync`);
    sampler.mark();
    await sleep(QUIET_BEFORE_MS);
    const settling = sampler.window();
    sampler.mark();
    await sleep(seconds * 1000);
    const usage = sampler.window();
    const percentOfCore = (usage.cpuPreciseS / (usage.wallMs / 1000)) * 100;
    log(`${caseName}: ${percentOfCore.toFixed(3)}% of a core (${usage.cpuS.toFixed(2)} s by ticks), RSS now ${formatBytes(usage.rssNowBytes)}, peak ${formatBytes(usage.peakRssBytes)}`);
    ctx.record({
      caseName,
      tool: 'memsync',
      runs: [{ ...usage, cpuS: usage.cpuPreciseS }],
      work: undefined,
      throughputText: `${percentOfCore.toFixed(3)}% of a core, RSS ${formatBytes(usage.rssNowBytes)} at the end`,
      peer: false,
    });
    ctx.note(
      `case 6: a second agent started on ${snapshots} snapshots uploaded by a first one; the ${QUIET_BEFORE_MS / 1000} s after its start sweep (V8's memory reducer among them) used ${settling.cpuPreciseS.toFixed(3)} s of CPU; the window of ${seconds} s after them: CPU ${usage.cpuPreciseS.toFixed(3)} s (schedstat), ${usage.cpuS.toFixed(2)} s by utime+stime ticks; peak RSS is VmHWM since the agent started`,
    );
  } finally {
    sampler.stop();
    await agent.stop();
    await rm(home, { recursive: true, force: true });
  }
}
