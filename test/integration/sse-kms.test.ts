// CLOUD_SYNC_SSE=aws:kms against the Ceph RGW the harness starts, whose test KMS backend holds one
// key (test/helpers/rgw/rgw-start.sh): uploads are really KMS-encrypted, verified by reading them
// back, and bytes read back other than those sent fail the upload.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import PQueue from 'p-queue';
import { afterEach, describe, expect, it } from 'vitest';
import { buildMemsync, type Memsync } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { isAppError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import type { S3AtRest } from '../../src/remote/s3-storage-settings.js';
import { MANIFEST_FILE_NAME } from '../../src/snapshot/reserved-names.js';
import { statSnapshot } from '../../src/snapshot/scan.js';
import { emptyHashCache, hashCacheSchema, type HashCacheDocument } from '../../src/state/hash-cache.js';
import { PersistedJson } from '../../src/state/persisted.js';
import { SnapshotUploader } from '../../src/upload/snapshot-uploader.js';
import { storedVerification } from '../../src/upload/stored-verification.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { RemoteBucket } from '../helpers/remote-bucket.js';
import { createTestBucket, emptyAndDeleteBucket, s3ClientFor } from '../helpers/s3-fixture.js';
import { s3Env, testServer } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';

const server = testServer();
/** The key id rgw-start.sh gives RGW's test KMS backend. */
const KMS_KEY_ID = 'memsync-test-key';
const KMS: S3AtRest = { storageClass: undefined, sse: { mode: 'aws:kms', kmsKeyId: KMS_KEY_ID } };
const PREFIX = 'memories/';
const MIB = 1024 * 1024;
const S1 = 'auto_20260101_000001';
const S2 = 'auto_20260102_000001';
const sha256Hex = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
/** Only the harness's own RGW has the KMS key; MinIO or an outside endpoint would refuse it. */
const noKms = server.kind === 'ceph-rgw' ? null : `${server.kind} has no test KMS key`;

let bucket: string | undefined;
const running: Memsync[] = [];
const stores: S3RemoteStore[] = [];
const caches: PersistedJson<HashCacheDocument>[] = [];

afterEach(async () => {
  for (const memsync of running.splice(0)) await memsync.stop();
  for (const cache of caches.splice(0)) await cache.flush();
  for (const store of stores.splice(0)) store.close();
  if (bucket !== undefined) await emptyAndDeleteBucket(server, bucket);
  bucket = undefined;
});

async function backupWith(root: string, name: string, files: Record<string, Buffer>): Promise<string> {
  const backupDir = path.join(root, 'backups');
  await mkdir(path.join(backupDir, name), { recursive: true });
  for (const [file, bytes] of Object.entries(files)) await writeFile(path.join(backupDir, name, file), bytes);
  return backupDir;
}

/** The S3 store as memsync builds it under SSE-KMS, whose reads can be made to return one byte changed. */
class ReadsCorrupted extends S3RemoteStore {
  corruptReads = false;

  override async get(key: string, signal?: AbortSignal): Promise<Readable> {
    const stream = await super.get(key, signal);
    if (!this.corruptReads) return stream;
    let flipped = false;
    const flip = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        if (!flipped && chunk.length > 0) {
          flipped = true;
          const copy = Buffer.from(chunk);
          copy[0] = (copy[0] ?? 0) ^ 1;
          done(null, copy);
          return;
        }
        done(null, chunk);
      },
    });
    return stream.pipe(flip);
  }
}

