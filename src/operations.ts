import { AppError, describeError, isAppError } from './errors.js';
import type { Agent, SyncReport } from './agent.js';
import type { Notifier } from './alerts/notifier.js';
import type { Logger } from './log.js';
import { chooseLatestRestorable, remoteNewerThan } from './remote/remote-index.js';
import type { Restorer, RestoreOutcome } from './restore/restorer.js';
import { withRetry } from './retry.js';
import type { MemoryServiceClient } from './service/memory-service.js';
import { requireSnapshotName } from './snapshot/naming.js';
import { listSnapshotEntries, statSnapshot } from './snapshot/scan.js';
import type { AgentState } from './state/agent-state.js';
import type { PersistedJson } from './state/persisted.js';

/**
 * The operations an operator asks for (HTTP API, CLI): sync now, download, restore, and the
 * automatic download into an empty backup directory at start. They combine the agent, the
 * restorer and, when configured, the memory service.
 */

export interface ManualUploadResult extends SyncReport {
  /** The backup the memory service created for this sync, when the service is configured. */
  requested: string | undefined;
}

export interface RestoreResult {
  restore: RestoreOutcome;
  /** Whether the memory service was asked to apply it (and answered). */
  applied: boolean;
  message: string;
}

export interface OperationsOptions {
  agent: Agent;
  restorer: Restorer;
  memoryService: MemoryServiceClient | undefined;
  state: PersistedJson<AgentState>;
  backupDir: string;
  settleMs: number;
  log: Logger;
  /** Told of each completed restore; omitted: nobody. */
  notifier?: Notifier;
}

/** How long a requested backup may take to be written and settle before the sync gives up on it. */
const REQUESTED_BACKUP_TIMEOUT_MS = 120_000;

export class SyncOperations {
  constructor(private readonly options: OperationsOptions) {}

  get serviceConfigured(): boolean {
    return this.options.memoryService !== undefined;
  }

  async manualUpload(): Promise<ManualUploadResult> {
    const { agent, memoryService, log } = this.options;
    if (memoryService === undefined) return { requested: undefined, ...(await agent.syncNow()) };
    const name = await memoryService.createBackup('manual');
    log.info('memory service created a backup for this sync', { snapshot: name });
    const outcome = await agent.uploadWhenSettled(name, REQUESTED_BACKUP_TIMEOUT_MS + this.options.settleMs);
    const report: ManualUploadResult = { requested: name, uploaded: [], alreadyRemote: [], conflicts: [], failed: [], settling: [] };
    if (outcome === undefined) {
      throw new AppError('remote_unavailable', `upload of ${name} failed: ${agent.lastErrorFor(name) ?? 'see the log'}`, { details: { snapshot: name } });
    }
    if (outcome.outcome === 'conflict') {
      throw new AppError('conflict', `remote snapshot ${name} exists with different content; nothing was overwritten`, {
        details: { snapshot: name, localSha256: outcome.conflict.localDigest, remoteSha256: outcome.conflict.remoteDigest, differingFiles: outcome.conflict.files },
      });
    }
    (outcome.outcome === 'uploaded' ? report.uploaded : report.alreadyRemote).push(name);
    return report;
  }

  /** Which snapshot a download would fetch, resolving "latest" against a fresh listing. */
  async resolveDownloadTarget(name: string | undefined): Promise<string> {
    if (name !== undefined) return requireSnapshotName(name);
    const latest = chooseLatestRestorable(await this.options.agent.refreshRemoteIndex());
    if (latest === undefined) throw new AppError('not_found', 'the bucket holds no snapshot to download');
    return latest.name;
  }

  async download(name: string | undefined, signal?: AbortSignal): Promise<RestoreOutcome> {
    const target = await this.resolveDownloadTarget(name);
    const outcome = await this.options.restorer.restore(target, signal);
    if (outcome.outcome === 'restored') {
      this.options.state.update((state) => {
        state.counters.restores += 1;
      });
      this.options.notifier?.notify({
        event: 'restore',
        snapshot: outcome.snapshot,
        message: `downloaded into ${this.options.backupDir} (${outcome.files} files, ${outcome.bytes} bytes, verified by ${outcome.verification})`,
        details: { files: outcome.files, bytes: outcome.bytes, verification: outcome.verification },
      });
    }
    return outcome;
  }

  /** Downloads a snapshot, then asks the service to apply it when the service is configured. */
  async restore(name: string): Promise<RestoreResult> {
    const outcome = await this.download(requireSnapshotName(name));
    const { memoryService } = this.options;
    if (memoryService === undefined) {
      return {
        restore: outcome,
        applied: false,
        message: `snapshot is in ${this.options.backupDir}/${name}; apply it with the memory service: POST /restore {"backup_name": "${name}"}`,
      };
    }
    await memoryService.applyRestore(name);
    this.options.log.info('memory service applied the restored snapshot', { snapshot: name });
    return { restore: outcome, applied: true, message: `restored ${name} and the memory service applied it` };
  }

  /**
   * At start, an empty backup directory (a new machine, a lost volume) is filled with the
   * latest remote snapshot by time. A non-empty one is never touched: newer remote
   * snapshots are only reported.
   */
  async autoDownloadIfEmpty(signal?: AbortSignal): Promise<RestoreResult | undefined> {
    const { log, agent } = this.options;
    const local = await listSnapshotEntries(this.options.backupDir);
    const index = await agent.refreshRemoteIndex();
    if (local.names.length > 0) {
      // The agent's own picture of the local side may not be built yet at start: stat here.
      const newer = remoteNewerThan(index, await latestLocalTimeMs(this.options.backupDir, local.names));
      if (newer.length > 0) log.warn('the bucket has snapshots newer than any local one; not downloading automatically', { newer: newer.slice(0, 10).map((s) => s.name) });
      return undefined;
    }
    const latest = chooseLatestRestorable(index);
    if (latest === undefined) {
      log.info('backup directory and bucket are both empty; nothing to download');
      return undefined;
    }
    log.info('backup directory is empty: downloading the latest remote snapshot', { snapshot: latest.name, verified: latest.complete });
    const outcome = await this.download(latest.name, signal);
    const { memoryService } = this.options;
    if (memoryService === undefined) return { restore: outcome, applied: false, message: 'downloaded; not applied (no MEMORY_SERVICE_URL)' };
    // The service usually starts alongside memsync: wait for it rather than fail.
    await withRetry(() => memoryService.applyRestore(latest.name), {
      policy: { attempts: 12, baseDelayMs: 2000, maxDelayMs: 30_000 },
      onRetry: (error, attempt) => log.info('memory service not ready to apply the restore yet; retrying', { attempt, error: error.message }),
    }).catch((error: unknown) => {
      log.error('could not ask the memory service to apply the restored snapshot', { snapshot: latest.name, error: describeError(error) });
      throw isAppError(error) ? error : new AppError('remote_unavailable', describeError(error));
    });
    return { restore: outcome, applied: true, message: `downloaded ${latest.name} and the memory service applied it` };
  }
}

/** The time of the newest local snapshot, from names or mtimes; entries removed meanwhile are skipped. */
async function latestLocalTimeMs(backupDir: string, names: readonly string[]): Promise<number | undefined> {
  let latest: number | undefined;
  for (const name of names) {
    const timeMs = await statSnapshot(backupDir, name).then(
      (stat) => stat.timeMs,
      (error: unknown) => {
        if (isAppError(error, 'snapshot_gone')) return undefined;
        throw error;
      },
    );
    if (timeMs !== undefined && (latest === undefined || timeMs > latest)) latest = timeMs;
  }
  return latest;
}
