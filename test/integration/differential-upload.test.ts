// Differential uploads against the real S3 server of the test run: ten backups of the memory
// service where only config.json changes. Files already in a complete remote snapshot are
// created by server-side copy; the bucket still holds plain, byte-identical objects, and a
// copied snapshot restores and verifies like any other.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildMemsync, type Memsync } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { MANIFEST_FILE_NAME } from '../../src/snapshot/manifest.js';
import { statSnapshot } from '../../src/snapshot/scan.js';
import type { SnapshotOutcome } from '../../src/upload/snapshot-uploader.js';
import { parseExposition, sampleValue } from '../helpers/prometheus.js';
import { createTestBucket, emptyAndDeleteBucket, s3ClientFor } from '../helpers/s3-fixture.js';
import { s3Env, testServer } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';

const server = testServer();
const PREFIX = 'memories/';
const MIB = 1024 * 1024;
const FAST_RETRY = { attempts: 3, baseDelayMs: 20, maxDelayMs: 100 };
const SNAPSHOTS = 10;
/** The same big files in every backup; index.faiss is above the multipart threshold and one 8 MiB part. */
const INDEX = randomBytes(12 * MIB + 12_345);
const METADATA = Buffer.from(JSON.stringify({ memories: Array.from({ length: 40_000 }, (_, i) => ({ id: i, text: `memory ${i}` })) }));
const DOCSTORE = randomBytes(1 * MIB + 7);

type Uploaded = Extract<SnapshotOutcome, { outcome: 'uploaded' }>;

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

function backupFiles(i: number): Record<string, Buffer> {
  return {
    'config.json': Buffer.from(JSON.stringify({ dim: 384, metric: 'cosine', generation: i })),
    'metadata.json': METADATA,
    'index.faiss': INDEX,
    'docstore/docs.pkl': DOCSTORE,
  };
}

const nameOf = (i: number): string => `auto_20260101_0000${String(i).padStart(2, '0')}`;

let client: S3Client;
let bucket: string;
let backupDir: string;
let stateDir: string;
const running: Memsync[] = [];

beforeAll(() => {
  client = s3ClientFor(server);
});
afterAll(() => client?.destroy());
afterEach(async () => {
  for (const memsync of running.splice(0)) await memsync.stop();
  if (bucket !== undefined) await emptyAndDeleteBucket(server, bucket);
});

async function sandbox(label: string): Promise<void> {
  bucket = await createTestBucket(server, label);
  const root = await tempDir('memsync-differential');
  backupDir = path.join(root, 'backups');
  stateDir = path.join(root, 'state');
  await mkdir(backupDir);
}

/** memsync as main.ts builds it, not started: uploads are driven one by one, no watcher races them. */
async function build(logs: LogLine[], extraEnv: Record<string, string> = {}): Promise<Memsync> {
  const config = loadConfig({
    ...s3Env(server, bucket),
    CLOUD_SYNC_PREFIX: PREFIX,
    CLOUD_SYNC_BACKUP_DIR: backupDir,
    CLOUD_SYNC_STATE_DIR: stateDir,
    CLOUD_SYNC_MULTIPART_THRESHOLD_MB: '5',
    CLOUD_SYNC_SCHEDULE: '0 0 1 1 *',
    ...extraEnv,
  });
  const memsync = await buildMemsync(config, recordingLogger(logs), { retry: FAST_RETRY });
  running.push(memsync);
  return memsync;
}

async function writeBackup(i: number): Promise<Record<string, Buffer>> {
  const files = backupFiles(i);
  for (const [relative, bytes] of Object.entries(files)) {
    const absolute = path.join(backupDir, nameOf(i), ...relative.split('/'));
    await mkdir(path.dirname(absolute), { recursive: true });
    await writeFile(absolute, bytes);
  }
  return files;
}

async function uploadBackup(memsync: Memsync, i: number): Promise<Uploaded> {
  await writeBackup(i);
  const outcome = await memsync.agent?.upload(await statSnapshot(backupDir, nameOf(i)));
  if (outcome?.outcome !== 'uploaded') throw new Error(`${nameOf(i)}: expected uploaded, got ${outcome?.outcome ?? `a failure: ${memsync.agent?.lastErrorFor(nameOf(i))}`}`);
  return outcome;
}

