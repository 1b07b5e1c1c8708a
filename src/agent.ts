import path from 'node:path';
import { makeConfiguredDirectory } from './directories.js';
import PQueue from 'p-queue';
import type { Config } from './config.js';
import { AppError, describeError, isAppError } from './errors.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { listRemoteIndex, type RemoteIndex } from './remote/remote-index.js';
import { CANCEL_GRACE_MS, type RemoteStore } from './remote/store.js';
import { listSnapshotEntries, sameFingerprint, statSnapshot, type SnapshotStat } from './snapshot/scan.js';
import { statAhead, statOrGone, type StatInOrder } from './snapshot/stat-ahead.js';
import type { AgentState } from './state/agent-state.js';
import { pruneDigests, type HashCacheDocument } from './state/hash-cache.js';
import { SignatureStore } from './state/signature-store.js';
import type { PersistedJson } from './state/persisted.js';
import { SweepSchedule } from './schedule/sweep-schedule.js';
import { SweepRetry } from './schedule/sweep-retry.js';
import { compareSides, type LocalEntry } from './upload/compare.js';
import { UploadJobs } from './upload/jobs.js';
import { AbandonedAttempts } from './upload/abandoned-attempts.js';
import { DEFAULT_RETRY, backoffDelayMs, type RetryPolicy } from './retry.js';
import { SnapshotUploader, type SnapshotOutcome } from './upload/snapshot-uploader.js';
import { RemoteHealth } from './remote-health.js';
import { judgeSettle, type SettleState } from './watch/settle.js';
import { Settler } from './watch/settler.js';
import { BackupWatcher } from './watch/watcher.js';
import { OutcomeRecorder } from './outcomes.js';
import { OutageAfterPrune } from './outage-after-prune.js';
import type { Notifier } from './alerts/notifier.js';
import type { Encryption } from './crypto/encryption.js';
import { buildStatus, type AgentStatus } from './status.js';
import { ETAG_VERIFICATION, storedVerification, type StoredVerification } from './upload/stored-verification.js';

/** The agent's settings that come straight from the configuration (the agent and the CLI build it alike). */
export function agentSettings(
  config: Config,
): Pick<
  AgentOptions,
  'backupDir' | 'settleMs' | 'concurrency' | 'multipartThresholdBytes' | 'shutdownTimeoutMs' | 'schedule' | 'staleMultipartMs' | 'serverSideCopy' | 'localFileDeadlineMs' | 'refuseHardlinks' | 'delta' | 'claimLeaseMs' | 'verification'
> {
  const { backupDir, settleMs, concurrency, multipartThresholdBytes, shutdownTimeoutMs, schedule, staleMultipartMs, serverSideCopy, localFileDeadlineMs, refuseHardlinks, deltaMinFileBytes, claimLeaseMs } = config;
  const delta = deltaMinFileBytes === undefined ? undefined : { minFileBytes: deltaMinFileBytes, signaturesDir: path.join(config.stateDir, 'signatures') };
  // Server-side encryption is asked for of S3 stores only; the others' ETags stay what they are.
  const verification = storedVerification(config.storage.provider === 's3' ? config.s3.atRest : undefined);
  return { backupDir, settleMs, concurrency, multipartThresholdBytes, shutdownTimeoutMs, schedule, staleMultipartMs, serverSideCopy, localFileDeadlineMs, refuseHardlinks, delta, claimLeaseMs, verification };
}

