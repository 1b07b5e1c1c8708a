// Case 8: a burst as the memory service makes it. Backups are written into the running agent's
// backup directory one after another at a fixed pace (1,000 in 60 s; 100 in 6 s at small scale),
// file by file with the service's writer (demo/backup-writer.ts), and after each one the service's
// prune runs (the 10 newest by mtime plus the 2 newest of every prefix stay). Most folders are
// gone before they could settle; what counts is that the newest is complete remotely soon after
// its last write, and that no request goes to a snapshot already removed.
//
// Requests are counted from the server's own log (bench/lib/rgw-requests.ts), one access line per
// request with its start time; bytes are the sizes of the files PUT, known from what was written.
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { randomFillSync } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { prune, writeBackup, type BackupFile } from '../../demo/backup-writer.js';
import { seededRandom } from '../../test/helpers/random.js';
import { log, type BenchContext } from '../lib/context.js';
import { accountBurst, describeTally, type BurstAccount, type BurstSnapshot } from '../lib/burst-accounting.js';
import { loadAverage, TreeSampler, type Usage } from '../lib/measure.js';
import { RgwRequestLog } from '../lib/rgw-requests.js';
import { formatBytes, formatMs, median } from '../lib/stats.js';

const FILES = ['metadata.json', 'config.json', 'index.faiss'] as const;
const MIN_FILE_BYTES = 4 * 1024;
const MAX_FILE_BYTES = 100 * 1024;
/** What the service keeps besides the 2 newest of every prefix. */
const KEEP_NEWEST = 10;
const COMPLETE_TIMEOUT_MS = 5 * 60_000;
/** Margin the goal allows after the settle window: the newest complete within settle + this. */
const GOAL_MARGIN_MS = 2000;

interface BurstPlan {
  backups: number;
  durationMs: number;
}

function planFor(ctx: BenchContext): BurstPlan {
  return ctx.scale.name === 'full' ? { backups: 1000, durationMs: 60_000 } : { backups: 100, durationMs: 6000 };
}

/** Scheduled backups most of the time, a manual one every 25th, one before a restore every 100th. */
function prefixFor(index: number): string {
  if (index % 100 === 50) return 'pre_restore';
  if (index % 25 === 0) return 'manual';
  return 'auto';
}

interface RunResult {
  usage: Usage;
  newestCompleteMs: number;
  survivorsCompleteMs: number;
  maxWriteLagMs: number;
  survivors: number;
  uploaded: number;
  uploadedThenPruned: number;
  account: BurstAccount;
  leftovers: number;
}

export async function runServiceBurst(ctx: BenchContext): Promise<void> {
  const plan = planFor(ctx);
  const caseName = `8. burst as the service makes it (${plan.backups} backups in ${plan.durationMs / 1000} s)`;
  const results: RunResult[] = [];
  for (let rep = 0; rep < ctx.scale.reps; rep += 1) {
    const result = await runOnce(ctx, plan, `c8/r${rep + 1}/`, `c8-r${rep + 1}`);
    results.push(result);
    const a = result.account;
    log(
      `${caseName} rep ${rep + 1}: newest complete ${formatMs(result.newestCompleteMs)} after its last write, all ${result.survivors} kept complete after ${formatMs(result.survivorsCompleteMs)}; ` +
        `uploaded ${result.uploaded} (${result.uploadedThenPruned} later pruned); requests ${describeTally(a.total)}; ` +
        `to snapshots pruned before complete ${describeTally(a.prunedBeforeComplete)}, ${formatBytes(a.prunedBeforeComplete.fileBytesPut)} of files, ${a.prunedBeforeComplete.snapshotsWithRequests} of ${a.prunedBeforeComplete.snapshots} snapshots; ` +
        `after local removal ${describeTally(a.afterRemoval)} on ${a.afterRemoval.snapshots} snapshots${a.afterRemoval.delaysMs.length === 0 ? '' : `, ${formatMs(Math.min(...a.afterRemoval.delaysMs))} to ${formatMs(Math.max(...a.afterRemoval.delaysMs))} after`}; ` +
        `leftover objects of incomplete snapshots ${result.leftovers}; writer at most ${formatMs(result.maxWriteLagMs)} behind its pace (load ${loadAverage()})`,
    );
  }
  const goalMs = ctx.settleMs + GOAL_MARGIN_MS;
  ctx.record({
    caseName,
    tool: 'memsync',
    runs: results.map((r) => r.usage),
    work: undefined,
    throughputText: `newest complete ${formatMs(median(results.map((r) => r.newestCompleteMs)))} after its last write (goal ${formatMs(goalMs)})`,
    peer: false,
  });
  const sum = (f: (r: RunResult) => number): string => results.map(f).join(', ');
  ctx.note(
    `case 8: ${plan.backups} backups (${FILES.length} files of 4 to 100 KiB each; prefixes auto, manual every 25th, pre_restore every 100th) written one file after another at a fixed pace into the agent's directory, the service's prune after each; ` +
      `wall = last write of the newest backup -> its 'snapshot uploaded' (goal: within the settle window + 2 s = ${formatMs(goalMs)}). Per rep: ` +
      `newest complete after ${sum((r) => Math.round(r.newestCompleteMs))} ms; all kept (${results[0]?.survivors ?? '?'}) complete after ${sum((r) => Math.round(r.survivorsCompleteMs))} ms; ` +
      `uploaded ${sum((r) => r.uploaded)}, of them later pruned ${sum((r) => r.uploadedThenPruned)}; ` +
      `requests to snapshots pruned before complete ${sum((r) => r.account.prunedBeforeComplete.requests)} (${sum((r) => r.account.prunedBeforeComplete.fileBytesPut)} file bytes); ` +
      `requests started after the snapshot's local removal ${sum((r) => r.account.afterRemoval.requests)}; leftover objects of incomplete snapshots ${sum((r) => r.leftovers)}. ` +
      `Requests from the server's access log (start times), bytes from the sizes of the files PUT.`,
  );
}

