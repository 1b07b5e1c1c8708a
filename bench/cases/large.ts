// Case 1: one large backup, from the drop (a complete folder renamed into the watched directory)
// to the verified remote copy. memsync: the running agent, until its 'snapshot uploaded' line
// (written after every object was verified and the manifest stored). Peers: a recursive copy of
// the same folder. Then memsync alone at two index sizes, to show its memory does not follow them.
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { alternate, log, type BenchContext } from '../lib/context.js';
import { writeLargeSnapshot } from '../lib/data.js';
import { TreeSampler, timeCommand, type Usage } from '../lib/measure.js';
import { PEERS, uploadCommand, type PeerName } from '../lib/peers.js';
import { formatBytes, formatMs } from '../lib/stats.js';

export const LARGE_NAME = 'auto_20261125_020000';
const UPLOAD_TIMEOUT_MS = 15 * 60_000;

export interface LargeData {
  dir: string;
  bytes: number;
}

export async function prepareLarge(ctx: BenchContext): Promise<LargeData> {
  const { indexBytes, metadataBytes } = ctx.scale.large;
  const parent = ctx.dir('data', 'large');
  const t0 = performance.now();
  const dir = await writeLargeSnapshot(parent, LARGE_NAME, indexBytes, metadataBytes);
  log(`wrote ${LARGE_NAME} (${formatBytes(indexBytes + metadataBytes)}) in ${formatMs(performance.now() - t0)}`);
  return { dir, bytes: indexBytes + metadataBytes + 100 };
}

/** Drops `sourceDir` into a fresh agent's backup directory and times it to 'snapshot uploaded'. */
export async function memsyncDrop(ctx: BenchContext, sourceDir: string, prefix: string, label: string): Promise<Usage & { uploadMs: number }> {
  const name = path.basename(sourceDir);
  const home = ctx.dir('runs', label);
  const backupDir = path.join(home, 'backups');
  const vars = await ctx.memsyncVars({ backupDir, stateDir: path.join(home, 'state'), prefix });
  const { agent } = await ctx.startAgent(vars, label);
  const sampler = new TreeSampler(agent.pid, 100).start();
  const dropped = path.join(backupDir, name);
  try {
    sampler.mark();
    const t0 = performance.now();
    await rename(sourceDir, dropped);
    const line = await agent.waitFor((l) => l.message === 'snapshot uploaded' && l.snapshot === name, UPLOAD_TIMEOUT_MS, `upload of ${name}`);
    const usage = sampler.window();
    if (!(await ctx.headExists(`${prefix}${name}/.memsync-manifest.json`))) throw new Error(`${label}: no manifest after 'snapshot uploaded'`);
    return { ...usage, wallMs: line.atMs - t0, uploadMs: Number(line.durationMs) };
  } finally {
    sampler.stop();
    await agent.stop();
    await rename(dropped, sourceDir).catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  }
}

export async function peerUpload(ctx: BenchContext, tool: PeerName, sourceDir: string, prefix: string): Promise<Usage> {
  const { command, args, env } = uploadCommand(ctx.peers, tool, sourceDir, ctx.bucket, `${prefix}${path.basename(sourceDir)}`);
  return timeCommand(command, args, { env, timeoutMs: UPLOAD_TIMEOUT_MS, timeFile: ctx.timeFile() });
}

export async function runLarge(ctx: BenchContext, large: LargeData): Promise<void> {
  const caseName = `1. large backup (${formatBytes(large.bytes)})`;
  const runs: Record<string, Usage[]> = { memsync: [], aws: [], rclone: [] };
  const uploadMs: number[] = [];
  for (let rep = 0; rep < ctx.scale.reps; rep += 1) {
    for (const tool of alternate(['memsync', ...PEERS] as const, rep)) {
      const prefix = `c1/${tool}/r${rep + 1}/`;
      const usage = tool === 'memsync' ? await memsyncDrop(ctx, large.dir, prefix, `c1-r${rep + 1}`) : await peerUpload(ctx, tool, large.dir, prefix);
      if ('uploadMs' in usage && typeof usage.uploadMs === 'number') uploadMs.push(usage.uploadMs);
      runs[tool]?.push(usage);
      log(`${caseName} rep ${rep + 1} ${tool}: ${formatMs(usage.wallMs)}, ${formatBytes(usage.peakRssBytes)}, ${usage.cpuS.toFixed(1)} s CPU`);
    }
  }
  for (const tool of ['memsync', ...PEERS]) ctx.record({ caseName, tool, runs: runs[tool] ?? [], work: { bytes: large.bytes }, peer: tool !== 'memsync' });
  ctx.note(`case 1: memsync's own upload time (settled -> manifest written, from its log) per rep: ${uploadMs.map(formatMs).join(', ')}; the rest of its wall time is the ${ctx.settleMs} ms settle window and detection`);
}

/** memsync alone at two index sizes: peak RSS must not follow the file size. */
export async function runRssScaling(ctx: BenchContext): Promise<void> {
  for (const [i, indexBytes] of ctx.scale.rssSizes.entries()) {
    const caseName = `1b. memory vs size (${formatBytes(indexBytes)} index)`;
    const parent = ctx.dir('data', `rss-${i}`);
    const dir = await writeLargeSnapshot(parent, `auto_20261125_03000${i}`, indexBytes, 0);
    try {
      const usage = await memsyncDrop(ctx, dir, `c1b/${i}/`, `c1b-${i}`);
      log(`${caseName}: ${formatMs(usage.wallMs)}, ${formatBytes(usage.peakRssBytes)}`);
      ctx.record({ caseName, tool: 'memsync', runs: [usage], work: { bytes: indexBytes }, peer: false });
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  }
}
