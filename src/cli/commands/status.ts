import PQueue from 'p-queue';
import { asAppError, describeError, isAppError, type AppError } from '../../errors.js';
import { listRemoteIndex, type RemoteIndex } from '../../remote/remote-index.js';
import { DEFAULT_RETRY } from '../../retry.js';
import type { Timed } from '../../snapshot/naming.js';
import { listSnapshotEntries, statSnapshotIfPresent } from '../../snapshot/scan.js';
import { emptyHashCache, hashCacheSchema, type HashCacheDocument } from '../../state/hash-cache.js';
import { PersistedJson } from '../../state/persisted.js';
import type { LocalEntry } from '../../upload/compare.js';
import { SnapshotUploader } from '../../upload/snapshot-uploader.js';
import { judgeSettle } from '../../watch/settle.js';
import type { Command } from '../args.js';
import { readAgentFiles, type AgentFiles, type CommandContext } from '../context.js';
import { EXIT, exitCodeFor } from '../exit-codes.js';
import { hintFor } from '../error-text.js';
import { formatBytes, nameList } from '../format.js';
import { buildStatusReport, type NamedTime, type StatusReport } from '../status-report.js';

/**
 * `memsync status`: lists the bucket and digests the settled local snapshots now (digests the
 * agent cached are reused, so unchanged files cost a stat), and compares them as the agent
 * would. Read-only: no object, no state file, no directory is written.
 */

export async function runStatus(command: Extract<Command, { name: 'status' }>, context: CommandContext): Promise<number> {
  const { config, store } = context;
  const files = await readAgentFiles(config.stateDir, context.log);
  let remote: { reachable: true; index: RemoteIndex } | { reachable: false; error: AppError };
  try {
    await store.checkAccess();
    remote = { reachable: true, index: await listRemoteIndex(store, context.now) };
  } catch (error) {
    remote = { reachable: false, error: asAppError(error, 'remote_unavailable', `list ${store.location}`) };
  }
  const local = await scanLocal(context, files);
  const report = buildStatusReport({
    location: store.location,
    backupDir: config.backupDir,
    stateDir: config.stateDir,
    remote: remote.reachable
      ? remote
      : { reachable: false, state: isAppError(remote.error, 'remote_rejected') ? 'refused' : 'unreachable', error: describeError(remote.error), hint: hintFor(remote.error) },
    local: local.entries,
    settling: local.settling,
    agentState: files.state,
  });
  context.out(command.json ? JSON.stringify(report, null, 2) : statusText(report));
  return remote.reachable ? EXIT.ok : exitCodeFor(remote.error);
}

async function scanLocal(context: CommandContext, files: AgentFiles): Promise<{ entries: LocalEntry[]; settling: Timed[] }> {
  const { config, log } = context;
  const hashCache = new PersistedJson<HashCacheDocument>(undefined, hashCacheSchema, () => structuredClone(files.hashCache) ?? emptyHashCache(), log);
  // The uploader owns how a local snapshot becomes a manifest (and the digest cache); nothing is uploaded here.
  const uploader = new SnapshotUploader({
    store: context.store,
    hashCache,
    fileQueue: new PQueue({ concurrency: 1 }),
    agentId: files.state?.agentId ?? 'memsync-cli',
    backupDir: config.backupDir,
    multipartThresholdBytes: config.multipartThresholdBytes,
    retry: DEFAULT_RETRY,
    log,
    now: context.now,
    ...(context.encryption === undefined ? {} : { encryption: context.encryption }),
  });
  const listing = await listSnapshotEntries(config.backupDir);
  for (const rejected of listing.rejected) log.warn('skipping entry in backup directory', { entry: rejected.name, reason: rejected.reason });
  const entries: LocalEntry[] = [];
  const settling: Timed[] = [];
  for (const name of listing.names) {
    const stat = await statSnapshotIfPresent(config.backupDir, name);
    if (stat === undefined) continue;
    if (judgeSettle(undefined, stat, context.now(), config.settleMs).verdict.verdict !== 'settled') {
      settling.push({ name, timeMs: stat.timeMs });
      continue;
    }
    try {
      const { manifest } = await uploader.buildLocalManifest(stat);
      entries.push({ name, timeMs: stat.timeMs, manifestEtag: uploader.manifestEtag(manifest) });
    } catch (error) {
      // Rewritten while being read: it is being written, not settled.
      if (!isAppError(error, 'snapshot_gone')) throw error;
      settling.push({ name, timeMs: stat.timeMs });
    }
  }
  return { entries, settling };
}


const snapshots = (count: number): string => `${count} snapshot${count === 1 ? '' : 's'}`;

function statusText(report: StatusReport): string {
  const at = (item: NamedTime | null): string => (item === null ? '' : `, latest ${item.name} (${item.time})`);
  const names = (list: string[] | null): string => (list === null ? 'unknown (store not listed)' : `${list.length}${list.length > 0 ? `: ${nameList(list)}` : ''}`);
  const { remote, local, agent } = report;
  const lines: [string, string][] = [
    ['store', `${report.location}: ${remote.reachable ? 'reachable' : `${remote.state.toUpperCase()}: ${remote.error ?? ''}`}`],
    ...(remote.hint === null ? [] : [['hint', remote.hint] as [string, string]]),
    ['remote', remote.reachable ? `${snapshots(remote.count ?? 0)} (${remote.complete ?? 0} complete)${at(remote.latest)}` : 'unknown'],
    ['local', `${snapshots(local.count)} in ${report.backupDir}${at(local.latest)}`],
    ['in sync', report.inSync === null ? 'unknown (store not listed)' : String(report.inSync.length)],
    ['pending', names(report.pending)],
    ['being written', `${local.settling.length}${local.settling.length > 0 ? `: ${nameList(local.settling)}` : ''}`],
    ['only remote', names(report.onlyRemote)],
    ['newer remote', names(report.newerRemote)],
    ['conflicts', `${report.conflicts.length} recorded by the agent${report.conflicts.length > 0 ? `: ${nameList(report.conflicts.map((c) => c.snapshot))}` : ''}`],
  ];
  if (!agent.stateFound) lines.push(['agent state', `none in ${report.stateDir}`]);
  else {
    lines.push(['last upload', agent.lastSuccess === null ? 'none recorded' : `${agent.lastSuccess.snapshot} at ${agent.lastSuccess.at} (${formatBytes(agent.lastSuccess.bytes)})`]);
    lines.push(['last error', agent.lastError === null ? 'none recorded' : `${agent.lastError.at} ${agent.lastError.kind}: ${agent.lastError.message}`]);
    lines.push(['last sweep', agent.lastSweepAt ?? 'none recorded']);
  }
  const width = Math.max(...lines.map(([key]) => key.length));
  return lines.map(([key, value]) => `${key.padEnd(width)}  ${value}`).join('\n');
}