export interface AgentOptions {
  backupDir: string;
  settleMs: number;
  concurrency: number;
  multipartThresholdBytes: number;
  shutdownTimeoutMs: number;
  schedule: string;
  store: RemoteStore;
  state: PersistedJson<AgentState>;
  hashCache: PersistedJson<HashCacheDocument>;
  log: Logger;
  now?: () => number;
  retry?: RetryPolicy;
  /** Multipart uploads under the prefix older than this, and not ours in flight, are aborted by sweeps. */
  staleMultipartMs?: number;
  /** Differential uploads: files already in a complete remote snapshot are copied server-side, not sent. Default true. */
  serverSideCopy?: boolean;
  /** A local file open or read that takes longer fails its snapshot; default in the uploader (60 s). */
  localFileDeadlineMs?: number;
  /** Lease of this agent's claims on snapshot names; default in the uploader (10 min). */
  claimLeaseMs?: number;
  /** Remove signatures no cached digest names after each sweep (default true; false where the digest cache is partial). */
  pruneSignatures?: boolean;
  /** Backoff between retries of a failed sweep; default SweepRetry's (5 s doubling to 5 min). */
  sweepRetry?: { baseDelayMs: number; maxDelayMs: number };
  /** Refuse backup files with more than one hard link. Default false. */
  refuseHardlinks?: boolean;
  /** Delta uploads of large files (needs serverSideCopy); signatures of file versions are kept in `signaturesDir`. Omitted: off. */
  delta?: { minFileBytes: number; signaturesDir: string } | undefined;
  /** How stored objects are proven to hold the bytes sent (see stored-verification.ts); default by ETag. */
  verification?: StoredVerification;
  /** How long an uploaded snapshot is still watched inside after its last change; default the watcher's (10 min). */
  watchAfterChangeMs?: number;
  /** Omitted: nothing is recorded (tests, one-shot commands). */
  metrics?: Metrics;
  /** Alerts on upload failures, conflicts and recovery; omitted: none. */
  notifier?: Notifier;
  /** Client-side encryption of uploads; omitted: files and manifests are stored as they are. */
  encryption?: Encryption;
  /** Whether the store is known to refuse writes over an existing key (If-None-Match); omitted: not known. */
  conditionalWritesHonoured?: () => boolean;
  /** Awaited before each upload: finds out what the upload relies on (the conditional-write probe); must not throw. */
  beforeUpload?: () => Promise<unknown>;
  /** Called after each successful sweep (retention, heartbeat); must not throw. Not called for failed sweeps. */
  afterSweep?: (sweep: FinishedSweep) => void;
}

export interface FinishedSweep {
  summary: SweepSummary;
  /** Snapshot names in the backup directory when the sweep listed it. */
  local: ReadonlySet<string>;
  /** Snapshots queued or being uploaded when the sweep finished. */
  uploading: readonly string[];
}

export interface SweepSummary {
  reason: string;
  local: number;
  /** Remote snapshots in the listing this sweep started from. */
  remote: number;
  queued: string[];
  inSync: string[];
  settling: string[];
  durationMs: number;
  /** Outcomes of what this sweep queued; undefined for an upload that failed (see lastError). */
  uploads: Promise<{ name: string; outcome: SnapshotOutcome | undefined }[]>;
}

export interface SyncReport {
  uploaded: string[];
  alreadyRemote: string[];
  conflicts: string[];
  failed: string[];
  /** Still being written when the sync ran; they are uploaded once settled. */
  settling: string[];
}

const HOUR_MS = 3_600_000;
/** Failed snapshots are retried on their own schedule, so an outage does not wait for the next cron sweep. */
const SNAPSHOT_RETRY: RetryPolicy = { attempts: Number.POSITIVE_INFINITY, baseDelayMs: 5_000, maxDelayMs: 600_000 };

/**
 * The coordinator: watcher events and sweeps in, upload jobs out, outcomes into state.
 * It owns no storage or file-format logic; those live in the modules it drives.
 */
