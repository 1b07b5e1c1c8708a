import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildMemsync, type Memsync } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import type { RemoteStore } from '../../src/remote/store.js';
import { buildManifest, serializeManifest } from '../../src/snapshot/manifest.js';
import { RANGED_FROM_BYTES } from '../../src/restore/download-file.js';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import { startMemoryService, type MemoryService } from '../../demo/memory-service.js';
import { createTestBucket, emptyAndDeleteBucket, s3ClientFor } from '../helpers/s3-fixture.js';
import { s3Env, testServer } from '../helpers/s3.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { tempDir } from '../helpers/tmp.js';

const TOKEN = 'test-token-0123456789abcdef';
const FAST_RETRY = { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 };

interface Setup {
  bucket: string;
  backupDir: string;
  stateDir: string;
  env: Record<string, string>;
}

let setup: Setup;
/** What the memsync of the running test logged: waits watch it for the events they need. */
let logLines: LogLine[] = [];
const running: Memsync[] = [];
const standIns: MemoryService[] = [];

beforeEach(async () => {
  logLines = [];
  const server = testServer();
  const bucket = await createTestBucket(server, 'http');
  const root = await tempDir('memsync-http');
  const backupDir = path.join(root, 'backups');
  const stateDir = path.join(root, 'state');
  await mkdir(backupDir);
  setup = {
    bucket,
    backupDir,
    stateDir,
    env: {
      ...s3Env(server, bucket),
      CLOUD_SYNC_BACKUP_DIR: backupDir,
      CLOUD_SYNC_STATE_DIR: stateDir,
      CLOUD_SYNC_SETTLE_MS: '200',
      CLOUD_SYNC_SHUTDOWN_TIMEOUT_MS: '2000',
    },
  };
});

afterEach(async () => {
  for (const memsync of running.splice(0)) await memsync.stop();
  for (const standIn of standIns.splice(0)) await standIn.close();
  await emptyAndDeleteBucket(testServer(), setup.bucket);
});

async function start(extraEnv: Record<string, string> = {}, store?: (real: RemoteStore) => RemoteStore): Promise<Memsync> {
  const config = loadConfig({ ...setup.env, ...extraEnv });
  const real = new S3RemoteStore({ ...config.s3, partsInFlight: 2 });
  const memsync = await buildMemsync(config, recordingLogger(logLines), { retry: FAST_RETRY, store: store?.(real) ?? real });
  running.push(memsync);
  await memsync.start({ listen: false });
  return memsync;
}

interface UploadAnswer {
  uploaded: string[];
  skipped: string[];
  conflicts: string[];
  failed: string[];
  settling: string[];
}

/**
 * POST /sync/upload, again while it answers that `name` is still settling (written moments
 * ago), until it decides about it: the wait ends on memsync's own verdict, not after a time.
 */
async function uploadOnceSettled(memsync: Memsync, name: string): Promise<UploadAnswer> {
  let answer: UploadAnswer | undefined;
  await waitFor(async () => {
    const response = await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/upload' });
    expect(response.statusCode, response.body).toBe(200);
    answer = response.json() as UploadAnswer;
    return !answer.settling.includes(name);
  }, 15_000);
  return answer as UploadAnswer;
}

async function writeSnapshot(name: string, files: Record<string, string>): Promise<void> {
  const dir = path.join(setup.backupDir, name);
  await mkdir(dir, { recursive: true });
  for (const [file, content] of Object.entries(files)) await writeFile(path.join(dir, file), content);
}

/** Seeds a complete remote snapshot the way memsync lays it out (files, then manifest). */
async function seedRemote(name: string, files: Record<string, string | Buffer>): Promise<void> {
  const client = s3ClientFor(testServer());
  const entries = Object.entries(files);
  for (const [file, content] of entries) {
    await client.send(new PutObjectCommand({ Bucket: setup.bucket, Key: `memories/${name}/${file}`, Body: content }));
  }
  const manifest = buildManifest(name, 'directory', entries.map(([file, content]) => ({ path: file, size: Buffer.byteLength(content), sha256: createHash('sha256').update(content).digest('hex') })));
  await client.send(new PutObjectCommand({ Bucket: setup.bucket, Key: `memories/${name}/.memsync-manifest.json`, Body: serializeManifest(manifest) }));
}

const auth = { authorization: `Bearer ${TOKEN}` };

