import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ErrorKind } from './errors.js';
import type { Counters } from './state/agent-state.js';

/**
 * Prometheus metrics of one memsync instance, in a registry of its own: the global default
 * registry would make two instances in one process (tests, an embedding app) collide.
 *
 * What memsync also counts in its persisted state (snapshots and bytes uploaded, conflicts,
 * snapshots pruned before upload) resumes from that state's totals once, when the source is
 * set, so those counters survive restarts; from then on they count what the process records,
 * like any counter: a scrape only reads them, and within a process they never go down.
 * Everything else (durations, failures by kind, restores) counts from process start.
 */

/** Live values read at scrape time; the running agent and its state provide them. */
export interface MetricsSource {
  /** The persisted totals the counters resume from: read once, when the source is set. */
  counters(): Counters;
  lastSuccessAtMs(): number | undefined;
  /** Snapshots waiting for an upload slot, and being uploaded. */
  uploadQueue(): { waiting: number; uploading: number };
  /** Undefined until the store has been called once. */
  remoteAvailable(): boolean | undefined;
  /** Whether the last save to the state directory succeeded. */
  stateSaved(): boolean;
  /** Opens and reads of backup files still running past their deadline. */
  localFileOperationsStuck(): number;
}

export interface MetricsOptions {
  enabled: boolean;
  /** prom-client's process and Node.js metrics (CPU, memory, event loop, GC), unprefixed so stock dashboards work. Default true. */
  processMetrics?: boolean;
}

export type MetricsResult = 'ok' | 'failed';

/** A snapshot upload takes from well under a second (metadata only) to half an hour (GBs over a slow link). */
const UPLOAD_BUCKETS_SECONDS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800];
/** A sweep lists the bucket and digests what changed locally; large new snapshots make it minutes. */
const SWEEP_BUCKETS_SECONDS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** Reasons the agent sweeps for; anything else is reported as "other" so the label set stays bounded. */
const SWEEP_REASONS: ReadonlySet<string> = new Set(['start', 'scheduled', 'manual']);
/** Failure kinds an upload commonly ends with, exported at 0 from the start so rate() and alerts see the series. */
const COMMON_UPLOAD_FAILURES: readonly ErrorKind[] = ['remote_unavailable', 'remote_rejected', 'integrity', 'local_io'];

const EVENT_LOOP_SAMPLE_MS = 1000;

export class Metrics {
  private readonly registry = new Registry();
  private source: MetricsSource | undefined;
  private readonly uploadSeconds: Histogram;
  private readonly uploadFailures: Counter<'reason'>;
  private readonly sweepSeconds: Histogram<'reason' | 'result'>;
  private readonly restores: Counter<'result'>;
  private readonly copiedBytes: Counter;
  private readonly retentionDeleted: Counter;
  private readonly snapshotsUploaded: Counter;
  private readonly uploadedBytes: Counter;
  private readonly deltaBytes: Counter;
  private readonly conflicts: Counter;
  private readonly prunedBeforeUpload: Counter;

