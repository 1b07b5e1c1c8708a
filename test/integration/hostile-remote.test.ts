// What the real S3 server refuses, and what a bucket can hold that memsync never wrote: a key
// over the server's length limit fails only its snapshot, never the store's health, and an
// oversized manifest is refused for restore with a clean error instead of being read.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildMemsync, type Memsync } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { isAppError } from '../../src/errors.js';
import { buildManifest, MANIFEST_FILE_NAME, serializeManifest } from '../../src/snapshot/manifest.js';
import { statSnapshot } from '../../src/snapshot/scan.js';
import { parseExposition, sampleValue } from '../helpers/prometheus.js';
import { createTestBucket, emptyAndDeleteBucket, s3ClientFor } from '../helpers/s3-fixture.js';
import { s3Env, testServer } from '../helpers/s3.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { tempDir } from '../helpers/tmp.js';

const server = testServer();
const PREFIX = 'memories/';
const MIB = 1024 * 1024;
const FAST_RETRY = { attempts: 3, baseDelayMs: 20, maxDelayMs: 100 };
/** S3's limit for a whole key. */
const MAX_KEY_BYTES = 1024;

let client: S3Client;
let bucket: string | undefined;
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
  bucket = undefined;
});

async function sandbox(label: string): Promise<string> {
  const created = await createTestBucket(server, label);
  bucket = created;
  const root = await tempDir('memsync-hostile-remote');
  backupDir = path.join(root, 'backups');
  stateDir = path.join(root, 'state');
  await mkdir(backupDir);
  return created;
}

/** memsync as main.ts builds it, not started: uploads are driven one by one. */
async function build(forBucket: string, logs: LogLine[]): Promise<Memsync> {
  const config = loadConfig({
    ...s3Env(server, forBucket),
    CLOUD_SYNC_PREFIX: PREFIX,
    CLOUD_SYNC_BACKUP_DIR: backupDir,
    CLOUD_SYNC_STATE_DIR: stateDir,
    CLOUD_SYNC_SCHEDULE: '0 0 1 1 *',
  });
  const memsync = await buildMemsync(config, recordingLogger(logs), { retry: FAST_RETRY });
  running.push(memsync);
  return memsync;
}

async function writeBackup(name: string, files: Record<string, string>): Promise<void> {
  for (const [relative, content] of Object.entries(files)) {
    const absolute = path.join(backupDir, name, ...relative.split('/'));
    await mkdir(path.dirname(absolute), { recursive: true });
    await writeFile(absolute, content);
  }
}

async function putRaw(forBucket: string, key: string, body: Buffer): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: forBucket, Key: key, Body: body }));
}

/** Whether the server refuses keys over S3's limit; some emulators take any length. */
async function serverRefusesLongKeys(forBucket: string, key: string): Promise<boolean> {
  try {
    await putRaw(forBucket, key, Buffer.from('probe'));
    return false;
  } catch (error) {
    return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 400;
  }
}

async function metric(memsync: Memsync, name: string): Promise<number | undefined> {
  return sampleValue(parseExposition((await memsync.server.inject({ url: '/metrics' })).body), name);
}

describe(`hostile remote on ${server.kind}`, () => {
  it('a file whose key is over 1,024 bytes fails only its snapshot: the store stays available and the next snapshot uploads', async (context) => {
    const forBucket = await sandbox('long-key');
    const tooLong = 'auto_20260101_000001';
    const fine = 'auto_20260101_000002';
    // Deep nested directories: each segment and the path itself within file-system limits, the key with prefix and name over S3's.
    const deepPath = [...Array.from({ length: 4 }, (_, i) => `${String(i)}${'d'.repeat(249)}`), 'memory.json'].join('/');
    const fullKey = `${PREFIX}${tooLong}/${deepPath}`;
    expect(Buffer.byteLength(deepPath)).toBeLessThanOrEqual(MAX_KEY_BYTES);
    expect(Buffer.byteLength(fullKey)).toBeGreaterThan(MAX_KEY_BYTES);
    if (!(await serverRefusesLongKeys(forBucket, `${PREFIX}auto_20260101_000009/${deepPath}`))) context.skip();

    await writeBackup(tooLong, { 'config.json': '{"dim":384}', [deepPath]: 'deep memory' });
    await writeBackup(fine, { 'config.json': '{"dim":384}', 'memory.json': 'shallow memory' });
    const logs: LogLine[] = [];
    const memsync = await build(forBucket, logs);
    const agent = memsync.agent;
    if (agent === undefined) throw new Error('sync is enabled: expected an agent');

    expect(await agent.upload(await statSnapshot(backupDir, tooLong))).toBeUndefined();
    expect(agent.health.available).toBe(true);
    expect(logs.filter((line) => line.message === 'remote store unavailable')).toEqual([]);
    expect(agent.lastErrorFor(tooLong)).toContain(deepPath);
    const failed = logs.find((line) => line.level === 'error' && line.message === 'upload failed' && line.fields.snapshot === tooLong);
    expect(failed?.fields).toMatchObject({ kind: 'object_refused', error: expect.stringContaining(deepPath), hint: expect.stringContaining('1,024 bytes') });

    expect((await agent.upload(await statSnapshot(backupDir, fine)))?.outcome).toBe('uploaded');
    expect(agent.health.available).toBe(true);
    expect(await metric(memsync, 'memsync_remote_available')).toBe(1);
  });

  it('refuses to restore a snapshot whose manifest is far larger than memsync writes, with a clean error', async () => {
    const forBucket = await sandbox('huge-manifest');
    const name = 'auto_20260102_000001';
    const content = Buffer.from('remembered');
    const manifest = serializeManifest(buildManifest(name, 'directory', [{ path: 'memory.json', size: content.length, sha256: createHash('sha256').update(content).digest('hex') }]));
    // A valid manifest for its one file, padded with JSON whitespace past any limit: only its size is wrong.
    const planted = Buffer.concat([Buffer.alloc(24 * MIB, ' '), manifest]);
    await putRaw(forBucket, `${PREFIX}${name}/memory.json`, content);
    await putRaw(forBucket, `${PREFIX}${name}/${MANIFEST_FILE_NAME}`, planted);
    const memsync = await build(forBucket, []);

    const error = await memsync.operations?.download(name).then(
      (outcome) => new Error(`expected a refusal, got ${JSON.stringify(outcome)}`),
      (refusal: unknown) => refusal,
    );
    expect(isAppError(error, 'integrity'), String(error)).toBe(true);
    expect((error as Error).message).toMatch(new RegExp(`${name}/${MANIFEST_FILE_NAME.replace(/\./g, '\\.')} is larger than memsync writes there`));
    // Nothing was written locally, and the store is not blamed for what it holds.
    await expect(statSnapshot(backupDir, name)).rejects.toThrow();
    expect(memsync.agent?.health.available).not.toBe(false);
  });
});
