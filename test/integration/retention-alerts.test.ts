// Retention and alerts against the real S3 server of the test run: memsync built by
// buildMemsync (no listening), the bucket seeded with the SDK, webhooks received by a local
// HTTP server on 127.0.0.1. Every wait is bounded.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import path from 'node:path';
import { ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildMemsync, type BuildOptions, type Memsync } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { AppError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import type { RemoteStore } from '../../src/remote/store.js';
import { buildManifest, serializeManifest } from '../../src/snapshot/manifest.js';
import { statSnapshotIfPresent } from '../../src/snapshot/scan.js';
import { judgeSettle } from '../../src/watch/settle.js';
import { mapConcurrent } from '../helpers/concurrent.js';
import { createTestBucket, emptyAndDeleteBucket, s3ClientFor } from '../helpers/s3-fixture.js';
import { s3Env, testServer } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';

const PREFIX = 'memories/';
const MANIFEST = '.memsync-manifest.json';
const FAST_RETRY = { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 };
/** A cron expression that never fires during a test run. */
const NEVER_SOON = '0 0 1 1 *';
const SETTLE_MS = 200;

interface Setup {
  bucket: string;
  backupDir: string;
  env: Record<string, string>;
}

let client: S3Client;
let setup: Setup;
const running: Memsync[] = [];
const closers: (() => Promise<void>)[] = [];

beforeAll(() => {
  client = s3ClientFor(testServer());
});
afterAll(() => client?.destroy());

beforeEach(async () => {
  const server = testServer();
  const bucket = await createTestBucket(server, 'retention');
  const root = await tempDir('memsync-retention');
  const backupDir = path.join(root, 'backups');
  await mkdir(backupDir);
  setup = {
    bucket,
    backupDir,
    env: {
      ...s3Env(server, bucket),
      CLOUD_SYNC_PREFIX: PREFIX,
      CLOUD_SYNC_BACKUP_DIR: backupDir,
      CLOUD_SYNC_STATE_DIR: path.join(root, 'state'),
      CLOUD_SYNC_SETTLE_MS: String(SETTLE_MS),
      CLOUD_SYNC_SHUTDOWN_TIMEOUT_MS: '2000',
      CLOUD_SYNC_SCHEDULE: NEVER_SOON,
    },
  };
});

afterEach(async () => {
  for (const memsync of running.splice(0)) await memsync.stop();
  for (const close of closers.splice(0)) await close();
  await emptyAndDeleteBucket(testServer(), setup.bucket);
});

async function start(extraEnv: Record<string, string>, wrap?: (real: RemoteStore) => RemoteStore, options: BuildOptions = {}): Promise<Memsync> {
  const config = loadConfig({ ...setup.env, ...extraEnv });
  const real = new S3RemoteStore({ ...config.s3, partsInFlight: 2 });
  const memsync = await buildMemsync(config, silentLogger, { retry: FAST_RETRY, store: wrap?.(real) ?? real, ...options });
  running.push(memsync);
  await memsync.start({ listen: false });
  return memsync;
}

/** A store that behaves like `real` except for the methods given. */
function wrapStore(real: RemoteStore, overrides: Partial<Pick<RemoteStore, 'delete' | 'put'>>): RemoteStore {
  return new Proxy(real, {
    get(target, property) {
      if (property === 'delete' && overrides.delete !== undefined) return overrides.delete;
      if (property === 'put' && overrides.put !== undefined) return overrides.put;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A complete remote snapshot the way memsync lays it out: files, then the manifest. */
async function seedRemote(name: string, files: Record<string, string>): Promise<void> {
  const entries = Object.entries(files);
  for (const [file, content] of entries) {
    await client.send(new PutObjectCommand({ Bucket: setup.bucket, Key: `${PREFIX}${name}/${file}`, Body: content }));
  }
  const manifest = buildManifest(name, 'directory', entries.map(([file, content]) => ({ path: file, size: Buffer.byteLength(content), sha256: sha256(content) })));
  await client.send(new PutObjectCommand({ Bucket: setup.bucket, Key: `${PREFIX}${name}/${MANIFEST}`, Body: serializeManifest(manifest) }));
}

async function writeLocal(name: string, files: Record<string, string>): Promise<void> {
  const dir = path.join(setup.backupDir, name);
  await mkdir(dir, { recursive: true });
  for (const [file, content] of Object.entries(files)) await writeFile(path.join(dir, file), content);
  // Settled by memsync's own rule before it starts, so the start sweep uploads it rather than leaving it to the watcher.
  await waitFor(`${name} settled`, async () => {
    const stat = await statSnapshotIfPresent(setup.backupDir, name);
    return stat !== undefined && judgeSettle(undefined, stat, Date.now(), SETTLE_MS).verdict.verdict === 'settled' ? true : undefined;
  });
}

/** The start sweep has finished (status records it): what it found is known to memsync. */
async function startSweepDone(memsync: Memsync): Promise<void> {
  await waitFor('the start sweep', async () => ((await memsync.server.inject({ url: '/sync/status' })).json() as { lastSweep?: unknown }).lastSweep ?? undefined);
}

/** Until the clock reaches `ms`: for a rate limit measured from a moment the test has observed. */
async function clockPast(ms: number): Promise<void> {
  await waitFor(`the clock past ${new Date(ms).toISOString()}`, () => (Date.now() >= ms ? true : undefined));
}

/** Every key in the bucket, grouped: snapshot name to its file names. */
async function listBucket(): Promise<Map<string, string[]>> {
  const snapshots = new Map<string, string[]>();
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: setup.bucket, Prefix: PREFIX, ContinuationToken: token }));
    for (const object of page.Contents ?? []) {
      const [name = '', ...rest] = (object.Key ?? '').slice(PREFIX.length).split('/');
      if (rest.length === 0) continue;
      snapshots.set(name, [...(snapshots.get(name) ?? []), rest.join('/')]);
    }
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return snapshots;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface RetentionStatusBody {
  retention: { policy: string | null; dryRun: boolean; lastRunAt: string | null; kept: number; lastDeleted: string[]; wouldDelete: string[]; lastError: string | null };
}

async function retentionStatus(memsync: Memsync): Promise<RetentionStatusBody['retention']> {
  return ((await memsync.server.inject({ url: '/sync/status' })).json() as RetentionStatusBody).retention;
}

/** 30 snapshots: 2025-01-01 (a Wednesday, ISO week 1) to 2025-01-10 (week 2), at 00:00, 08:00 and 16:00 UTC. */
const DAYS = ['01', '02', '03', '04', '05', '06', '07', '08', '09', '10'];
const SEEDED = DAYS.flatMap((day) => ['000000', '080000', '160000'].map((time) => `auto_202501${day}_${time}`));
/**
 * last=4: 10th 16h, 08h, 00h, 9th 16h; daily=3: newest of the 10th, 9th, 8th; weekly=2: newest
 * of week 2 (10th 16h) and of week 1 (5th 16h, a Sunday).
 */
const POLICY = 'last=4,daily=3,weekly=2';
const KEPT_BY_POLICY = ['auto_20250105_160000', 'auto_20250108_160000', 'auto_20250109_160000', 'auto_20250110_000000', 'auto_20250110_080000', 'auto_20250110_160000'];
/** Older than every rule reaches, but present in the backup directory: protected. */
const LOCAL_OLD = 'auto_20241201_000000';

async function seedThirty(): Promise<void> {
  await mapConcurrent(SEEDED, 4, (name) => seedRemote(name, { 'metadata.json': `{"snapshot":"${name}"}` }));
}

describe('retention', () => {
  it('keeps exactly what the policy and the protections keep, deleting each manifest before the files', async () => {
    await seedThirty();
    await writeLocal(LOCAL_OLD, { 'metadata.json': '{"local":true}' });
    const deletions: string[] = [];
    const memsync = await start({ CLOUD_SYNC_RETENTION: POLICY }, (real) =>
      wrapStore(real, {
        delete: async (key) => {
          deletions.push(key);
          await real.delete(key);
        },
      }),
    );
    // The start sweep uploads the local snapshot, then retention runs on a fresh listing.
    const status = await waitFor('retention run', async () => {
      const s = await retentionStatus(memsync);
      return s.lastRunAt === null ? undefined : s;
    });

    const expectedKept = [...KEPT_BY_POLICY, LOCAL_OLD].sort();
    const expectedDeleted = SEEDED.filter((name) => !KEPT_BY_POLICY.includes(name)).sort();
    expect(status).toMatchObject({ policy: POLICY, dryRun: false, kept: expectedKept.length, wouldDelete: [], lastError: null });
    expect([...status.lastDeleted].sort()).toEqual(expectedDeleted);

    const bucket = await listBucket();
    expect([...bucket.keys()].sort()).toEqual(expectedKept);
    for (const name of expectedKept) expect(bucket.get(name)?.sort(), name).toEqual([MANIFEST, 'metadata.json']);

    // Manifest first: for each deleted snapshot its manifest is the first of its keys to go.
    const bySnapshot = new Map<string, string[]>();
    for (const key of deletions) {
      const [name = '', ...rest] = key.split('/');
      // The start probes conditional writes with a key of its own; only snapshots matter here.
      if (rest.length > 0 && !name.startsWith('.')) bySnapshot.set(name, [...(bySnapshot.get(name) ?? []), rest.join('/')]);
    }
    expect([...bySnapshot.keys()].sort()).toEqual(expectedDeleted);
    for (const [name, files] of bySnapshot) expect(files, name).toEqual([MANIFEST, 'metadata.json']);

    const metrics = await memsync.server.inject({ url: '/metrics' });
    expect(metrics.body).toMatch(new RegExp(`^memsync_retention_deleted_total ${expectedDeleted.length}$`, 'm'));
    // Listings answer from the index retention updated, without the deleted snapshots.
    const listed = (await memsync.server.inject({ url: '/sync/snapshots?limit=100' })).json() as { snapshots: { name: string }[] };
    expect(listed.snapshots.map((s) => s.name).sort()).toEqual(expectedKept);
  });

  it('dry run deletes nothing and reports what it would delete', async () => {
    await seedThirty();
    await writeLocal(LOCAL_OLD, { 'metadata.json': '{"local":true}' });
    const memsync = await start({ CLOUD_SYNC_RETENTION: POLICY, CLOUD_SYNC_RETENTION_DRY_RUN: 'true' });
    const status = await waitFor('retention dry run', async () => {
      const s = await retentionStatus(memsync);
      return s.lastRunAt === null ? undefined : s;
    });
    expect(status).toMatchObject({ policy: POLICY, dryRun: true, lastDeleted: [] });
    expect([...status.wouldDelete].sort()).toEqual(SEEDED.filter((name) => !KEPT_BY_POLICY.includes(name)).sort());
    const bucket = await listBucket();
    expect([...bucket.keys()].sort()).toEqual([...SEEDED, LOCAL_OLD].sort());
    expect((await memsync.server.inject({ url: '/metrics' })).body).toMatch(/^memsync_retention_deleted_total 0$/m);
  });

  it('is off without CLOUD_SYNC_RETENTION: nothing is deleted', async () => {
    await mapConcurrent(SEEDED.slice(0, 5), 4, (name) => seedRemote(name, { 'metadata.json': name }));
    const memsync = await start({});
    const report = (await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/upload' })).json() as { failed: string[] };
    expect(report.failed).toEqual([]);
    expect(await retentionStatus(memsync)).toMatchObject({ policy: null, lastRunAt: null });
    // Stopping waits for the work that follows sweeps: whatever retention would have deleted is gone by then.
    running.splice(running.indexOf(memsync), 1);
    await memsync.stop();
    expect([...(await listBucket()).keys()].sort()).toEqual(SEEDED.slice(0, 5));
  });
});

// ---------------------------------------------------------------- alerts

interface Received {
  method: string;
  url: string;
  body: Record<string, unknown> | undefined;
}

/** A webhook receiver on 127.0.0.1 recording every request. */
async function receiver(): Promise<{ url: string; requests: Received[] }> {
  const requests: Received[] = [];
  const server: Server = createServer((request: IncomingMessage, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      requests.push({ method: request.method ?? '', url: request.url ?? '', body: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>) });
      response.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${address.port}`, requests };
}

/** Accepts connections and never answers: the worst webhook. */
async function blackHole(): Promise<string> {
  const sockets = new Set<Socket>();
  const server: TcpServer = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  closers.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${address.port}/hook`;
}

const alertsOf = (requests: Received[], event: string): Record<string, unknown>[] =>
  requests.filter((r) => r.method === 'POST' && r.body?.event === event).map((r) => r.body ?? {});

describe('alerts', () => {
  it('posts conflicts rate-limited with the held-back count, and a restore', async () => {
    const hook = await receiver();
    await seedRemote('auto_20250105_000000', { 'metadata.json': 'remote' });
    await seedRemote('auto_20250106_000000', { 'metadata.json': 'remote' });
    await seedRemote('auto_20250107_000000', { 'metadata.json': 'remote' });
    await seedRemote('auto_20250101_000000', { 'metadata.json': 'to restore' });
    await writeLocal('auto_20250105_000000', { 'metadata.json': 'local!' });
    await writeLocal('auto_20250106_000000', { 'metadata.json': 'local!' });
    const alertIntervalMs = 3000;
    const memsync = await start({ CLOUD_SYNC_NOTIFY_URL: `${hook.url}/hook?token=abc` }, undefined, { alertIntervalMs });
    await startSweepDone(memsync);
    const first = (await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/upload' })).json() as { conflicts: string[] };
    expect(first.conflicts.sort()).toEqual(['auto_20250105_000000', 'auto_20250106_000000']);
    const [conflict] = await waitFor('a conflict alert', () => {
      const found = alertsOf(hook.requests, 'conflict');
      return found.length > 0 ? found : undefined;
    });
    expect(conflict).toMatchObject({ event: 'conflict', suppressed: 0, host: expect.any(String), at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), localSha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(conflict?.text).toEqual(expect.stringContaining('conflict'));
    expect(conflict?.content).toBe(conflict?.text);
    expect(hook.requests[0]?.url).toBe('/hook?token=abc');

    // After the interval (counted from the first alert's own time), the next conflict carries the count of the one held back.
    await clockPast(Date.parse(String(conflict?.at)) + alertIntervalMs);
    expect(alertsOf(hook.requests, 'conflict')).toHaveLength(1);
    await writeLocal('auto_20250107_000000', { 'metadata.json': 'local!' });
    await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/upload' });
    const conflicts = await waitFor('a second conflict alert', () => {
      const found = alertsOf(hook.requests, 'conflict');
      return found.length > 1 ? found : undefined;
    });
    expect(conflicts[1]).toMatchObject({ snapshot: 'auto_20250107_000000', suppressed: 1 });

    const restored = await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/download?confirm=true&backup_name=auto_20250101_000000' });
    expect(restored.statusCode).toBe(200);
    const [restore] = await waitFor('a restore alert', () => {
      const found = alertsOf(hook.requests, 'restore');
      return found.length > 0 ? found : undefined;
    });
    expect(restore).toMatchObject({ snapshot: 'auto_20250101_000000', files: 1, verification: 'sha256' });
  });

  it('posts the first failure of a snapshot after retries, then recovery; heartbeats only after a sweep without failures', async () => {
    const hook = await receiver();
    let failing = true;
    let failedPuts = 0;
    const name = 'auto_20250201_000000';
    await writeLocal(name, { 'metadata.json': '{"m":1}' });
    const memsync = await start({ CLOUD_SYNC_NOTIFY_URL: `${hook.url}/hook`, CLOUD_SYNC_HEARTBEAT_URL: `${hook.url}/ping/uuid` }, (real) =>
      wrapStore(real, {
        put: async (key, body, options) => {
          if (failing && key.startsWith(`${name}/`)) {
            failedPuts += 1;
            throw new AppError('remote_unavailable', `put ${key}: simulated outage`);
          }
          await real.put(key, body, options);
        },
      }),
    );
    const [failure] = await waitFor('an upload_failed alert', () => {
      const found = alertsOf(hook.requests, 'upload_failed');
      return found.length > 0 ? found : undefined;
    });
    // Sent after the uploader's retries, not per attempt.
    expect(failedPuts).toBeGreaterThanOrEqual(FAST_RETRY.attempts);
    expect(failure).toMatchObject({ event: 'upload_failed', snapshot: name, kind: 'remote_unavailable', message: expect.stringContaining('simulated outage') });
    // A sweep with a failed upload does not ping: the first ping comes only after the recovery below.
    await startSweepDone(memsync);
    expect(hook.requests.filter((r) => r.url === '/ping/uuid')).toEqual([]);

    failing = false;
    const report = (await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/upload' })).json() as { uploaded: string[] };
    expect(report.uploaded).toEqual([name]);
    const [recovered] = await waitFor('a recovered alert', () => {
      const found = alertsOf(hook.requests, 'recovered');
      return found.length > 0 ? found : undefined;
    });
    expect(recovered).toMatchObject({ snapshot: name, failedBefore: [name] });
    const ping = await waitFor('a heartbeat', () => hook.requests.find((r) => r.url === '/ping/uuid'));
    expect(ping.method).toBe('GET');
    const recoveredAt = hook.requests.findIndex((r) => r.method === 'POST' && r.body?.event === 'recovered');
    expect(hook.requests.findIndex((r) => r.url === '/ping/uuid'), 'no ping before the recovery').toBeGreaterThan(recoveredAt);
    // One failure alert for the run of failures, however many attempts it took.
    expect(alertsOf(hook.requests, 'upload_failed')).toHaveLength(1);
  });

  it('a webhook and heartbeat that never answer do not slow uploads or shutdown', async () => {
    const dead = await blackHole();
    await seedRemote('auto_20250105_000000', { 'metadata.json': 'remote' });
    await writeLocal('auto_20250105_000000', { 'metadata.json': 'local!' });
    await writeLocal('auto_20250301_000000', { 'metadata.json': '{"a":1}' });
    await writeLocal('auto_20250302_000000', { 'metadata.json': '{"b":2}' });
    const memsync = await start({ CLOUD_SYNC_NOTIFY_URL: dead, CLOUD_SYNC_HEARTBEAT_URL: dead });
    await startSweepDone(memsync);
    const began = Date.now();
    const report = (await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/upload' })).json() as { uploaded: string[]; alreadyRemote?: string[]; skipped?: string[]; conflicts: string[]; failed: string[] };
    expect(Date.now() - began).toBeLessThan(10_000);
    expect(report.failed).toEqual([]);
    expect(report.conflicts).toEqual(['auto_20250105_000000']);
    const bucket = await listBucket();
    for (const name of ['auto_20250301_000000', 'auto_20250302_000000']) expect(bucket.get(name)?.sort(), name).toEqual([MANIFEST, 'metadata.json']);
    const stopping = Date.now();
    running.splice(running.indexOf(memsync), 1);
    await memsync.stop();
    expect(Date.now() - stopping).toBeLessThan(6000);
  });
});
