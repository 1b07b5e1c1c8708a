import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Metrics, type MetricsSource } from '../../src/metrics.js';
import { freshAgentState, type Counters } from '../../src/state/agent-state.js';
import { parseExposition, sampleValue, type Exposition } from '../helpers/prometheus.js';

const MEMSYNC_METRICS = [
  'memsync_enabled',
  'memsync_snapshots_uploaded_total',
  'memsync_uploaded_bytes_total',
  'memsync_upload_failures_total',
  'memsync_upload_duration_seconds',
  'memsync_upload_queue_depth',
  'memsync_uploads_in_flight',
  'memsync_last_success_timestamp_seconds',
  'memsync_conflicts_total',
  'memsync_sweep_duration_seconds',
  'memsync_restores_total',
  'memsync_pruned_before_upload_total',
  'memsync_remote_available',
];

interface FakeSource extends MetricsSource {
  counterValues: Counters;
  queue: { waiting: number; uploading: number };
  available: boolean | undefined;
  lastSuccessMs: number | undefined;
  saved: boolean;
}

function fakeSource(overrides: Partial<Counters> = {}): FakeSource {
  const source: FakeSource = {
    counterValues: { ...freshAgentState().counters, ...overrides },
    queue: { waiting: 0, uploading: 0 },
    available: undefined,
    lastSuccessMs: undefined,
    saved: true,
    stateSaved: () => source.saved,
    localFileOperationsStuck: () => 0,
    counters: () => source.counterValues,
    lastSuccessAtMs: () => source.lastSuccessMs,
    uploadQueue: () => source.queue,
    remoteAvailable: () => source.available,
  };
  return source;
}

async function scrape(metrics: Metrics): Promise<Exposition> {
  return parseExposition(await metrics.render());
}