async function metric(memsync: Memsync, name: string): Promise<number | undefined> {
  return sampleValue(parseExposition((await memsync.server.inject({ url: '/metrics' })).body), name);
}

async function getObject(key: string): Promise<Buffer> {
  const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from((await answer.Body?.transformToByteArray()) ?? []);
}

describe(`differential uploads on ${server.kind}`, () => {
  it('ten backups where only config.json changes: the rest is copied server-side, sent bytes stay under 2% of stored, every object is byte-identical, a copied snapshot restores', async () => {
    await sandbox('differential');
    const logs: LogLine[] = [];
    const outcomes: Uploaded[] = [];
    // Half the backups in one process, the other half after a restart: the second process knows
    // nothing but the listing, and reads the source manifests from the bucket.
    const first = await build(logs);
    for (let i = 1; i <= SNAPSHOTS / 2; i += 1) outcomes.push(await uploadBackup(first, i));
    const copiedByFirst = await metric(first, 'memsync_copied_bytes_total');
    await first.stop();
    running.splice(running.indexOf(first), 1);

    const second = await build(logs);
    await second.agent?.refreshRemoteIndex();
    for (let i = SNAPSHOTS / 2 + 1; i <= SNAPSHOTS; i += 1) outcomes.push(await uploadBackup(second, i));

    const [initial, ...later] = outcomes;
    expect(initial).toMatchObject({ filesCopied: 0, bytesCopied: 0, filesSent: 4 });
    for (const [n, outcome] of later.entries()) {
      expect(outcome, outcome.manifest.snapshot).toMatchObject({ filesSent: 1, filesCopied: 3, bytesSent: backupFiles(n + 2)['config.json']?.length });
      expect(outcome.bytesSent + outcome.bytesCopied).toBe(outcome.bytes);
    }
    const sentLater = later.reduce((sum, o) => sum + o.bytesSent, 0);
    const storedLater = later.reduce((sum, o) => sum + o.bytes, 0);
    const sentAll = outcomes.reduce((sum, o) => sum + o.bytesSent, 0);
    const storedAll = outcomes.reduce((sum, o) => sum + o.bytes, 0);
    console.info(
      `[differential] ${SNAPSHOTS} snapshots, ${storedAll} bytes stored, ${sentAll} sent (${((100 * sentAll) / storedAll).toFixed(2)}%); ` +
        `snapshots 2-${SNAPSHOTS}: ${storedLater} stored, ${sentLater} sent (${((100 * sentLater) / storedLater).toFixed(4)}%)`,
    );
    expect(sentLater).toBeLessThanOrEqual(0.02 * storedLater);

    // The same figures from the metrics: sent bytes are persisted across the restart, copied bytes count per process.
    const copiedLater = later.reduce((sum, o) => sum + o.bytesCopied, 0);
    expect(await metric(second, 'memsync_uploaded_bytes_total')).toBe(sentAll);
    expect((copiedByFirst ?? 0) + ((await metric(second, 'memsync_copied_bytes_total')) ?? 0)).toBe(copiedLater);
    expect(logs.filter((l) => l.message.startsWith('server-side copy not possible'))).toEqual([]);
    const uploadedLine = logs.find((l) => l.message === 'snapshot uploaded' && l.fields.snapshot === nameOf(SNAPSHOTS));
    expect(uploadedLine?.fields).toMatchObject({ bytesSent: later.at(-1)?.bytesSent, bytesCopied: later.at(-1)?.bytesCopied, filesCopied: 3 });

    // Plain, readable objects: every file of every snapshot is byte-identical, with memsync's own metadata.
    for (let i = 1; i <= SNAPSHOTS; i += 1) {
      for (const [relative, bytes] of Object.entries(backupFiles(i))) {
        const key = `${PREFIX}${nameOf(i)}/${relative}`;
        expect(sha256(await getObject(key)), key).toBe(sha256(bytes));
        const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        expect(head.ContentLength, key).toBe(bytes.length);
        // The first index.faiss was hashed while it was sent (large, new): its SHA-256 is in the manifest only.
        const hashedWhileSent = i === 1 && relative === 'index.faiss';
        expect(head.Metadata?.['memsync-sha256'], key).toBe(hashedWhileSent ? undefined : sha256(bytes));
      }
      expect((await getObject(`${PREFIX}${nameOf(i)}/${MANIFEST_FILE_NAME}`)).length).toBeGreaterThan(0);
    }
    const copiedIndex = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${PREFIX}${nameOf(SNAPSHOTS)}/index.faiss` }));
    console.info(`[differential] ETag of a copied multipart index.faiss: ${copiedIndex.ETag ?? '?'}`);

    // A copied snapshot, lost locally, restores and verifies by SHA-256 like any other.
    const restored = nameOf(7);
    await rm(path.join(backupDir, restored), { recursive: true });
    const restore = await second.operations?.download(restored);
    expect(restore).toMatchObject({ outcome: 'restored', snapshot: restored, files: 4, verification: 'sha256' });
    for (const [relative, bytes] of Object.entries(backupFiles(7))) {
      expect(sha256(await readFile(path.join(backupDir, restored, ...relative.split('/')))), relative).toBe(sha256(bytes));
    }
  });

  it('sends everything when CLOUD_SYNC_SERVER_SIDE_COPY=false', async () => {
    await sandbox('differential off');
    const memsync = await build([], { CLOUD_SYNC_SERVER_SIDE_COPY: 'false' });
    const one = await uploadBackup(memsync, 1);
    const two = await uploadBackup(memsync, 2);
    expect(two).toMatchObject({ filesCopied: 0, bytesCopied: 0, filesSent: 4, bytesSent: two.bytes });
    expect(await metric(memsync, 'memsync_copied_bytes_total')).toBe(0);
    expect(await metric(memsync, 'memsync_uploaded_bytes_total')).toBe(one.bytes + two.bytes);
  });

  it('a large file that grew by one record is composed from its previous version: only the tail is sent, the object is byte-identical and restores', async () => {
    await sandbox('delta');
    const logs: LogLine[] = [];
    const memsync = await build(logs);
    const records = (count: number): Buffer => Buffer.from(JSON.stringify(Array.from({ length: count }, (_, i) => ({ id: i, text: `memory ${i} ${createHash('md5').update(String(i)).digest('hex')}` }))));
    const versions = [records(500_000), records(500_001)];
    const uploaded: Uploaded[] = [];
    for (const [i, metadata] of versions.entries()) {
      const name = nameOf(40 + i);
      await mkdir(path.join(backupDir, name), { recursive: true });
      await writeFile(path.join(backupDir, name, 'metadata.json'), metadata);
      await memsync.agent?.refreshRemoteIndex();
      const outcome = await memsync.agent?.upload(await statSnapshot(backupDir, name));
      if (outcome?.outcome !== 'uploaded') throw new Error(`${name}: expected uploaded, got ${outcome?.outcome ?? memsync.agent?.lastErrorFor(name)}`);
      uploaded.push(outcome);
    }
    const [, second] = uploaded as [Uploaded, Uploaded];
    const grown = versions[1] as Buffer;
    expect(grown.length).toBeGreaterThan(30 * MIB);
    expect(second).toMatchObject({ filesDelta: 1, filesCopied: 0 });
    // The new tail and the last part before it: the rest was copied by the server.
    expect(second.bytesSent).toBeLessThanOrEqual(6 * MIB);
    expect(second.bytesDelta + second.bytesSent).toBe(grown.length);
    const key = `${PREFIX}${nameOf(41)}/metadata.json`;
    expect(sha256(await getObject(key))).toBe(sha256(grown));
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    expect(head.ETag ?? '').toMatch(/-\d+"$/);
    expect(logs.some((line) => line.message === 'file composed from its previous version')).toBe(true);
    expect(await metric(memsync, 'memsync_delta_bytes_total')).toBe(second.bytesDelta);

    await rm(path.join(backupDir, nameOf(41)), { recursive: true });
    const restore = await memsync.operations?.download(nameOf(41));
    expect(restore).toMatchObject({ outcome: 'restored', verification: 'sha256' });
    expect(sha256(await readFile(path.join(backupDir, nameOf(41), 'metadata.json')))).toBe(sha256(grown));
  });
});
