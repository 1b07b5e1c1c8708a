// Counters resumed from the persisted totals behave as Prometheus counters within one process:
// they start from those totals once, move only when something happens, and a scrape changes nothing.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { Metrics, type MetricsSource } from '../../src/metrics.js';
import { OutcomeRecorder } from '../../src/outcomes.js';
import type { RemoteIndex } from '../../src/remote/remote-index.js';
import { buildManifest } from '../../src/snapshot/manifest.js';
import type { SnapshotStat } from '../../src/snapshot/scan.js';
import { agentStateSchema, freshAgentState, type Counters } from '../../src/state/agent-state.js';
import { PersistedJson } from '../../src/state/persisted.js';
import type { SnapshotOutcome } from '../../src/upload/snapshot-uploader.js';
import { parseExposition, sampleValue } from '../helpers/prometheus.js';

const PERSISTED = ['memsync_snapshots_uploaded_total', 'memsync_uploaded_bytes_total', 'memsync_delta_bytes_total', 'memsync_conflicts_total', 'memsync_pruned_before_upload_total'] as const;

function sourceOf(counters: () => Counters): MetricsSource {
  return {
    counters,
    lastSuccessAtMs: () => undefined,
    uploadQueue: () => ({ waiting: 0, uploading: 0 }),
    remoteAvailable: () => true,
    stateSaved: () => true,
    localFileOperationsStuck: () => 0,
  };
}

async function values(metrics: Metrics): Promise<Record<(typeof PERSISTED)[number], number>> {
  const exposition = parseExposition(await metrics.render());
  return Object.fromEntries(PERSISTED.map((name) => [name, sampleValue(exposition, name)])) as Record<(typeof PERSISTED)[number], number>;
}

const emptyIndex = (): RemoteIndex => ({ snapshots: new Map(), ignoredKeys: 0, listedAtMs: 0 });
const statOf = (name: string): SnapshotStat => ({ name, timeMs: 0 }) as unknown as SnapshotStat;

function uploaded(name: string, bytesSent: number, bytesDelta: number): SnapshotOutcome {
  return {
    outcome: 'uploaded',
    manifest: buildManifest(name, 'directory', [{ path: 'metadata.json', size: bytesSent + bytesDelta, sha256: 'a'.repeat(64) }]),
    manifestEtag: 'etag',
    encrypted: false,
    filesSent: 1,
    bytes: bytesSent + bytesDelta,
    bytesSent,
    bytesCopied: 0,
    filesCopied: 0,
    bytesDelta,
    filesDelta: bytesDelta > 0 ? 1 : 0,
    durationMs: 1500,
  } as unknown as SnapshotOutcome;
}

describe('persisted counters in /metrics', () => {
  it('start from the persisted totals once; scrapes do not move them, and a lower persisted value never lowers them', async () => {
    const metrics = new Metrics({ enabled: true, processMetrics: false });
    let persisted: Counters = { ...freshAgentState().counters, snapshotsUploaded: 7, bytesUploaded: 7000, bytesDelta: 300, conflicts: 2, prunedBeforeUpload: 1 };
    metrics.readFrom(sourceOf(() => persisted));
    const atStart = { memsync_snapshots_uploaded_total: 7, memsync_uploaded_bytes_total: 7000, memsync_delta_bytes_total: 300, memsync_conflicts_total: 2, memsync_pruned_before_upload_total: 1 };
    expect(await values(metrics)).toEqual(atStart);
    expect(await values(metrics)).toEqual(atStart);

    // Whatever the source says after the start (here: a fresh state document), a counter never goes down.
    persisted = freshAgentState().counters;
    expect(await values(metrics)).toEqual(atStart);
  });

  it('go up with what the process records: uploads, bytes, conflicts and snapshots pruned before upload', async () => {
    const metrics = new Metrics({ enabled: true, processMetrics: false });
    const state = new PersistedJson(undefined, agentStateSchema, freshAgentState, silentLogger);
    state.update((s) => {
      s.counters.snapshotsUploaded = 3;
      s.counters.bytesUploaded = 100;
    });
    metrics.readFrom(sourceOf(() => state.current.counters));
    const recorder = new OutcomeRecorder(state, silentLogger, () => 1_000, metrics);

    recorder.record(statOf('auto_20260101_000000'), uploaded('auto_20260101_000000', 40, 5), emptyIndex());
    recorder.recordGone('auto_20260101_010000', emptyIndex());
    const conflict = {
      outcome: 'conflict',
      manifest: buildManifest('auto_20260101_020000', 'directory', []),
      conflict: { localDigest: 'l', remoteDigest: 'r', files: [] },
    } as unknown as SnapshotOutcome;
    recorder.record(statOf('auto_20260101_020000'), conflict, emptyIndex());
    // The same conflict found again is not a new one.
    recorder.record(statOf('auto_20260101_020000'), conflict, emptyIndex());

    expect(await values(metrics)).toEqual({
      memsync_snapshots_uploaded_total: 4,
      memsync_uploaded_bytes_total: 140,
      memsync_delta_bytes_total: 5,
      memsync_conflicts_total: 1,
      memsync_pruned_before_upload_total: 1,
    });
    const exposition = parseExposition(await metrics.render());
    expect(sampleValue(exposition, 'memsync_upload_duration_seconds_count')).toBe(1);
    expect(sampleValue(exposition, 'memsync_upload_duration_seconds_sum')).toBe(1.5);
  });
});