describe('Metrics', () => {
  it('declares every memsync metric with HELP text and the right type', async () => {
    const exposition = await scrape(new Metrics({ enabled: true, processMetrics: false }));
    for (const name of MEMSYNC_METRICS) expect(exposition.help.get(name), name).toMatch(/\w{3,}/);
    expect(exposition.type.get('memsync_snapshots_uploaded_total')).toBe('counter');
    expect(exposition.type.get('memsync_upload_duration_seconds')).toBe('histogram');
    expect(exposition.type.get('memsync_sweep_duration_seconds')).toBe('histogram');
    expect(exposition.type.get('memsync_upload_queue_depth')).toBe('gauge');
    expect(exposition.type.get('memsync_remote_available')).toBe('gauge');
  });

  it('resumes persisted counters from the source once and reads live gauges at scrape time', async () => {
    const metrics = new Metrics({ enabled: true, processMetrics: false });
    const source = fakeSource({ snapshotsUploaded: 3, bytesUploaded: 12_345, conflicts: 1, prunedBeforeUpload: 2 });
    source.queue = { waiting: 4, uploading: 2 };
    source.available = true;
    source.lastSuccessMs = 1_767_225_600_500;
    metrics.readFrom(source);

    let exposition = await scrape(metrics);
    expect(sampleValue(exposition, 'memsync_enabled')).toBe(1);
    expect(sampleValue(exposition, 'memsync_snapshots_uploaded_total')).toBe(3);
    expect(sampleValue(exposition, 'memsync_uploaded_bytes_total')).toBe(12_345);
    expect(sampleValue(exposition, 'memsync_conflicts_total')).toBe(1);
    expect(sampleValue(exposition, 'memsync_pruned_before_upload_total')).toBe(2);
    expect(sampleValue(exposition, 'memsync_upload_queue_depth')).toBe(4);
    expect(sampleValue(exposition, 'memsync_uploads_in_flight')).toBe(2);
    expect(sampleValue(exposition, 'memsync_remote_available')).toBe(1);
    expect(sampleValue(exposition, 'memsync_last_success_timestamp_seconds')).toBe(1_767_225_600.5);

    metrics.snapshotUploaded({ seconds: 1, bytesSent: 7_655, bytesCopied: 0, bytesDelta: 0 });
    source.queue = { waiting: 0, uploading: 0 };
    source.available = false;
    exposition = await scrape(metrics);
    expect(sampleValue(exposition, 'memsync_snapshots_uploaded_total')).toBe(4);
    expect(sampleValue(exposition, 'memsync_uploaded_bytes_total')).toBe(20_000);
    expect(sampleValue(exposition, 'memsync_upload_queue_depth')).toBe(0);
    expect(sampleValue(exposition, 'memsync_remote_available')).toBe(0);
    expect(sampleValue(exposition, 'memsync_state_saved')).toBe(1);

    source.saved = false;
    exposition = await scrape(metrics);
    expect(sampleValue(exposition, 'memsync_state_saved')).toBe(0);
  });

  it('observes upload durations in a histogram from 0.1 s to 30 min', async () => {
    const metrics = new Metrics({ enabled: true, processMetrics: false });
    for (const seconds of [0.05, 3, 2000]) metrics.snapshotUploaded({ seconds, bytesSent: 0, bytesCopied: 0, bytesDelta: 0 });
    const exposition = await scrape(metrics);
    const bucket = (le: string): number => sampleValue(exposition, 'memsync_upload_duration_seconds_bucket', { le });
    expect(bucket('0.1')).toBe(1);
    expect(bucket('2.5')).toBe(1);
    expect(bucket('5')).toBe(2);
    expect(bucket('1800')).toBe(2);
    expect(bucket('+Inf')).toBe(3);
    expect(sampleValue(exposition, 'memsync_upload_duration_seconds_count')).toBe(3);
    expect(sampleValue(exposition, 'memsync_upload_duration_seconds_sum')).toBeCloseTo(2003.05, 6);
  });

  it('counts upload failures by error kind, common kinds present at 0 from the start', async () => {
    const metrics = new Metrics({ enabled: true, processMetrics: false });
    expect(sampleValue(await scrape(metrics), 'memsync_upload_failures_total', { reason: 'remote_unavailable' })).toBe(0);
    metrics.uploadFailed('remote_unavailable');
    metrics.uploadFailed('remote_unavailable');
    metrics.uploadFailed('not_found');
    const exposition = await scrape(metrics);
    expect(sampleValue(exposition, 'memsync_upload_failures_total', { reason: 'remote_unavailable' })).toBe(2);
    expect(sampleValue(exposition, 'memsync_upload_failures_total', { reason: 'not_found' })).toBe(1);
    expect(sampleValue(exposition, 'memsync_upload_failures_total', { reason: 'local_io' })).toBe(0);
  });

  it('records sweeps by reason and result, folding unknown reasons into "other"', async () => {
    const metrics = new Metrics({ enabled: true, processMetrics: false });
    metrics.sweepFinished('start', 'ok', 0.2);
    metrics.sweepFinished('scheduled', 'ok', 1.5);
    metrics.sweepFinished('scheduled', 'ok', 0.5);
    metrics.sweepFinished('from-a-plugin', 'failed', 7);
    const exposition = await scrape(metrics);
    expect(sampleValue(exposition, 'memsync_sweep_duration_seconds_count', { reason: 'start', result: 'ok' })).toBe(1);
    expect(sampleValue(exposition, 'memsync_sweep_duration_seconds_count', { reason: 'scheduled', result: 'ok' })).toBe(2);
    expect(sampleValue(exposition, 'memsync_sweep_duration_seconds_sum', { reason: 'scheduled', result: 'ok' })).toBe(2);
    expect(sampleValue(exposition, 'memsync_sweep_duration_seconds_count', { reason: 'other', result: 'failed' })).toBe(1);
    expect(sampleValue(exposition, 'memsync_sweep_duration_seconds_bucket', { reason: 'scheduled', result: 'ok', le: '1' })).toBe(1);
  });

  it('counts restores by result', async () => {
    const metrics = new Metrics({ enabled: true, processMetrics: false });
    metrics.restoreFinished('ok');
    metrics.restoreFinished('ok');
    const exposition = await scrape(metrics);
    expect(sampleValue(exposition, 'memsync_restores_total', { result: 'ok' })).toBe(2);
    expect(sampleValue(exposition, 'memsync_restores_total', { result: 'failed' })).toBe(0);
  });

  it('answers with zeros and memsync_enabled 0 when sync is disabled (no source)', async () => {
    const exposition = await scrape(new Metrics({ enabled: false, processMetrics: false }));
    expect(sampleValue(exposition, 'memsync_enabled')).toBe(0);
    expect(sampleValue(exposition, 'memsync_remote_available')).toBe(0);
    expect(sampleValue(exposition, 'memsync_snapshots_uploaded_total')).toBe(0);
    expect(sampleValue(exposition, 'memsync_upload_queue_depth')).toBe(0);
    expect(sampleValue(exposition, 'memsync_last_success_timestamp_seconds')).toBe(0);
  });

  it('keeps each instance in its own registry, with the process metrics, so instances do not collide', async () => {
    const first = new Metrics({ enabled: true });
    const second = new Metrics({ enabled: true });
    first.uploadFailed('integrity');
    // Process CPU is counted from the registry's creation, in whole scheduler ticks: spend some, so it cannot read 0.
    const until = process.hrtime.bigint() + 50_000_000n;
    while (process.hrtime.bigint() < until) createHash('sha256').update('tick').digest();
    const [a, b] = [await scrape(first), await scrape(second)];
    expect(sampleValue(a, 'memsync_upload_failures_total', { reason: 'integrity' })).toBe(1);
    expect(sampleValue(b, 'memsync_upload_failures_total', { reason: 'integrity' })).toBe(0);
    expect(sampleValue(a, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(a.type.get('nodejs_heap_size_used_bytes')).toBe('gauge');
    expect(first.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });
});