  constructor(options: MetricsOptions) {
    const registers = [this.registry];
    // prom-client samples event-loop delay with a timer of this period (default 10 ms): 100 wake-ups a
    // second kept an idle agent near 0.7% of a core. Once a second is enough for a sidecar's percentiles.
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });

    new Gauge({ name: 'memsync_enabled', help: 'Whether cloud sync is enabled (CLOUD_SYNC_ENABLED): 1 or 0', registers }).set(options.enabled ? 1 : 0);
    this.uploadSeconds = new Histogram({ name: 'memsync_upload_duration_seconds', help: 'Time to upload one snapshot, from digesting to the manifest written', buckets: UPLOAD_BUCKETS_SECONDS, registers });
    this.uploadFailures = new Counter({ name: 'memsync_upload_failures_total', help: 'Failed snapshot upload attempts, by error kind (each retry counts)', labelNames: ['reason'], registers });
    for (const reason of COMMON_UPLOAD_FAILURES) this.uploadFailures.inc({ reason }, 0);
    this.sweepSeconds = new Histogram({ name: 'memsync_sweep_duration_seconds', help: 'Time to compare the backup directory with the bucket and queue what is missing', labelNames: ['reason', 'result'], buckets: SWEEP_BUCKETS_SECONDS, registers });
    this.restores = new Counter({ name: 'memsync_restores_total', help: 'Snapshot restores (downloads into the backup directory), by result; ok includes already present', labelNames: ['result'], registers });
    for (const result of ['ok', 'failed'] as const) this.restores.inc({ result }, 0);
    this.copiedBytes = new Counter({ name: 'memsync_copied_bytes_total', help: 'Bytes of files created by server-side copy of identical objects already in the bucket, instead of being sent (since process start)', registers });
    this.retentionDeleted = new Counter({ name: 'memsync_retention_deleted_total', help: 'Remote snapshots deleted by the retention policy (CLOUD_SYNC_RETENTION); 0 in a dry run', registers });

    this.snapshotsUploaded = new Counter({ name: 'memsync_snapshots_uploaded_total', help: 'Snapshots uploaded (persisted across restarts)', registers });
    this.deltaBytes = new Counter({ name: 'memsync_delta_bytes_total', help: 'Bytes of files composed server-side from ranges of their previous version instead of being sent (persisted across restarts)', registers });
    this.uploadedBytes = new Counter({ name: 'memsync_uploaded_bytes_total', help: 'Bytes actually sent to the store; files already there are not counted (persisted across restarts)', registers });
    this.conflicts = new Counter({ name: 'memsync_conflicts_total', help: 'Snapshots found remotely under the same name with different content (persisted across restarts)', registers });
    this.prunedBeforeUpload = new Counter({ name: 'memsync_pruned_before_upload_total', help: 'Snapshots the memory service removed before memsync could upload them (persisted across restarts)', registers });
    this.liveGauge('memsync_last_success_timestamp_seconds', 'When the last snapshot upload succeeded, seconds since the epoch; 0 before the first', (s) => (s.lastSuccessAtMs() ?? 0) / 1000);
    this.liveGauge('memsync_upload_queue_depth', 'Snapshots waiting for an upload slot', (s) => s.uploadQueue().waiting);
    this.liveGauge('memsync_uploads_in_flight', 'Snapshots being uploaded now', (s) => s.uploadQueue().uploading);
    this.liveGauge('memsync_state_saved', 'Whether the last save to the state directory (CLOUD_SYNC_STATE_DIR) succeeded: 1 or 0 (1 when sync is disabled)', (s) => (s.stateSaved() ? 1 : 0), 1);
    this.liveGauge('memsync_local_file_operations_stuck', 'Opens and reads of backup files still running past CLOUD_SYNC_FILE_DEADLINE_MS (each holds a thread of the I/O pool)', (s) => s.localFileOperationsStuck());
    this.liveGauge('memsync_remote_available', 'Whether the last call to the store succeeded: 1 or 0 (0 before the first call and when sync is disabled)', (s) => (s.remoteAvailable() === true ? 1 : 0));
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * Where scrape-time values come from; until set (and when sync is disabled) they read 0. The
   * first source also gives the persisted totals the counters resume from: set it before
   * anything is recorded, or what was recorded would be counted twice.
   */
  readFrom(source: MetricsSource): void {
    const first = this.source === undefined;
    this.source = source;
    if (!first) return;
    const persisted = source.counters();
    this.snapshotsUploaded.inc(persisted.snapshotsUploaded);
    this.uploadedBytes.inc(persisted.bytesUploaded);
    this.deltaBytes.inc(persisted.bytesDelta);
    this.conflicts.inc(persisted.conflicts);
    this.prunedBeforeUpload.inc(persisted.prunedBeforeUpload);
  }

  /** One snapshot uploaded; `bytesCopied` counts from process start, the others resume from the persisted totals. */
  snapshotUploaded(upload: { seconds: number; bytesSent: number; bytesCopied: number; bytesDelta: number }): void {
    this.uploadSeconds.observe(upload.seconds);
    this.snapshotsUploaded.inc();
    this.uploadedBytes.inc(upload.bytesSent);
    this.copiedBytes.inc(upload.bytesCopied);
    this.deltaBytes.inc(upload.bytesDelta);
  }

  /** A new conflict (the same one found again is not counted again). */
  conflictFound(): void {
    this.conflicts.inc();
  }

  snapshotPrunedBeforeUpload(): void {
    this.prunedBeforeUpload.inc();
  }

  uploadFailed(kind: ErrorKind): void {
    this.uploadFailures.inc({ reason: kind });
  }

  sweepFinished(reason: string, result: MetricsResult, seconds: number): void {
    this.sweepSeconds.observe({ reason: SWEEP_REASONS.has(reason) ? reason : 'other', result }, seconds);
  }

  restoreFinished(result: MetricsResult): void {
    this.restores.inc({ result });
  }

  snapshotsDeletedByRetention(count: number): void {
    this.retentionDeleted.inc(count);
  }

  /** The exposition text, in the format named by contentType. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  private liveGauge(name: string, help: string, read: (source: MetricsSource) => number, unsetValue = 0): void {
    const source = (): MetricsSource | undefined => this.source;
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        const current = source();
        this.set(current === undefined ? unsetValue : read(current));
      },
    });
  }
}