export class Agent {
  readonly health: RemoteHealth;
  private readonly now: () => number;
  private readonly verification: StoredVerification;
  /** Snapshots whose upload is writing its manifest: a prune no longer stops those. */
  private readonly committing = new Set<string>();
  private readonly settler: Settler;
  private readonly watcher: BackupWatcher;
  private readonly jobs: UploadJobs;
  private readonly uploader: SnapshotUploader;
  private readonly schedule: SweepSchedule;
  private readonly outcomes: OutcomeRecorder;
  private readonly signatures: SignatureStore | undefined;
  private readonly sweepRetry: SweepRetry;
  private readonly localEntries = new Map<string, LocalEntry>();
  /** Uploads in progress by name, with the stat they started from. */
  private readonly uploading = new Map<string, { stat: SnapshotStat; promise: Promise<SnapshotOutcome | undefined>; startedMs: number }>();
  /** Remote manifests found to hold a local snapshot's content, by name: in memory, re-learnt after a restart. */
  private readonly confirmedManifests = new Map<string, { localEtag: string; remoteEtag: string }>();
  /** The last finished upload of each local snapshot (forgotten when it is removed): see uploadWhenSettled. */
  private readonly lastOutcomes = new Map<string, { stat: SnapshotStat; outcome: SnapshotOutcome; atMs: number }>();
  private readonly retryTimers = new Map<string, { attempt: number; timer: NodeJS.Timeout | undefined }>();
  private readonly abandoned: AbandonedAttempts;
  private readonly outageAfterPrune: OutageAfterPrune;
  private remote: RemoteIndex = { snapshots: new Map(), ignoredKeys: 0, listedAtMs: 0 };
  private runningSweep: Promise<SweepSummary> | undefined;
  private nextManualSweep: Promise<SweepSummary> | undefined;
  private stopping = false;
  private started = false;

  constructor(private readonly options: AgentOptions) {
    this.now = options.now ?? Date.now;
    this.verification = options.verification ?? ETAG_VERIFICATION;
    const log = options.log;
    this.health = new RemoteHealth(log.child({ component: 'remote' }), this.now);
    this.signatures = options.delta === undefined ? undefined : new SignatureStore(options.delta.signaturesDir, log.child({ component: 'upload' }));
    this.outcomes = new OutcomeRecorder(options.state, log.child({ component: 'upload' }), this.now, options.metrics, options.notifier);
    const fileQueue = new PQueue({ concurrency: options.concurrency });
    this.outageAfterPrune = new OutageAfterPrune({
      health: this.health,
      checkStore: () => options.store.checkAccess(),
      onOutage: (snapshots, error) => {
        for (const name of snapshots) this.outcomes.recordOutageHiddenByPrune(name, error);
      },
    });
    this.abandoned = new AbandonedAttempts({ store: options.store, agentId: options.state.current.agentId, log: log.child({ component: 'upload' }) });
    this.uploader = new SnapshotUploader({
      store: options.store,
      hashCache: options.hashCache,
      fileQueue,
      agentId: options.state.current.agentId,
      backupDir: options.backupDir,
      multipartThresholdBytes: options.multipartThresholdBytes,
      retry: options.retry ?? DEFAULT_RETRY,
      log: log.child({ component: 'upload' }),
      now: this.now,
      // A hung store fails each request only after an idle timeout, and a snapshot only after all
      // its retries (minutes): status and /readyz must say "unavailable" from the first failure.
      onRetry: (error) => {
        if (isAppError(error, 'remote_unavailable')) this.health.failed(describeError(error));
      },
      // The listing sweeps keep (and uploads extend) says which snapshots are complete: no listing of its own.
      serverSideCopy: options.serverSideCopy === false ? undefined : { remoteIndex: () => this.remote },
      remoteIndex: () => this.remote,
      onCommitting: (name) => void this.committing.add(name),
      ...(options.encryption === undefined ? {} : { encryption: options.encryption }),
      ...(options.conditionalWritesHonoured === undefined ? {} : { conditionalWritesHonoured: options.conditionalWritesHonoured }),
      ...(options.localFileDeadlineMs === undefined ? {} : { localFileDeadlineMs: options.localFileDeadlineMs }),
      ...(options.claimLeaseMs === undefined ? {} : { claimLeaseMs: options.claimLeaseMs }),
      refuseHardlinks: options.refuseHardlinks ?? false,
      verification: this.verification,
      ...(this.signatures === undefined || options.delta === undefined ? {} : { delta: { minFileBytes: options.delta.minFileBytes, signatures: this.signatures } }),
    });
    // As many snapshots in preparation as file slots: more would keep the slots busier during a
    // burst, but after an outage every prepared snapshot resumes at once, in whatever order the
    // server answers, and the newest-first order of the backlog is lost.
    this.jobs = new UploadJobs({ uploader: this.uploader, snapshotConcurrency: Math.max(2, options.concurrency) });
    this.settler = new Settler({
      backupDir: options.backupDir,
      settleMs: options.settleMs,
      now: this.now,
      log: log.child({ component: 'settle' }),
      onSettled: (stat) => void this.upload(stat),
      onGone: (name) => this.onGone(name),
    });
    this.watcher = new BackupWatcher({
      backupDir: options.backupDir,
      log: log.child({ component: 'watch' }),
      onActivity: (name) => this.onActivity(name),
      ...(options.watchAfterChangeMs === undefined ? {} : { watchAfterChangeMs: options.watchAfterChangeMs }),
    });
    this.schedule = new SweepSchedule(options.schedule, () => this.sweep('scheduled'), log.child({ component: 'schedule' }));
    this.sweepRetry = new SweepRetry(() => void this.sweep('retry').catch(() => undefined), options.sweepRetry);
  }

