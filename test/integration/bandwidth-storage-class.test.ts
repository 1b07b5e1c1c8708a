// The bandwidth limit, the storage class and server-side encryption against the real S3 server:
// a limited upload and download cannot beat the limit, a cancelled limited upload ends without
// waiting for tokens, and a storage class the server does not offer fails that snapshot alone.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildMemsync, type Memsync } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { AppError, isAppError } from '../../src/errors.js';
import type { BandwidthLimit } from '../../src/remote/bandwidth-limit.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import type { S3AtRest } from '../../src/remote/s3-storage-settings.js';
import type { FileBody, PutOptions } from '../../src/remote/store.js';
import { statSnapshot } from '../../src/snapshot/scan.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { createTestBucket, emptyAndDeleteBucket } from '../helpers/s3-fixture.js';
import { s3Env, testServer, testServerStore } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';

const server = testServer();
const PREFIX = 'memories/';
const MIB = 1024 * 1024;
/** A rate limit is a lower bound on time; 15% below it for the clock and the burst. */
const SLACK = 0.85;

let bucket: string | undefined;
const stores: S3RemoteStore[] = [];
const running: Memsync[] = [];

afterEach(async () => {
  for (const memsync of running.splice(0)) await memsync.stop();
  for (const store of stores.splice(0)) store.close();
  if (bucket !== undefined) await emptyAndDeleteBucket(server, bucket);
  bucket = undefined;
});

async function storeFor(label: string, bandwidthLimit?: BandwidthLimit, atRest?: S3AtRest): Promise<S3RemoteStore> {
  bucket = await createTestBucket(server, label);
  const store = testServerStore(server, bucket, PREFIX, { bandwidthLimit, atRest });
  stores.push(store);
  return store;
}

function memoryFile(bytes: Buffer): FileBody {
  return { kind: 'file', read: async (target, position) => void bytes.copy(target, 0, position, position + target.length) };
}

function putOptions(sizeBytes: number, extra: Partial<PutOptions> = {}): PutOptions {
  return { sizeBytes, md5Hex: undefined, partSizeBytes: 8 * MIB, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined, ...extra };
}

async function sha256Of(stream: AsyncIterable<Buffer>): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk);
  return hash.digest('hex');
}

describe(`bandwidth limit on ${server.kind}`, () => {
  it('a 64 MiB upload and download at 16 MiB/s each take at least 4 s (less 15%), and arrive whole', async () => {
    const store = await storeFor('bandwidth', { upBytesPerSecond: 16 * MIB, downBytesPerSecond: 16 * MIB });
    const bytes = randomBytes(64 * MIB);

    const upStart = performance.now();
    await store.put('limited.bin', () => memoryFile(bytes), putOptions(bytes.length));
    const upSeconds = (performance.now() - upStart) / 1000;

    const downStart = performance.now();
    const digest = await sha256Of(await store.get('limited.bin'));
    const downSeconds = (performance.now() - downStart) / 1000;

    expect(digest).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(upSeconds).toBeGreaterThanOrEqual((64 / 16) * SLACK);
    expect(downSeconds).toBeGreaterThanOrEqual((64 / 16) * SLACK);
  });

  it('a cancelled upload under a low limit ends as cancelled, its multipart upload aborted, without waiting for its tokens', async () => {
    // 32 MiB at 1 MiB/s: half a minute of tokens; the test's own timeout is far shorter.
    const store = await storeFor('bandwidth-cancel', { upBytesPerSecond: MIB, downBytesPerSecond: undefined });
    const bytes = randomBytes(32 * MIB);
    const cancel = new AbortController();
    const upload = store.put('cancelled.bin', () => memoryFile(bytes), putOptions(bytes.length, { signal: cancel.signal, onPart: () => void cancel.abort() }));
    const failure = await upload.then(() => undefined, (error: unknown) => error);
    expect(isAppError(failure, 'cancelled')).toBe(true);
    expect(await store.listMultipartUploads('')).toEqual([]);
    expect(await store.head('cancelled.bin')).toBeUndefined();
  }, 20_000);
});

describe(`storage class on ${server.kind}`, () => {
  it('a class the server does not offer is refused for that request (not an outage), naming the variable', async (context) => {
    const store = await storeFor('storage-class', undefined, { storageClass: 'ONEZONE_IA', sse: undefined });
    const failure = await store.put('a.json', () => Buffer.from('{}'), putOptions(2, { partSizeBytes: undefined })).then(() => undefined, (error: unknown) => error);
    // A server that takes any class (or ignores it) has nothing to refuse here.
    if (failure === undefined) context.skip();
    expect(failure).toBeInstanceOf(AppError);
    // AWS answers InvalidStorageClass; Ceph RGW InvalidArgument.
    expect(failure).toMatchObject({ kind: 'object_refused', details: { code: expect.stringMatching(/^(InvalidStorageClass|InvalidArgument)$/) } });
    expect((failure as AppError).hint).toContain('CLOUD_SYNC_STORAGE_CLASS');
  });

  it('the agent reports the refusal, keeps the store available and the snapshot pending', async (context) => {
    const forBucket = await createTestBucket(server, 'storage-class-agent');
    bucket = forBucket;
    const root = await tempDir('memsync-storage-class');
    const backupDir = path.join(root, 'backups');
    const name = 'auto_20260101_000001';
    await mkdir(path.join(backupDir, name), { recursive: true });
    await writeFile(path.join(backupDir, name, 'config.json'), '{"dim":384}');
    const logs: LogLine[] = [];
    const config = loadConfig({
      ...s3Env(server, forBucket),
      CLOUD_SYNC_PREFIX: PREFIX,
      CLOUD_SYNC_BACKUP_DIR: backupDir,
      CLOUD_SYNC_STATE_DIR: path.join(root, 'state'),
      CLOUD_SYNC_SCHEDULE: '0 0 1 1 *',
      CLOUD_SYNC_STORAGE_CLASS: 'ONEZONE_IA',
    });
    const memsync = await buildMemsync(config, recordingLogger(logs), { retry: { attempts: 2, baseDelayMs: 20, maxDelayMs: 50 } });
    running.push(memsync);
    const agent = memsync.agent;
    if (agent === undefined) throw new Error('sync is enabled: expected an agent');

    const outcome = await agent.upload(await statSnapshot(backupDir, name));
    if (outcome?.outcome === 'uploaded') context.skip();
    expect(agent.health.available).toBe(true);
    expect(agent.lastErrorFor(name)).toMatch(/InvalidStorageClass|InvalidArgument/);
    const failed = logs.find((line) => line.level === 'error' && line.message === 'upload failed' && line.fields.snapshot === name);
    expect(failed?.fields).toMatchObject({ kind: 'object_refused', hint: expect.stringContaining('CLOUD_SYNC_STORAGE_CLASS') });
    const status = (await memsync.server.inject({ url: '/sync/status' })).json<{ local?: { pending?: string[] } }>();
    expect(status.local?.pending).toContain(name);
  });
});
