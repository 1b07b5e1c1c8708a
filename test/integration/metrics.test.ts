import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildMemsync, type Memsync } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { parseExposition, sampleValue, type Exposition } from '../helpers/prometheus.js';
import { createTestBucket, emptyAndDeleteBucket } from '../helpers/s3-fixture.js';
import { s3Env, testServer } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';

const TOKEN = 'test-token-0123456789abcdef';
const FAST_RETRY = { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 };
const SNAPSHOT = 'auto_20260101_000000';
const FILES = { 'metadata.json': '{"memories":[1,2,3]}', 'config.json': '{"c":1}' };

let bucket: string;
let backupDir: string;
let env: Record<string, string>;
const running: Memsync[] = [];

beforeEach(async () => {
  const server = testServer();
  bucket = await createTestBucket(server, 'metrics');
  const root = await tempDir('memsync-metrics');
  backupDir = path.join(root, 'backups');
  await mkdir(backupDir);
  env = {
    ...s3Env(server, bucket),
    CLOUD_SYNC_BACKUP_DIR: backupDir,
    CLOUD_SYNC_STATE_DIR: path.join(root, 'state'),
    CLOUD_SYNC_SETTLE_MS: '200',
    CLOUD_SYNC_SHUTDOWN_TIMEOUT_MS: '2000',
  };
});

afterEach(async () => {
  for (const memsync of running.splice(0)) await memsync.stop();
  await emptyAndDeleteBucket(testServer(), bucket);
});

async function start(extraEnv: Record<string, string> = {}): Promise<Memsync> {
  const memsync = await buildMemsync(loadConfig({ ...env, ...extraEnv }), silentLogger, { retry: FAST_RETRY });
  running.push(memsync);
  await memsync.start({ listen: false });
  return memsync;
}

async function scrape(memsync: Memsync, headers: Record<string, string> = {}): Promise<Exposition> {
  const answer = await memsync.server.inject({ url: '/metrics', headers });
  expect(answer.statusCode).toBe(200);
  expect(answer.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(answer.body);
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('GET /metrics', () => {
  it('reports an upload, the start sweep, and restores by result', async () => {
    await mkdir(path.join(backupDir, SNAPSHOT));
    for (const [file, content] of Object.entries(FILES)) await writeFile(path.join(backupDir, SNAPSHOT, file), content);
    const startedSeconds = Date.now() / 1000;
    const memsync = await start();
    await waitFor(async () => sampleValue(await scrape(memsync), 'memsync_snapshots_uploaded_total') === 1, 30_000);

    let metrics = await scrape(memsync);
    const contentBytes = Object.values(FILES).reduce((sum, content) => sum + Buffer.byteLength(content), 0);
    expect(sampleValue(metrics, 'memsync_enabled')).toBe(1);
    expect(sampleValue(metrics, 'memsync_remote_available')).toBe(1);
    expect(sampleValue(metrics, 'memsync_uploaded_bytes_total')).toBe(contentBytes);
    expect(sampleValue(metrics, 'memsync_upload_duration_seconds_count')).toBe(1);
    expect(sampleValue(metrics, 'memsync_upload_duration_seconds_sum')).toBeGreaterThan(0);
    expect(sampleValue(metrics, 'memsync_upload_queue_depth')).toBe(0);
    expect(sampleValue(metrics, 'memsync_uploads_in_flight')).toBe(0);
    expect(sampleValue(metrics, 'memsync_upload_failures_total', { reason: 'remote_unavailable' })).toBe(0);
    expect(sampleValue(metrics, 'memsync_sweep_duration_seconds_count', { reason: 'start', result: 'ok' })).toBe(1);
    const lastSuccess = sampleValue(metrics, 'memsync_last_success_timestamp_seconds');
    expect(lastSuccess).toBeGreaterThanOrEqual(Math.floor(startedSeconds));
    expect(lastSuccess).toBeLessThanOrEqual(Date.now() / 1000);
    expect(sampleValue(metrics, 'process_resident_memory_bytes')).toBeGreaterThan(0);

    // Lost locally after the upload: not "pruned before upload", and restorable.
    await rm(path.join(backupDir, SNAPSHOT), { recursive: true });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: `/sync/download?confirm=true&name=${SNAPSHOT}` })).statusCode).toBe(200);
    expect((await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/download?confirm=true&name=auto_20990101_000000' })).statusCode).toBe(404);
    metrics = await scrape(memsync);
    expect(sampleValue(metrics, 'memsync_restores_total', { result: 'ok' })).toBe(1);
    expect(sampleValue(metrics, 'memsync_restores_total', { result: 'failed' })).toBe(1);
    expect(sampleValue(metrics, 'memsync_pruned_before_upload_total')).toBe(0);
    expect(sampleValue(metrics, 'memsync_snapshots_uploaded_total')).toBe(1);
  });

  it('requires the API token like /sync/* when one is set', async () => {
    const memsync = await start({ CLOUD_SYNC_API_TOKEN: TOKEN });
    expect((await memsync.server.inject({ url: '/metrics' })).statusCode).toBe(401);
    expect((await memsync.server.inject({ url: '/metrics', headers: { authorization: 'Bearer wrong-token-0123456789' } })).statusCode).toBe(401);
    expect(sampleValue(await scrape(memsync, { authorization: `Bearer ${TOKEN}` }), 'memsync_enabled')).toBe(1);
  });

  it('answers without the token when CLOUD_SYNC_METRICS_OPEN=true, and only /metrics opens', async () => {
    const memsync = await start({ CLOUD_SYNC_API_TOKEN: TOKEN, CLOUD_SYNC_METRICS_OPEN: 'true' });
    expect(sampleValue(await scrape(memsync), 'memsync_enabled')).toBe(1);
    expect((await memsync.server.inject({ url: '/sync/status' })).statusCode).toBe(401);
  });

  it('answers 200 with memsync_enabled 0 when cloud sync is disabled', async () => {
    const memsync = await buildMemsync(loadConfig({ CLOUD_SYNC_BACKUP_DIR: backupDir }), silentLogger);
    running.push(memsync);
    await memsync.start({ listen: false });
    const metrics = await scrape(memsync);
    expect(sampleValue(metrics, 'memsync_enabled')).toBe(0);
    expect(sampleValue(metrics, 'memsync_remote_available')).toBe(0);
    expect(sampleValue(metrics, 'memsync_snapshots_uploaded_total')).toBe(0);
  });
});