  get watching(): boolean {
    return this.watcher.isRunning;
  }

  get remoteIndex(): RemoteIndex {
    return this.remote;
  }

  /** Snapshots whose last upload failed and that wait for a retry (the heartbeat stays silent meanwhile). */
  get failingUploads(): number {
    return this.retryTimers.size;
  }

  /** Snapshots waiting for an upload slot, and being uploaded (read by metrics at scrape time). */
  get uploadQueue(): { waiting: number; uploading: number } {
    const waiting = this.jobs.queuedCount;
    return { waiting, uploading: this.jobs.pendingNames().length - waiting };
  }

  /** Starts watching and scheduling, then runs the start sweep in the background. */
  async start(): Promise<void> {
    await makeConfiguredDirectory(this.options.backupDir, 'CLOUD_SYNC_BACKUP_DIR');
    await this.watcher.start();
    this.schedule.start();
    this.started = true;
    this.options.log.info('watching for backups', { backupDir: this.options.backupDir, settleMs: this.options.settleMs, schedule: this.options.schedule, storedObjects: this.verification.description });
    void this.sweep('start').catch(() => undefined);
  }

  /** Idempotent; waits for in-flight uploads up to the shutdown timeout. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.schedule.stop();
    this.outageAfterPrune.stop();
    await this.watcher.stop();
    this.settler.stop();
    for (const retry of this.retryTimers.values()) clearTimeout(retry.timer);
    this.sweepRetry.stop();
    await this.jobs.stop(this.options.shutdownTimeoutMs);
    await this.abandoned.stop(CANCEL_GRACE_MS);
    await this.options.state.flush();
    await this.options.hashCache.flush();
  }

  /**
   * Compares the backup directory with the bucket and queues what is missing. Concurrent
   * callers share one sweep, except that a manual one never shares a sweep already under way.
   * Settled snapshots already complete remotely cost a stat and a
   * cache lookup, never a re-read.
   */
  sweep(reason: string): Promise<SweepSummary> {
    if (this.runningSweep !== undefined && reason === 'manual') {
      // A sweep that read the directory before this call may miss what was written just before
      // it: "sync now" gets one that starts after the running one (shared by all who ask meanwhile).
      this.nextManualSweep ??= this.runningSweep
        .catch(() => undefined)
        .then(() => {
          this.nextManualSweep = undefined;
          return this.sweep(reason);
        });
      return this.nextManualSweep;
    }
    this.runningSweep ??= this.runSweep(reason).finally(() => {
      this.runningSweep = undefined;
    });
    return this.runningSweep;
  }