async function runOnce(ctx: BenchContext, plan: BurstPlan, prefix: string, label: string): Promise<RunResult> {
  const home = ctx.dir('runs', label);
  const backupDir = path.join(home, 'backups');
  const vars = await ctx.memsyncVars({ backupDir, stateDir: path.join(home, 'state'), prefix });
  const requestLog = new RgwRequestLog(ctx.rgw.stateDir, ctx.bucket);
  const { agent } = await ctx.startAgent(vars, label);
  const sampler = new TreeSampler(agent.pid, 100).start();
  const snapshots = new Map<string, BurstSnapshot>();
  const random = seededRandom(8);
  const buffer = Buffer.allocUnsafe(MAX_FILE_BYTES);
  try {
    await requestLog.mark();
    sampler.mark();
    const intervalMs = plan.durationMs / plan.backups;
    const firstTime = Date.UTC(2026, 11, 1, 0, 0, 0);
    const t0 = performance.now();
    let maxWriteLagMs = 0;
    let newest = '';
    let lastWriteMs = 0;
    let kept: string[] = [];
    for (let i = 0; i < plan.backups; i += 1) {
      const dueMs = t0 + i * intervalMs;
      const waitMs = dueMs - performance.now();
      if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
      else maxWriteLagMs = Math.max(maxWriteLagMs, -waitMs);
      const files: BackupFile[] = FILES.map((name) => {
        const size = MIN_FILE_BYTES + Math.floor(random() * (MAX_FILE_BYTES - MIN_FILE_BYTES + 1));
        randomFillSync(buffer, 0, size);
        return { name, bytes: Buffer.from(buffer.subarray(0, size)) };
      });
      // Names one second apart: the service's names have a resolution of one second, faster than that they would collide.
      const written = await writeBackup(backupDir, { prefix: prefixFor(i), time: new Date(firstTime + i * 1000), files });
      lastWriteMs = performance.now();
      newest = written.name;
      snapshots.set(written.name, { fileBytes: new Map(files.map((f) => [f.name, f.bytes.length])), removedAtMs: undefined, uploaded: false });
      const pruned = await prune(backupDir, KEEP_NEWEST);
      const removedAtMs = Date.now();
      for (const name of pruned.deleted) {
        const snapshot = snapshots.get(name);
        if (snapshot !== undefined) snapshot.removedAtMs = removedAtMs;
      }
      kept = pruned.kept;
    }
    const uploadedLine = (name: string) => agent.waitFor((l) => l.message === 'snapshot uploaded' && l.snapshot === name, COMPLETE_TIMEOUT_MS, `'snapshot uploaded' of ${name}`);
    const newestLine = await uploadedLine(newest);
    let lastSurvivorMs = newestLine.atMs;
    for (const name of kept) lastSurvivorMs = Math.max(lastSurvivorMs, (await uploadedLine(name)).atMs);
    const usage = { ...sampler.window(), wallMs: newestLine.atMs - lastWriteMs };
    await agent.stop();
    const requests = await requestLog.since(ctx.s3);
    const uploadedNames = new Set(agent.logs.filter((l) => l.message === 'snapshot uploaded').map((l) => String(l.snapshot)));
    for (const [name, snapshot] of snapshots) snapshot.uploaded = uploadedNames.has(name);
    const account = accountBurst(requests, prefix, snapshots);
    return {
      usage,
      newestCompleteMs: newestLine.atMs - lastWriteMs,
      survivorsCompleteMs: lastSurvivorMs - lastWriteMs,
      maxWriteLagMs,
      survivors: kept.length,
      uploaded: uploadedNames.size,
      uploadedThenPruned: [...snapshots.values()].filter((s) => s.uploaded && s.removedAtMs !== undefined).length,
      account,
      leftovers: await leftoverObjects(ctx, prefix, uploadedNames),
    };
  } finally {
    sampler.stop();
    await agent.stop();
    await rm(home, { recursive: true, force: true });
  }
}

/** Objects under names memsync never completed: what an abandoned upload failed to clean up. */
async function leftoverObjects(ctx: BenchContext, prefix: string, uploaded: ReadonlySet<string>): Promise<number> {
  let leftovers = 0;
  let token: string | undefined;
  for (let page = 0; page < 1000; page += 1) {
    const answer = await ctx.s3.send(new ListObjectsV2Command({ Bucket: ctx.bucket, Prefix: prefix, ContinuationToken: token }));
    for (const item of answer.Contents ?? []) if (!uploaded.has((item.Key ?? '').slice(prefix.length).split('/')[0] ?? '')) leftovers += 1;
    if (answer.IsTruncated !== true) break;
    token = answer.NextContinuationToken;
  }
  return leftovers;
}