describe.skipIf(noKms)(`CLOUD_SYNC_SSE=aws:kms on ${server.kind}`, () => {
  it('uploads KMS-encrypted objects under the key, verified by reading them back, and sends a repeated file again instead of copying it', async () => {
    bucket = await createTestBucket(server, 'sse-kms');
    const root = await tempDir('memsync-sse-kms');
    const config = { 'config.json': Buffer.from('{"dim":384}'), 'index.bin': randomBytes(12 * MIB) };
    const backupDir = await backupWith(root, S1, config);
    await backupWith(root, S2, config);
    const logs: LogLine[] = [];
    const memsync = await buildMemsync(
      loadConfig({
        ...s3Env(server, bucket),
        CLOUD_SYNC_PREFIX: PREFIX,
        CLOUD_SYNC_BACKUP_DIR: backupDir,
        CLOUD_SYNC_STATE_DIR: path.join(root, 'state'),
        CLOUD_SYNC_SCHEDULE: '0 0 1 1 *',
        CLOUD_SYNC_MULTIPART_THRESHOLD_MB: '5',
        CLOUD_SYNC_SSE: 'aws:kms',
        CLOUD_SYNC_SSE_KMS_KEY_ID: KMS_KEY_ID,
      }),
      recordingLogger(logs),
    );
    running.push(memsync);
    const agent = memsync.agent;
    if (agent === undefined) throw new Error('sync is enabled: expected an agent');

    const first = await agent.upload(await statSnapshot(backupDir, S1));
    expect(agent.lastErrorFor(S1)).toBeUndefined();
    expect(first).toMatchObject({ outcome: 'uploaded', filesSent: 2 });
    const second = await agent.upload(await statSnapshot(backupDir, S2));
    expect(second).toMatchObject({ outcome: 'uploaded', filesSent: 2, filesCopied: 0 });
    expect(logs.filter((line) => line.message.startsWith('server-side copy not possible'))).toEqual([]);

    const client = s3ClientFor(server);
    const remote = new RemoteBucket(client, bucket, PREFIX);
    for (const key of [`${S1}/config.json`, `${S1}/index.bin`, `${S1}/${MANIFEST_FILE_NAME}`, `${S2}/index.bin`]) {
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${PREFIX}${key}` }));
      expect({ key, sse: head.ServerSideEncryption, keyId: head.SSEKMSKeyId }).toEqual({ key, sse: 'aws:kms', keyId: KMS_KEY_ID });
    }
    expect(sha256Hex(await remote.get(`${PREFIX}${S2}/index.bin`))).toBe(sha256Hex(config['index.bin']));
    client.destroy();

    const status = (await memsync.server.inject({ url: '/sync/status' })).json<{ verification?: unknown }>();
    expect(status.verification).toMatchObject({ method: 'read-back-sha256', serverSideCopies: false });
  });

  it('fails an upload whose object reads back other than it was sent, and removes that object', async () => {
    bucket = await createTestBucket(server, 'sse-kms-corrupt');
    const root = await tempDir('memsync-sse-kms-corrupt');
    const store = new ReadsCorrupted({
      bucket,
      prefix: PREFIX,
      endpoint: server.endpoint,
      region: server.region,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      forcePathStyle: true,
      partsInFlight: 4,
      atRest: KMS,
    });
    stores.push(store);
    const backupDir = await backupWith(root, S1, { 'config.json': Buffer.from('{"dim":384}'), 'index.bin': randomBytes(6 * MIB) });
    await mkdir(path.join(root, 'state'));
    const hashCache = new PersistedJson<HashCacheDocument>(path.join(root, 'state', 'hash-cache.json'), hashCacheSchema, emptyHashCache, silentLogger);
    caches.push(hashCache);
    const uploader = new SnapshotUploader({
      store,
      hashCache,
      fileQueue: new PQueue({ concurrency: 2 }),
      agentId: 'agent-under-test',
      backupDir,
      multipartThresholdBytes: 5 * MIB,
      retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 },
      log: silentLogger,
      now: () => Date.now(),
      verification: storedVerification(KMS),
    });
    const stat = await statSnapshot(backupDir, S1);

    store.corruptReads = true;
    const failure = await uploader.upload(stat, new AbortController().signal, () => undefined).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(isAppError(failure, 'integrity')).toBe(true);
    expect((failure as Error).message).toMatch(/SHA-256 .* read back/);
    const remote = new RemoteBucket(s3ClientFor(server), bucket, PREFIX);
    // Both files were stored, both read back wrong and were removed again; no manifest was written.
    expect(await remote.list(PREFIX)).toEqual([]);
    remote.client.destroy();

    // The same store reading faithfully: the upload completes (the fault was the only difference).
    store.corruptReads = false;
    const outcome = await uploader.upload(stat, new AbortController().signal, () => undefined);
    expect(outcome.outcome).toBe('uploaded');
  });
});