  private async runSweep(reason: string): Promise<SweepSummary> {
    const startedMs = this.now();
    const log = this.options.log.child({ component: 'sweep' });
    try {
      // The bucket's listing and the local stat walk do not depend on each other: both at once.
      const remoteListing = this.health.track(listRemoteIndex(this.options.store, this.now));
      remoteListing.catch(() => undefined); // awaited below, after the local listing
      const listing = await listSnapshotEntries(this.options.backupDir);
      const stats = statAhead(listing.names, SWEEP_STATS_AHEAD, (name) => statOrGone(this.options.backupDir, name));
      try {
        this.remote = await remoteListing;
      } catch (error) {
        // Status still lists what is here and not known to be remote, while the store is away.
        await this.noteLocalWithoutRemote(stats);
        throw error;
      }
      // As listed: uploads this sweep starts add to the live index while it goes on.
      const remoteListed = this.remote.snapshots.size;
      for (const rejected of listing.rejected) log.warn('skipping entry in backup directory', { entry: rejected.name, reason: rejected.reason });
      const live = new Set(listing.names);
      // The store answers again: what failed attempts left of snapshots pruned since can go now.
      this.abandoned.retry((name) => !live.has(name));
      for (const name of this.localEntries.keys()) if (!live.has(name)) this.localEntries.delete(name);
      for (const name of this.lastOutcomes.keys()) if (!live.has(name)) this.lastOutcomes.delete(name);

      const queued: string[] = [];
      const inSync: string[] = [];
      const settling: string[] = [];
      const uploads: Promise<{ name: string; outcome: SnapshotOutcome | undefined }>[] = [];
      // In directory order (oldest name first), as before: uploads are queued in that order.
      for await (const { name, stat } of stats) {
        const verdict = await this.considerForSweep(name, stat);
        if (verdict === 'in-sync') {
          inSync.push(name);
          if (stat !== 'gone') this.releaseWatch(stat);
        } else if (verdict === 'settling') {
          settling.push(name);
          void this.watcher.watchInside(name);
        } else if (verdict !== 'gone') {
          void this.watcher.watchInside(name);
          queued.push(name);
          uploads.push(verdict.upload.then((outcome) => ({ name, outcome })));
        }
      }
      // Digests of snapshots gone locally are dropped in place, and the cache is saved only when
      // some were: a save rewrites all of it (7 MB at 10,000 snapshots), a peak every sweep paid.
      const droppedDigests = pruneDigests(this.options.hashCache.current, live);
      if (droppedDigests > 0) this.options.hashCache.update(() => undefined);
      // Signatures of contents no cached digest names any more: their snapshots are gone locally.
      if (this.options.pruneSignatures !== false) await this.signatures?.prune(new Set(Object.values(this.options.hashCache.current.entries).map((entry) => entry.digest.sha256)));
      await this.abortStaleMultipartUploads(log);
      const summary: SweepSummary = {
        reason,
        local: listing.names.length,
        remote: remoteListed,
        queued,
        inSync,
        settling,
        durationMs: this.now() - startedMs,
        uploads: Promise.all(uploads),
      };
      this.options.state.update((state) => {
        state.lastSweep = { atMs: startedMs, durationMs: summary.durationMs, queued: queued.length };
        state.counters.sweeps += 1;
      });
      this.options.metrics?.sweepFinished(reason, 'ok', summary.durationMs / 1000);
      log.info('sweep finished', { reason, local: summary.local, remote: summary.remote, queued: queued.length, inSync: inSync.length, settling: settling.length, durationMs: summary.durationMs });
      this.options.afterSweep?.({ summary, local: live, uploading: this.jobs.pendingNames() });
      this.sweepRetry.succeeded();
      return summary;
    } catch (error) {
      const appError = isAppError(error) ? error : new AppError('local_io', describeError(error), { cause: error });
      this.outcomes.recordError(appError, undefined);
      this.options.metrics?.sweepFinished(reason, 'failed', (this.now() - startedMs) / 1000);
      // A failed sweep is tried again with backoff until one succeeds: what it missed must not wait for the cron sweep.
      const retryInMs = this.stopping ? undefined : this.sweepRetry.failed();
      log.error('sweep failed', { reason, error: appError.message, hint: appError.hint, retryInMs });
      throw appError;
    }
  }

  /** Local snapshots entered as not known remotely, so status lists them as pending during an outage. */
  private async noteLocalWithoutRemote(stats: AsyncIterable<StatInOrder>): Promise<void> {
    for await (const { name, stat } of stats) {
      if (stat !== 'gone' && !this.localEntries.has(name)) this.localEntries.set(name, { name, timeMs: stat.timeMs, manifestEtag: undefined });
    }
  }

