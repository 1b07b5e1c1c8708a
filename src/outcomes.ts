import type { Notifier } from './alerts/notifier.js';
import { FailureRun } from './alerts/recovery.js';
import type { AppError } from './errors.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { RemoteIndex } from './remote/remote-index.js';
import type { SnapshotStat } from './snapshot/scan.js';
import { totalBytes } from './snapshot/manifest.js';
import type { AgentState } from './state/agent-state.js';
import type { PersistedJson } from './state/persisted.js';
import type { SnapshotOutcome } from './upload/snapshot-uploader.js';

/** Turns upload outcomes into one log line each, persisted state, metrics, and the in-memory remote index. */
export class OutcomeRecorder {
  /** Snapshots failing now and since the last recovery: a success that leaves none failing is a recovery. */
  private readonly failures = new FailureRun();

  constructor(
    private readonly state: PersistedJson<AgentState>,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly metrics?: Metrics,
    private readonly notifier?: Notifier,
  ) {}

  record(stat: SnapshotStat, outcome: SnapshotOutcome, remote: RemoteIndex): void {
    const name = stat.name;
    if (outcome.outcome === 'conflict') {
      const previous = this.state.current.conflicts[name];
      const changed = previous === undefined || previous.localDigest !== outcome.conflict.localDigest || previous.remoteDigest !== outcome.conflict.remoteDigest;
      if (changed) {
        // Never merged, never overwritten: both sides stay as they are until an operator decides.
        this.log.warn('conflict: remote snapshot of the same name has different content; nothing was overwritten', {
          snapshot: name,
          localSha256: outcome.conflict.localDigest,
          remoteSha256: outcome.conflict.remoteDigest,
          differingFiles: outcome.conflict.files.map((f) => f.path),
        });
        this.notifier?.notify({
          event: 'conflict',
          snapshot: name,
          message: 'a remote snapshot of the same name has different content; nothing was overwritten',
          details: { localSha256: outcome.conflict.localDigest, remoteSha256: outcome.conflict.remoteDigest, differingFiles: outcome.conflict.files.slice(0, 20).map((f) => f.path) },
        });
      }
      this.state.update((state) => {
        state.conflicts[name] = { snapshot: name, detectedAtMs: previous?.detectedAtMs ?? this.now(), operation: 'upload', ...outcome.conflict };
        if (changed) state.counters.conflicts += 1;
      });
      if (changed) this.metrics?.conflictFound();
      // Reported as a conflict, not as a failing upload.
      this.failures.dropped(name);
      return;
    }
    remote.snapshots.set(name, {
      name,
      timeMs: stat.timeMs,
      fileCount: outcome.manifest.files.length,
      bytes: totalBytes(outcome.manifest),
      complete: true,
      manifestEtag: outcome.manifestEtag,
      encrypted: outcome.encrypted,
    });
    this.noteRecovery(name);
    this.state.update((state) => {
      delete state.conflicts[name];
      if (outcome.outcome === 'already-remote') {
        state.counters.snapshotsAlreadyRemote += 1;
        state.counters.filesAlreadyRemote += outcome.manifest.files.length;
        return;
      }
      state.counters.snapshotsUploaded += 1;
      state.counters.filesUploaded += outcome.filesSent;
      state.counters.bytesUploaded += outcome.bytesSent;
      state.counters.bytesCopied += outcome.bytesCopied;
      state.counters.bytesDelta += outcome.bytesDelta;
      state.lastSuccess = { snapshot: name, atMs: this.now(), bytes: outcome.bytes, bytesSent: outcome.bytesSent, bytesCopied: outcome.bytesCopied, bytesDelta: outcome.bytesDelta, durationMs: outcome.durationMs };
    });
    if (outcome.outcome === 'already-remote') {
      this.log.debug('snapshot already remote', { snapshot: name });
    } else {
      this.metrics?.snapshotUploaded({ seconds: outcome.durationMs / 1000, bytesSent: outcome.bytesSent, bytesCopied: outcome.bytesCopied, bytesDelta: outcome.bytesDelta });
      this.log.info('snapshot uploaded', {
        snapshot: name,
        files: outcome.manifest.files.length,
        bytes: outcome.bytes,
        bytesSent: outcome.bytesSent,
        bytesCopied: outcome.bytesCopied,
        filesCopied: outcome.filesCopied,
        bytesDelta: outcome.bytesDelta,
        filesDelta: outcome.filesDelta,
        durationMs: outcome.durationMs,
      });
    }
  }

  /** A failed attempt; only the first of a run of failures is logged as an error, the rest at debug. */
  recordFailure(name: string, error: AppError, firstFailure: boolean): void {
    this.recordError(error, name);
    this.state.update((state) => {
      state.counters.uploadFailures += 1;
    });
    this.metrics?.uploadFailed(error.kind);
    const fields = { snapshot: name, kind: error.kind, error: error.message, hint: error.hint, willRetry: true };
    if (firstFailure) this.log.error('upload failed', fields);
    else this.log.debug('upload failed again', fields);
    this.failures.failed(name);
    if (firstFailure) this.notifier?.notify({ event: 'upload_failed', snapshot: name, message: error.message, details: { kind: error.kind, hint: error.hint ?? null, willRetry: true } });
  }

  /**
   * The store did not answer while this snapshot's upload was waiting on it, and the service
   * pruned the snapshot before a request failed: reported like a failed upload, without a retry.
   */
  recordOutageHiddenByPrune(name: string, error: AppError): void {
    this.recordError(error, name);
    this.state.update((state) => {
      state.counters.uploadFailures += 1;
    });
    this.metrics?.uploadFailed(error.kind);
    this.log.error('upload failed: the store did not answer, and the snapshot was pruned before a request timed out', { snapshot: name, kind: error.kind, error: error.message, hint: error.hint, willRetry: false });
    // Part of the run of failures the next success ends, though this snapshot is gone.
    this.failures.failed(name);
    this.failures.dropped(name);
    const message = `${error.message} (the snapshot was pruned while its upload waited for the store)`;
    this.notifier?.notify({ event: 'upload_failed', snapshot: name, message, details: { kind: error.kind, hint: error.hint ?? null, willRetry: false } });
  }

  private noteRecovery(name: string): void {
    const failed = this.failures.succeeded(name);
    if (failed === undefined) return;
    this.log.info('uploads recovered after failures', { snapshot: name, failedBefore: failed.slice(0, 20) });
    this.notifier?.notify({ event: 'recovered', snapshot: name, message: `upload succeeded after earlier failures of ${failed.length} snapshot(s)`, details: { failedBefore: failed.slice(0, 20) } });
  }

  recordError(error: AppError, snapshot: string | undefined): void {
    this.state.update((state) => {
      state.lastError = { atMs: this.now(), message: error.message, kind: error.kind, ...(snapshot === undefined ? {} : { snapshot }) };
    });
  }

  /** A snapshot pruned by the service before memsync could upload it is counted, never silently lost. */
  recordGone(name: string, remote: RemoteIndex): void {
    this.failures.dropped(name);
    if (remote.snapshots.get(name)?.complete === true) {
      this.log.debug('snapshot removed locally; the remote copy stays', { snapshot: name });
      return;
    }
    this.state.update((state) => {
      state.counters.prunedBeforeUpload += 1;
    });
    this.metrics?.snapshotPrunedBeforeUpload();
    this.log.warn('snapshot removed before it could be uploaded', { snapshot: name });
  }
}
