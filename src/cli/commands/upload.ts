import { AppError, describeError, isAppError } from '../../errors.js';
import { statSnapshotIfPresent, type SnapshotStat } from '../../snapshot/scan.js';
import type { SnapshotOutcome } from '../../upload/snapshot-uploader.js';
import type { Command } from '../args.js';
import { buildSyncGraph, readAgentFiles, type CommandContext, type SyncGraph } from '../context.js';
import { EXIT, exitCodeForKind } from '../exit-codes.js';
import { nameList } from '../format.js';
import { pollProgress } from '../progress.js';

/**
 * `memsync upload [NAME]`: the agent's own sync (Agent.syncNow: sweep, queue, verified upload,
 * manifest last) or its upload of one named snapshot, run once. Snapshots still being written
 * are waited for, as the agent's settler would, but only for a bounded time.
 */

/** On top of the settle window: how long a command waits for a snapshot still being written. */
const SETTLE_WAIT_EXTRA_MS = 60_000;

interface Failure {
  name: string;
  kind: string;
  message: string;
}

interface UploadResult {
  uploaded: string[];
  alreadyRemote: string[];
  conflicts: string[];
  failed: Failure[];
  /** Directories without files yet: nothing to upload. */
  empty: string[];
}

export async function runUpload(command: Extract<Command, { name: 'upload' }>, context: CommandContext): Promise<number> {
  const graph = buildSyncGraph(context, await readAgentFiles(context.config.stateDir, context.log));
  // Interrupted: stop the agent's jobs, which aborts multipart uploads so no parts stay billed.
  const onAbort = (): void => void graph.stop();
  context.signal.addEventListener('abort', onAbort, { once: true });
  const stopProgress = pollProgress(context.progress, () =>
    graph.agent.status().uploading.map((p) => ({ id: p.snapshot, label: `upload ${p.snapshot}`, doneBytes: p.sentBytes, totalBytes: p.totalBytes })),
  );
  const before = { ...graph.state.current.counters };
  let result: UploadResult;
  try {
    result = command.snapshot === undefined ? await uploadAll(graph, context) : await uploadOne(graph, command.snapshot, context);
  } finally {
    stopProgress();
    context.signal.removeEventListener('abort', onAbort);
    await graph.stop();
  }
  if (context.signal.aborted) return EXIT.interrupted;
  const after = graph.state.current.counters;
  context.out(resultText(result, graph, context, { sent: after.bytesUploaded - before.bytesUploaded, copied: after.bytesCopied - before.bytesCopied, delta: after.bytesDelta - before.bytesDelta }));
  if (result.conflicts.length > 0) return EXIT.conflict;
  const failure = result.failed[0];
  return failure === undefined ? EXIT.ok : exitCodeForKind(failure.kind);
}

async function uploadAll(graph: SyncGraph, context: CommandContext): Promise<UploadResult> {
  const report = await graph.agent.syncNow();
  const result: UploadResult = { uploaded: report.uploaded, alreadyRemote: report.alreadyRemote, conflicts: report.conflicts, failed: report.failed.map((name) => failureOf(graph, name)), empty: [] };
  for (const name of report.settling) {
    if (context.signal.aborted) break;
    const stat = await statSnapshotIfPresent(context.config.backupDir, name);
    if (stat !== undefined) await settleAndUpload(graph, stat, context, result);
  }
  return result;
}

async function uploadOne(graph: SyncGraph, name: string, context: CommandContext): Promise<UploadResult> {
  const stat = await statSnapshotIfPresent(context.config.backupDir, name);
  if (stat === undefined) throw new AppError('not_found', `no local snapshot named ${name} in ${context.config.backupDir}`);
  const result: UploadResult = { uploaded: [], alreadyRemote: [], conflicts: [], failed: [], empty: [] };
  // What the bucket holds decides copies and delta uploads: without a listing, every file would be sent whole.
  await graph.agent.refreshRemoteIndex();
  await settleAndUpload(graph, stat, context, result);
  return result;
}

async function settleAndUpload(graph: SyncGraph, stat: SnapshotStat, context: CommandContext, result: UploadResult): Promise<void> {
  const { name } = stat;
  if (stat.files.length === 0) {
    result.empty.push(name);
    return;
  }
  let outcome: SnapshotOutcome | undefined;
  try {
    outcome = await graph.agent.uploadWhenSettled(name, context.config.settleMs + SETTLE_WAIT_EXTRA_MS);
  } catch (error) {
    // Did not settle in time, or was removed meanwhile.
    result.failed.push({ name, kind: isAppError(error) ? error.kind : 'local_io', message: describeError(error) });
    return;
  }
  if (outcome === undefined) result.failed.push(failureOf(graph, name));
  else if (outcome.outcome === 'conflict') result.conflicts.push(name);
  else if (outcome.outcome === 'uploaded') result.uploaded.push(name);
  else result.alreadyRemote.push(name);
}

/** Why an upload failed, as the agent recorded it (in this command's copy of the state). */
function failureOf(graph: SyncGraph, name: string): Failure {
  const error = graph.state.current.lastError;
  if (error?.snapshot === name) return { name, kind: error.kind, message: error.message };
  return { name, kind: 'local_io', message: 'failed; see the messages above' };
}


/** Bytes of the snapshots uploaded by this command: sent, copied whole server-side, composed from earlier versions. */
interface Transferred {
  sent: number;
  copied: number;
  delta: number;
}

function resultText(result: UploadResult, graph: SyncGraph, context: CommandContext, bytes: Transferred): string {
  const lines: string[] = [];
  for (const name of result.uploaded) lines.push(`uploaded        ${name}`);
  for (const name of result.alreadyRemote) lines.push(`already remote  ${name}`);
  for (const name of result.empty) lines.push(`empty           ${name} (no files yet; skipped)`);
  for (const name of result.conflicts) {
    lines.push(`CONFLICT        ${name}: the bucket holds different content under this name; nothing was overwritten`);
    const record = graph.state.current.conflicts[name];
    if (record !== undefined) {
      lines.push(`                local sha256 ${record.localDigest}, remote ${record.remoteDigest}`);
      if (record.files.length > 0) lines.push(`                differing files: ${nameList(record.files.map((f) => f.path), 10)}`);
    }
  }
  for (const failure of result.failed) lines.push(`FAILED          ${failure.name}: ${failure.kind}: ${failure.message}`);
  const total = result.uploaded.length + result.alreadyRemote.length + result.empty.length + result.conflicts.length + result.failed.length;
  if (total === 0) return `nothing to upload: no local snapshots in ${context.config.backupDir}`;
  lines.push(
    `${result.uploaded.length} uploaded, ${result.alreadyRemote.length} already remote, ${result.conflicts.length} conflict${result.conflicts.length === 1 ? '' : 's'}, ${result.failed.length} failed (${context.store.location})`,
  );
  if (result.uploaded.length > 0) lines.push(`bytes sent ${bytes.sent}, copied server-side ${bytes.copied}, composed from earlier versions ${bytes.delta}`);
  return lines.join('\n');
}