  /** One local snapshot during a sweep: in sync, left to the settler, or the promise of its upload. */
  private async considerForSweep(name: string, stat: SnapshotStat | 'gone'): Promise<'in-sync' | 'settling' | 'gone' | { upload: Promise<SnapshotOutcome | undefined> }> {
    if (stat === 'gone') return 'gone';
    const { verdict } = judgeSettle(undefined, stat, this.now(), this.options.settleMs);
    if (verdict.verdict !== 'settled') {
      if (verdict.verdict === 'wait') this.settler.touch(name);
      return 'settling';
    }
    const remote = this.remote.snapshots.get(name);
    if (remote?.complete !== true) {
      // Nothing complete under that name: it is uploaded whatever it holds, and the upload hashes
      // large files as it sends them rather than here first.
      this.localEntries.set(name, { name, timeMs: stat.timeMs, manifestEtag: this.localEntries.get(name)?.manifestEtag });
      return { upload: this.upload(stat) };
    }
    let manifest;
    try {
      ({ manifest } = await this.uploader.buildLocalManifest(stat));
    } catch (error) {
      if (isAppError(error, 'snapshot_gone')) return 'settling';
      // One unreadable snapshot (a file without read permission) must not stop the sweep for the others.
      this.onUploadError(stat, error);
      return 'settling';
    }
    const ownEtag = this.uploader.manifestEtag(manifest);
    // A remote manifest in the other format (plain vs encrypted) of the same content was
    // confirmed by an earlier upload attempt: its ETag stands for this content too.
    const confirmed = this.confirmedManifests.get(name);
    const etag = confirmed?.localEtag === ownEtag ? confirmed.remoteEtag : ownEtag;
    this.localEntries.set(name, { name, timeMs: stat.timeMs, manifestEtag: etag });
    if (remote.manifestEtag === etag) return 'in-sync';
    // Wrapped so the sweep goes on while the upload runs (an async function would await it).
    return { upload: this.upload(stat) };
  }

  /** Sweeps now and waits for everything it queued: the manual "sync now". */
  async syncNow(): Promise<SyncReport> {
    const summary = await this.sweep('manual');
    const outcomes = await summary.uploads;
    const report: SyncReport = { uploaded: [], alreadyRemote: [...summary.inSync], conflicts: [], failed: [], settling: summary.settling };
    for (const { name, outcome } of outcomes) {
      if (outcome === undefined) report.failed.push(name);
      else if (outcome.outcome === 'uploaded') report.uploaded.push(name);
      else if (outcome.outcome === 'already-remote') report.alreadyRemote.push(name);
      else report.conflicts.push(name);
    }
    return report;
  }

  /** Waits for one named snapshot to settle (bounded), then uploads it: used after asking the service for a backup. */
  async uploadWhenSettled(name: string, timeoutMs: number): Promise<SnapshotOutcome | undefined> {
    const startedMs = this.now();
    const deadline = startedMs + timeoutMs;
    let previous: SettleState | undefined;
    for (;;) {
      const stat = await statSnapshot(this.options.backupDir, name);
      const judged = judgeSettle(previous, stat, this.now(), this.options.settleMs);
      previous = judged.state;
      if (judged.verdict.verdict === 'settled') {
        // The settler may have uploaded this very content while we waited: that is this call's
        // outcome (a second upload would only find it "already remote").
        const finished = this.lastOutcomes.get(name);
        if (finished !== undefined && finished.atMs >= startedMs && sameFingerprint(finished.stat, stat)) return finished.outcome;
        return this.upload(stat);
      }
      if (this.now() >= deadline) throw new AppError('snapshot_gone', `${name} did not settle within ${timeoutMs} ms`, { retryable: false });
      const waitMs = judged.verdict.verdict === 'wait' ? judged.verdict.checkAtMs - this.now() : this.options.settleMs;
      await new Promise((resolve) => setTimeout(resolve, Math.max(25, Math.min(waitMs, deadline - this.now()))));
    }
  }