describe('HTTP API', () => {
  it('answers health probes and reports readiness once watching and the store answered', async () => {
    const memsync = await start();
    expect((await memsync.server.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' });
    const ready = await memsync.server.inject({ url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ ready: true, enabled: true, checks: { config: true, watcher: true, remote: true, state: true, localFiles: true } });
  });

  it('uploads on demand, skips what is already remote, and reports it in status', async () => {
    await writeSnapshot('auto_20260101_000000', { 'metadata.json': '{"m":1}', 'config.json': '{}' });
    const memsync = await start();
    // The snapshot was written just now: the first sync that decides about it uploads it (or finds the watcher did).
    const firstBody = await uploadOnceSettled(memsync, 'auto_20260101_000000');
    expect([...firstBody.uploaded, ...firstBody.skipped]).toEqual(['auto_20260101_000000']);
    const second = (await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/upload' })).json() as { uploaded: string[]; skipped: string[] };
    expect(second).toMatchObject({ uploaded: [], skipped: ['auto_20260101_000000'], conflicts: [], failed: [] });

    const status = (await memsync.server.inject({ url: '/sync/status' })).json() as Record<string, unknown>;
    expect(status).toMatchObject({
      enabled: true,
      watching: true,
      lastSuccess: { snapshot: 'auto_20260101_000000' },
      local: { count: 1, latest: { name: 'auto_20260101_000000' }, pending: [] },
      remoteSnapshots: { count: 1, onlyRemote: [] },
      conflicts: [],
    });
    expect(typeof status.nextSweepAt).toBe('string');
  });

  it('uploads each file once when two sync calls and the watcher race for the same new snapshot', async () => {
    const calls = recordCalls();
    const memsync = await start({}, calls.wrap);
    await writeSnapshot('auto_20260102_000000', { 'metadata.json': '{"m":2}', 'config.json': '{"c":2}' });
    // Once while it settles (answered as settling, left to the watcher), once just after it settled.
    for (const delayMs of [0, 250]) {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      const answers = await Promise.all([1, 2].map(() => memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/upload' })));
      for (const answer of answers) {
        expect(answer.statusCode).toBe(200);
        const body = answer.json() as { uploaded: string[]; skipped: string[]; settling: string[] };
        expect([...body.uploaded, ...body.skipped, ...body.settling]).toContain('auto_20260102_000000');
      }
    }
    await eventually(async () => ((await memsync.server.inject({ url: '/sync/status' })).json() as { remoteSnapshots: { count: number } }).remoteSnapshots.count === 1);
    const puts = calls.puts.filter((key) => key.startsWith('auto_20260102_000000/')).sort();
    expect(puts).toEqual(['auto_20260102_000000/.memsync-manifest.json', 'auto_20260102_000000/config.json', 'auto_20260102_000000/metadata.json']);
  });

  it('answers status from what sweeps learned, without listing the bucket per request', async () => {
    for (let i = 0; i < 30; i += 1) await seedRemote(`auto_202501${String(1 + i).padStart(2, '0')}_120000`, { 'config.json': `{"i":${i}}` });
    const calls = recordCalls();
    const memsync = await start({}, calls.wrap);
    await eventually(async () => ((await memsync.server.inject({ url: '/sync/status' })).json() as { remoteSnapshots: { count: number } }).remoteSnapshots.count === 30);
    const listingsAfterStart = calls.listings;
    for (let i = 0; i < 50; i += 1) {
      const status = (await memsync.server.inject({ url: '/sync/status' })).json() as { remoteSnapshots: { count: number } };
      expect(status.remoteSnapshots.count).toBe(30);
    }
    expect(calls.listings).toBe(listingsAfterStart);
  });

  it('lists remote snapshots newest first by time with working pagination and clear errors for bad paging', async () => {
    await seedRemote('pre_update_20250101_000000', { 'metadata.json': 'a' });
    await seedRemote('auto_20250103_000000', { 'metadata.json': 'bb' });
    await seedRemote('manual_20250102_000000', { 'metadata.json': 'ccc' });
    const memsync = await start();
    const first = (await memsync.server.inject({ url: '/sync/snapshots?limit=2' })).json() as { snapshots: { name: string; complete: boolean; bytes: number }[]; nextCursor: string; total: number };
    expect(first.total).toBe(3);
    expect(first.snapshots.map((s) => s.name)).toEqual(['auto_20250103_000000', 'manual_20250102_000000']);
    expect(first.snapshots[0]).toMatchObject({ complete: true, bytes: 2, files: 1 });
    const second = (await memsync.server.inject({ url: `/sync/snapshots?limit=2&cursor=${first.nextCursor}` })).json() as { snapshots: { name: string }[]; nextCursor: string | null };
    expect(second.snapshots.map((s) => s.name)).toEqual(['pre_update_20250101_000000']);
    expect(second.nextCursor).toBeNull();

    expect((await memsync.server.inject({ url: '/sync/snapshots?cursor=not-a-cursor' })).statusCode).toBe(400);
    expect((await memsync.server.inject({ url: '/sync/snapshots?limit=100000' })).statusCode).toBe(400);
    expect((await memsync.server.inject({ url: '/sync/snapshots?limit=-1' })).statusCode).toBe(400);
  });

  it('downloads only with confirmation, byte-identical, and never re-uploads what it restored', async () => {
    const content = { 'metadata.json': '{"memories":[1,2,3]}', 'config.json': '{"c":1}' };
    await seedRemote('auto_20250105_000000', content);
    await writeSnapshot('manual_20250101_000000', { 'metadata.json': '{}' });
    const memsync = await start();

    const unconfirmed = await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/download' });
    expect(unconfirmed.statusCode).toBe(400);
    expect(unconfirmed.json().message).toContain('auto_20250105_000000 (the latest remote snapshot by time)');
    expect(await readdir(setup.backupDir)).toEqual(['manual_20250101_000000']);

    const done = await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/download?confirm=true&backup_name=auto_20250105_000000' });
    expect(done.statusCode).toBe(200);
    expect(done.json()).toMatchObject({ outcome: 'restored', verification: 'sha256', files: 2 });
    for (const [file, bytes] of Object.entries(content)) {
      expect(await readFile(path.join(setup.backupDir, 'auto_20250105_000000', file), 'utf8')).toBe(bytes);
    }
    const again = await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/download?confirm=true&name=auto_20250105_000000' });
    expect(again.json()).toMatchObject({ outcome: 'already-present' });

    // The restored directory is new to the watcher too; once settled it must be recognised as already remote.
    const report = await uploadOnceSettled(memsync, 'auto_20250105_000000');
    // The local-only snapshot may already have gone up through the watcher; the restored one never does.
    expect(report.uploaded.filter((name) => name !== 'manual_20250101_000000')).toEqual([]);
    expect(report.skipped).toContain('auto_20250105_000000');
    expect(report.conflicts).toEqual([]);
    const status = (await memsync.server.inject({ url: '/sync/status' })).json() as { counters: { restores: number; snapshotsUploaded: number } };
    expect(status.counters).toMatchObject({ restores: 1, snapshotsUploaded: 1 });
  });

  it('downloads a large file as parallel ranges, byte-identical and verified by SHA-256', async () => {
    const index = randomBytes(RANGED_FROM_BYTES + 5 * 1024 * 1024 + 3);
    await seedRemote('auto_20250106_000000', { 'index.faiss': index, 'config.json': '{"c":2}' });
    const memsync = await start();
    const done = await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/download?confirm=true&name=auto_20250106_000000' });
    expect(done.statusCode).toBe(200);
    expect(done.json()).toMatchObject({ outcome: 'restored', verification: 'sha256', files: 2, bytes: index.length + 7 });
    expect((await readFile(path.join(setup.backupDir, 'auto_20250106_000000', 'index.faiss'))).equals(index)).toBe(true);
  });

  it('refuses to restore over a local snapshot with different content, with both checksums, writing nothing', async () => {
    await seedRemote('auto_20250105_000000', { 'metadata.json': 'remote' });
    await writeSnapshot('auto_20250105_000000', { 'metadata.json': 'local!' });
    const memsync = await start();
    const answer = await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/restore/auto_20250105_000000?confirm=true' });
    expect(answer.statusCode).toBe(409);
    const body = answer.json() as { details: { localSha256: string; remoteSha256: string } };
    expect(body.details.localSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(body.details.remoteSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(body.details.localSha256).not.toBe(body.details.remoteSha256);
    expect(await readFile(path.join(setup.backupDir, 'auto_20250105_000000', 'metadata.json'), 'utf8')).toBe('local!');
    expect((await readdir(setup.backupDir)).filter((e) => e.startsWith('.'))).toEqual([]);
  });

  it('refuses to upload over a remote snapshot with different content and keeps both sides', async () => {
    await seedRemote('auto_20250105_000000', { 'metadata.json': 'remote' });
    await writeSnapshot('auto_20250105_000000', { 'metadata.json': 'local!' });
    const memsync = await start();
    const report = await uploadOnceSettled(memsync, 'auto_20250105_000000');
    expect(report.conflicts).toEqual(['auto_20250105_000000']);
    const status = (await memsync.server.inject({ url: '/sync/status' })).json() as { conflicts: { snapshot: string; localDigest: string; remoteDigest: string }[] };
    expect(status.conflicts).toHaveLength(1);
    expect(status.conflicts[0]?.snapshot).toBe('auto_20250105_000000');
    const remote = await memsync.agent?.refreshRemoteIndex();
    expect(remote?.snapshots.get('auto_20250105_000000')).toMatchObject({ bytes: 'remote'.length, complete: true });
  });

  it.each([
    ['/sync/restore/..%2F..%2Fetc?confirm=true'],
    ['/sync/restore/a%5Cb?confirm=true'],
    ['/sync/restore/a%00b?confirm=true'],
    ['/sync/restore/.hidden?confirm=true'],
    ['/sync/download?confirm=true&name=../../etc/passwd'],
    ['/sync/download?confirm=true&name=%2Fetc%2Fpasswd'],
    ['/sync/download?confirm=true&backup_name=a/b'],
  ])('answers 400 to a traversal attempt: %s', async (url) => {
    const memsync = await start();
    const answer = await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url });
    expect(answer.statusCode).toBe(400);
    expect(await readdir(setup.backupDir)).toEqual([]);
  });

  it('answers 400 to dot segments sent raw over HTTP, before routing can resolve them', async () => {
    const memsync = await start();
    const address = await memsync.server.listen({ host: '127.0.0.1', port: 0 });
    for (const rawPath of ['/sync/restore/%2e%2e?confirm=true', '/sync/restore/../../etc?confirm=true', '/sync/restore/%2E%2E%2Fx?confirm=true']) {
      const status = await rawRequest(address, 'POST', rawPath);
      expect(status, rawPath).toBe(400);
    }
    expect(await readdir(setup.backupDir)).toEqual([]);
  });

  it('answers 404 for an unknown snapshot', async () => {
    const memsync = await start();
    const answer = await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/restore/auto_20990101_000000?confirm=true' });
    expect(answer.statusCode).toBe(404);
    expect(answer.json()).toMatchObject({ error: 'not_found' });
  });

  it('requires the bearer token on /sync/* and /docs when one is set, never on health probes', async () => {
    const memsync = await start({ CLOUD_SYNC_API_TOKEN: TOKEN });
    expect((await memsync.server.inject({ url: '/sync/status' })).statusCode).toBe(401);
    expect((await memsync.server.inject({ url: '/sync/status', headers: { authorization: 'Bearer wrong-token-0123456789' } })).statusCode).toBe(401);
    expect((await memsync.server.inject({ url: '/docs' })).statusCode).toBe(401);
    expect((await memsync.server.inject({ url: '/sync/status', headers: auth })).statusCode).toBe(200);
    const docs = await memsync.server.inject({ url: '/docs', headers: auth });
    expect(Object.keys((docs.json() as { paths: Record<string, unknown> }).paths)).toEqual(
      expect.arrayContaining(['/sync/upload', '/sync/download', '/sync/restore/{name}', '/sync/status', '/sync/snapshots', '/healthz', '/readyz']),
    );
    expect((await memsync.server.inject({ url: '/healthz' })).statusCode).toBe(200);
  });

  it('answers 503 with enabled:false on /sync/* when disabled, and stays healthy', async () => {
    const memsync = await buildMemsync(loadConfig({ CLOUD_SYNC_BACKUP_DIR: setup.backupDir }), silentLogger);
    running.push(memsync);
    await memsync.start({ listen: false });
    const answer = await memsync.server.inject({ url: '/sync/status' });
    expect(answer.statusCode).toBe(503);
    expect(answer.json()).toMatchObject({ enabled: false });
    expect((await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/upload' })).statusCode).toBe(503);
    expect((await memsync.server.inject({ url: '/healthz' })).statusCode).toBe(200);
  });

  it('downloads the latest snapshot by time (not by name) into an empty backup directory at start', async () => {
    await seedRemote('pre_update_20250101_000000', { 'metadata.json': 'older by time, later by name' });
    await seedRemote('auto_20250102_000000', { 'metadata.json': 'newest' });
    await start();
    await waitFor(async () => (await readdir(setup.backupDir)).includes('auto_20250102_000000'), 15_000);
    expect(await readdir(setup.backupDir)).toEqual(['auto_20250102_000000']);
    expect(await readFile(path.join(setup.backupDir, 'auto_20250102_000000', 'metadata.json'), 'utf8')).toBe('newest');
  });

  it('never downloads automatically into a backup directory that has snapshots', async () => {
    await seedRemote('auto_20250102_000000', { 'metadata.json': 'newest' });
    await writeSnapshot('auto_20240101_000000', { 'metadata.json': 'old local' });
    const memsync = await start();
    // The decision at start, whichever it is: after it, nothing more is done automatically.
    const decided = ['the bucket has snapshots newer than any local one; not downloading automatically', 'backup directory is empty: downloading the latest remote snapshot'];
    await waitFor(async () => logLines.some((line) => decided.includes(line.message)), 15_000);
    expect(logLines.map((line) => line.message)).not.toContain(decided[1]);
    expect(await readdir(setup.backupDir)).toEqual(['auto_20240101_000000']);
    const status = (await memsync.server.inject({ url: '/sync/status' })).json() as { remoteSnapshots: { newerThanLocal: string[] } };
    expect(status.remoteSnapshots.newerThanLocal).toContain('auto_20250102_000000');
  });

  it('leaves no partial snapshot when the connection drops mid-download, and names the failure', async () => {
    const big = 'x'.repeat(256 * 1024);
    await seedRemote('auto_20250105_000000', { 'metadata.json': big, 'config.json': '{}' });
    await writeSnapshot('manual_20240101_000000', { 'metadata.json': '{}' });
    const memsync = await start({}, (real) => dropMidBody(real, 'auto_20250105_000000/metadata.json'));
    const answer = await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/restore/auto_20250105_000000?confirm=true' });
    expect(answer.statusCode).toBe(503);
    expect(await readdir(setup.backupDir)).toEqual(['manual_20240101_000000']);
  });

  it('asks the memory service for a fresh backup on upload and to apply a restore', async () => {
    const root = await tempDir('memsync-service');
    const standIn = await startMemoryService({ dataDir: path.join(root, 'data'), backupDir: setup.backupDir });
    standIns.push(standIn);
    const memsync = await start({ MEMORY_SERVICE_URL: standIn.url, MEMORY_SERVICE_API_KEY: standIn.apiKey });
    const upload = await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: '/sync/upload' });
    expect(upload.statusCode).toBe(200);
    const body = upload.json() as { requested: string; uploaded: string[] };
    expect(body.requested).toMatch(/^manual_\d{8}_\d{6}$/);
    expect(body.uploaded).toEqual([body.requested]);

    await rm(path.join(setup.backupDir, body.requested), { recursive: true });
    const restore = await memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: `/sync/restore/${body.requested}?confirm=true` });
    expect(restore.statusCode).toBe(200);
    expect(restore.json()).toMatchObject({ outcome: 'restored', applied: true });
    expect(standIn.restored).toEqual([body.requested]);
  });
});

/** node:http sends the path exactly as given; URL-based clients would normalise dot segments away. */
function rawRequest(address: string, method: string, rawPath: string): Promise<number> {
  const { hostname, port } = new URL(address);
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: hostname, port, method, path: rawPath }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on('error', reject);
    request.end();
  });
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A store whose downloads of one key break after the first chunk, as a dropped connection does. */
function dropMidBody(real: RemoteStore, brokenKey: string): RemoteStore {
  return new Proxy(real, {
    get(target, property, receiver) {
      if (property !== 'get') return Reflect.get(target, property, receiver) as unknown;
      return async (key: string, signal?: AbortSignal) => {
        const body = await target.get(key, signal);
        if (key !== brokenKey) return body;
        async function* broken() {
          for await (const chunk of body as AsyncIterable<Buffer>) {
            yield chunk.subarray(0, Math.min(chunk.length, 1000));
            throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
          }
        }
        return Readable.from(broken());
      };
    },
  });
}

/** Wraps a store to record writes and listings; every call still goes to the real server. */
function recordCalls(): { wrap: (real: RemoteStore) => RemoteStore; puts: string[]; listings: number } {
  const record = {
    puts: [] as string[],
    listings: 0,
    wrap: (real: RemoteStore): RemoteStore =>
      new Proxy(real, {
        get(target, property, receiver) {
          const value: unknown = Reflect.get(target, property, receiver);
          if (typeof value !== 'function') return value;
          return (...args: unknown[]): unknown => {
            if (property === 'put') record.puts.push(String(args[0]));
            if (property === 'listObjects') record.listings += 1;
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      }),
  };
  return record;
}

/** Polls `condition` every 50 ms until it holds; fails after 10 s. */
async function eventually(condition: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i += 1) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('condition not met within 10 s');
}
