// Case 2: a small snapshot (3 files, 1 MB) written the memory service's way (file by file, in
// 64 KiB chunks, mtimes copied from the source), while the agent runs. Latency: from the end of
// the last write (the utimes of the last file) to the 'snapshot uploaded' line, which the agent
// logs once the manifest PUT has been answered; each manifest is then checked with a HEAD.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeBackup } from '../../demo/backup-writer.js';
import { log, type BenchContext } from '../lib/context.js';
import { TreeSampler } from '../lib/measure.js';
import { formatMs, median, percentile } from '../lib/stats.js';

const DROP_TIMEOUT_MS = 60_000;

export async function runLatency(ctx: BenchContext): Promise<void> {
  const caseName = `2. latency (1 MB, ${ctx.scale.latencyDrops} drops)`;
  const home = ctx.dir('runs', 'c2');
  const prefix = 'c2/';
  const backupDir = path.join(home, 'backups');
  const vars = await ctx.memsyncVars({ backupDir, stateDir: path.join(home, 'state'), prefix });
  const { agent } = await ctx.startAgent(vars, 'c2');
  const sampler = new TreeSampler(agent.pid, 250).start();
  const latencies: number[] = [];
  const uploadMs: number[] = [];
  try {
    sampler.mark();
    const first = Date.UTC(2026, 10, 25, 4, 0, 0);
    for (let i = 0; i < ctx.scale.latencyDrops; i += 1) {
      const files = [
        { name: 'metadata.json', bytes: Buffer.from(JSON.stringify({ memories: randomBytes(340_000).toString('base64') })) },
        { name: 'config.json', bytes: Buffer.from(JSON.stringify({ embedding_model: 'all-MiniLM-L6-v2', dimension: 384, drop: i })) },
        { name: 'index.faiss', bytes: randomBytes(545_000) },
      ];
      const since = agent.logs.length;
      const written = await writeBackup(backupDir, { prefix: 'auto', time: new Date(first + i * 1000), files });
      const lastWriteMs = performance.now();
      const line = await agent.waitFor((l) => l.message === 'snapshot uploaded' && l.snapshot === written.name, DROP_TIMEOUT_MS, `upload of ${written.name}`, since);
      latencies.push(line.atMs - lastWriteMs);
      uploadMs.push(Number(line.durationMs));
      if (!(await ctx.headExists(`${prefix}${written.name}/.memsync-manifest.json`))) throw new Error(`no manifest for ${written.name}`);
      await sleep(200);
    }
    const usage = sampler.window();
    const p50 = median(latencies);
    const p95 = percentile(latencies, 95);
    log(`${caseName}: p50 ${formatMs(p50)}, p95 ${formatMs(p95)} (settle ${ctx.settleMs} ms)`);
    ctx.record({
      caseName,
      tool: 'memsync',
      runs: [{ ...usage, wallMs: p50 }],
      work: undefined,
      throughputText: `p50 ${formatMs(p50)}, p95 ${formatMs(p95)}, max ${formatMs(Math.max(...latencies))}`,
      peer: false,
    });
    ctx.note(
      `case 2: settle window ${ctx.settleMs} ms; latencies (ms) ${latencies.map((l) => Math.round(l)).join(' ')}; memsync's upload part (settled -> manifest) p50 ${formatMs(median(uploadMs))}, p95 ${formatMs(percentile(uploadMs, 95))}; CPU and RSS columns cover the whole series`,
    );
  } finally {
    sampler.stop();
    await agent.stop();
    await rm(home, { recursive: true, force: true });
  }
}