  /** Lists the bucket now (single-flight with sweeps' listings is not needed: listing is read-only). */
  async refreshRemoteIndex(): Promise<RemoteIndex> {
    this.remote = await this.health.track(listRemoteIndex(this.options.store, this.now));
    return this.remote;
  }

  /** Errors of the last attempt at a snapshot, for answers that name why an upload failed. */
  lastErrorFor(name: string): string | undefined {
    const error = this.options.state.current.lastError;
    return error?.snapshot === name ? error.message : undefined;
  }

  /**
   * Uploads one settled snapshot and records the outcome; never throws. Callers asking for the
   * same snapshot as it is (watcher, sweep, manual sync) share one upload, recorded once.
   */
  upload(stat: SnapshotStat): Promise<SnapshotOutcome | undefined> {
    const running = this.uploading.get(stat.name);
    if (running !== undefined && sameFingerprint(running.stat, stat)) return running.promise;
    const promise = this.uploadAndRecord(stat).finally(() => {
      if (this.uploading.get(stat.name)?.promise !== promise) return;
      this.uploading.delete(stat.name);
      this.committing.delete(stat.name);
    });
    this.uploading.set(stat.name, { stat, promise, startedMs: this.now() });
    return promise;
  }

  private async uploadAndRecord(stat: SnapshotStat): Promise<SnapshotOutcome | undefined> {
    if (this.stopping) return undefined;
    this.clearRetry(stat.name);
    this.localEntries.set(stat.name, { name: stat.name, timeMs: stat.timeMs, manifestEtag: this.localEntries.get(stat.name)?.manifestEtag });
    try {
      await this.options.beforeUpload?.();
      await this.abandoned.beforeUpload(stat.name);
      const outcome = await this.health.track(this.jobs.submit(stat));
      if (outcome.outcome !== 'conflict') {
        this.confirmedManifests.set(stat.name, { localEtag: this.uploader.manifestEtag(outcome.manifest), remoteEtag: outcome.manifestEtag });
      }
      this.localEntries.set(stat.name, { name: stat.name, timeMs: stat.timeMs, manifestEtag: outcome.outcome === 'conflict' ? this.uploader.manifestEtag(outcome.manifest) : outcome.manifestEtag });
      this.retryTimers.delete(stat.name);
      this.outcomes.record(stat, outcome, this.remote);
      if (outcome.outcome !== 'conflict') this.releaseWatch(stat);
      this.lastOutcomes.set(stat.name, { stat, outcome, atMs: this.now() });
      return outcome;
    } catch (error) {
      this.onUploadError(stat, error);
      return undefined;
    }
  }

  private onUploadError(stat: SnapshotStat, error: unknown): void {
    const appError = isAppError(error) ? error : new AppError('local_io', describeError(error), { cause: error });
    if (appError.kind === 'cancelled' || this.stopping) return;
    if (appError.kind === 'snapshot_gone') {
      // Rewritten or removed under us: the settler decides which, quietly.
      this.options.log.debug('snapshot changed during upload, re-settling', { snapshot: stat.name, reason: appError.message });
      this.settler.touch(stat.name);
      return;
    }
    const retry = this.retryTimers.get(stat.name) ?? { attempt: 0, timer: undefined };
    const claimedBy = appError.kind === 'conflict' ? appError.details?.claimedBy : undefined;
    if (claimedBy !== undefined) {
      // Not a failure: another agent is writing this name. Once its manifest is there, the retry compares contents.
      if (retry.attempt === 0) this.options.log.info('snapshot is being uploaded by another memsync; comparing once it is complete', { snapshot: stat.name, agent: claimedBy });
    } else {
      this.outcomes.recordFailure(stat.name, appError, retry.attempt === 0);
    }
    const delayMs = SNAPSHOT_RETRY.baseDelayMs + backoffDelayMs(retry.attempt, SNAPSHOT_RETRY);
    retry.attempt += 1;
    retry.timer = setTimeout(() => this.settler.touch(stat.name), delayMs);
    this.retryTimers.set(stat.name, retry);
  }

  private clearRetry(name: string): void {
    // Keep the attempt count while a retry is being attempted; a success removes it in record().
    const retry = this.retryTimers.get(name);
    if (retry !== undefined) clearTimeout(retry.timer);
  }

  private onActivity(name: string): void {
    // The service rewrote or pruned a snapshot that is being uploaded: stop, let it settle again.
    this.cancelUpload(name, new AppError('snapshot_gone', `${name} changed while queued or uploading`));
    this.settler.touch(name);
  }

  private onGone(name: string): void {
    this.lastOutcomes.delete(name);
    this.cancelUpload(name, new AppError('snapshot_gone', `${name} was removed`));
    const retry = this.retryTimers.get(name);
    if (retry !== undefined) {
      clearTimeout(retry.timer);
      // Failed attempts wrote objects the retry would have reused; no retry comes now.
      this.abandoned.abandon(name, this.uploading.get(name)?.promise);
    }
    this.retryTimers.delete(name);
    this.watcher.stopWatchingInside(name);
    this.forgetLocal(name);
    const running = this.uploading.get(name)?.promise;
    if (running === undefined || !this.committing.has(name)) {
      this.outcomes.recordGone(name, this.remote);
      return;
    }
    // A prune does not stop an upload whose files are all stored and verified (its manifest may
    // already be at the server): what the commit came to decides whether the snapshot was lost.
    void running.then(() => {
      if (this.uploading.has(name)) return;
      // The upload recorded its outcome as for a snapshot still there.
      this.forgetLocal(name);
      this.outcomes.recordGone(name, this.remote);
    });
  }

  private forgetLocal(name: string): void {
    this.localEntries.delete(name);
    this.confirmedManifests.delete(name);
    this.lastOutcomes.delete(name);
  }

  /**
   * In sync with the bucket: watched inside only while it may still change (a change to one long
   * quiet is the next sweep's to find, as a conflict), or while activity has it settling again.
   */
  private releaseWatch(stat: SnapshotStat): void {
    if (!this.settler.isSettling(stat.name)) this.watcher.releaseInside(stat.name, stat.newestChangeMs);
  }

  /** Cancels the snapshot's upload, if there is one; the store may be checked then (see OutageAfterPrune). */
  private cancelUpload(name: string, reason: AppError): void {
    if (!this.jobs.cancel(name, reason)) return;
    const startedMs = this.uploading.get(name)?.startedMs;
    if (startedMs !== undefined) this.outageAfterPrune.uploadCancelled(name, startedMs);
  }

  private async abortStaleMultipartUploads(log: Logger): Promise<void> {
    const thresholdMs = this.options.staleMultipartMs ?? HOUR_MS;
    let uploads;
    try {
      uploads = await this.options.store.listMultipartUploads('');
    } catch (error) {
      log.debug('cannot list multipart uploads; skipping cleanup', { error: describeError(error) });
      return;
    }
    const active = new Set(this.jobs.pendingNames());
    for (const upload of uploads) {
      const snapshot = upload.key.split('/')[0] ?? '';
      if (active.has(snapshot) || this.now() - upload.initiatedMs < thresholdMs) continue;
      try {
        await this.options.store.abortMultipartUpload(upload);
        log.info('aborted stale multipart upload', { key: upload.key, snapshot, ageMs: this.now() - upload.initiatedMs });
      } catch (error) {
        log.warn('cannot abort stale multipart upload', { key: upload.key, error: describeError(error) });
      }
    }
  }

  status(): AgentStatus {
    return buildStatus({
      state: this.options.state.current,
      stateSaves: this.options.state.health,
      remote: this.remote,
      local: this.localEntries,
      jobs: this.jobs,
      settling: this.settler.settlingCount,
      health: this.health,
      nextSweepMs: this.started ? this.schedule.nextRunMs() : undefined,
      watching: this.watcher.isRunning,
      verification: this.verification,
    });
  }
}

/**
 * Snapshots statted ahead of a sweep's comparison: thousands of stats cost thread-pool round
 * trips, not CPU, so a few in flight keep the pool busy; more would only hold stats in memory.
 */
const SWEEP_STATS_AHEAD = 16;
