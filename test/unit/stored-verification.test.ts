// How stored objects are verified: chosen from the storage settings, and under SSE-KMS (ETags that
// are no MD5s) by reading each upload back and comparing its SHA-256, with copies and delta off.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { agentSettings } from '../../src/agent.js';
import { buildMemsync, type Memsync } from '../../src/app.js';
import { loadConfig, type Env } from '../../src/config.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import type { S3AtRest } from '../../src/remote/s3-storage-settings.js';
import { MANIFEST_FILE_NAME } from '../../src/snapshot/reserved-names.js';
import { statSnapshot } from '../../src/snapshot/scan.js';
import { verifyStored } from '../../src/upload/plan.js';
import { storedVerification } from '../../src/upload/stored-verification.js';
import type { FileDigest } from '../../src/snapshot/digest.js';
import { KmsLikeStore } from '../helpers/kms-like-store.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { tempDir } from '../helpers/tmp.js';

const MIB = 1024 * 1024;
const sha256Hex = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const md5Hex = (bytes: Buffer): string => createHash('md5').update(bytes).digest('hex');

describe('storedVerification: how a stored object is proven, from the settings', () => {
  it.each<[string, S3AtRest | undefined, string, boolean]>([
    ['not an S3 store', undefined, 'etag', true],
    ['nothing asked for', { storageClass: undefined, sse: undefined }, 'etag', true],
    ['a storage class only', { storageClass: 'STANDARD_IA', sse: undefined }, 'etag', true],
    ['SSE-S3 (AES256): ETags stay MD5s', { storageClass: undefined, sse: { mode: 'AES256' } }, 'etag', true],
    ['SSE-KMS with a key', { storageClass: undefined, sse: { mode: 'aws:kms', kmsKeyId: 'alias/memsync' } }, 'read-back-sha256', false],
    ["SSE-KMS with the bucket's key", { storageClass: 'STANDARD', sse: { mode: 'aws:kms', kmsKeyId: undefined } }, 'read-back-sha256', false],
  ])('%s', (_, atRest, method, serverSideCopies) => {
    const verification = storedVerification(atRest);
    expect(verification).toMatchObject({ method, serverSideCopies });
    expect(verification.description.length).toBeGreaterThan(20);
  });

  it('the agent gets it from the configuration (the S3 provider only)', () => {
    const kms: Env = { CLOUD_SYNC_SSE: 'aws:kms', CLOUD_SYNC_SSE_KMS_KEY_ID: 'alias/memsync' };
    expect(agentSettings(loadConfig(kms)).verification?.method).toBe('read-back-sha256');
    expect(agentSettings(loadConfig({ CLOUD_SYNC_SSE: 'AES256' })).verification?.method).toBe('etag');
    expect(agentSettings(loadConfig({})).verification?.method).toBe('etag');
  });
});

describe('verifyStored with the object read back', () => {
  const bytes = Buffer.from('{"dim":384}');
  const sent: FileDigest = { size: bytes.length, sha256: sha256Hex(bytes), md5: md5Hex(bytes), etag: md5Hex(bytes), partSizeBytes: 8 * MIB, multipart: false };
  const opaque = { size: bytes.length, etag: '"0123456789abcdef0123456789abcdef"', metadata: {} };

  it.each<[string, FileDigest, { size: number; sha256: string } | undefined, RegExp | undefined]>([
    ['the same bytes, whatever the ETag', sent, { size: bytes.length, sha256: sent.sha256 }, undefined],
    ['other bytes of the same size', sent, { size: bytes.length, sha256: sha256Hex(Buffer.from('{"dim":385}')) }, /SHA-256 .* read back/],
    ['fewer bytes read back than stored', sent, { size: 3, sha256: sent.sha256 }, /read back 3 bytes/],
    ['nothing to compare with: the SHA-256 of what was sent is unknown', { ...sent, sha256: '' }, { size: bytes.length, sha256: sent.sha256 }, /SHA-256 of the bytes sent/],
    ['not read back: an opaque ETag proves nothing', sent, undefined, /stored ETag 0123456789abcdef0123456789abcdef/],
  ])('%s', (_, local, readBack, problem) => {
    const answer = verifyStored(local, opaque, readBack);
    if (problem === undefined) expect(answer).toBeUndefined();
    else expect(answer).toMatch(problem);
  });
});

const running: Memsync[] = [];
afterEach(async () => {
  for (const memsync of running.splice(0)) await memsync.stop();
});

async function agentOn(store: MemoryRemoteStore, env: Env, logs: LogLine[] = []) {
  const root = await tempDir('memsync-stored-verification');
  const backupDir = path.join(root, 'backups');
  await mkdir(backupDir);
  const config = loadConfig({
    CLOUD_SYNC_ENABLED: 'true',
    CLOUD_SYNC_BUCKET: 'stored-verification',
    CLOUD_SYNC_BACKUP_DIR: backupDir,
    CLOUD_SYNC_STATE_DIR: path.join(root, 'state'),
    CLOUD_SYNC_SCHEDULE: '0 0 1 1 *',
    CLOUD_SYNC_MULTIPART_THRESHOLD_MB: '5',
    ...env,
  });
  const memsync = await buildMemsync(config, recordingLogger(logs), { store, retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 } });
  running.push(memsync);
  const agent = memsync.agent;
  if (agent === undefined) throw new Error('sync is enabled: expected an agent');
  const snapshot = async (name: string, files: Record<string, Buffer>) => {
    await mkdir(path.join(backupDir, name));
    for (const [file, content] of Object.entries(files)) await writeFile(path.join(backupDir, name, file), content);
    return statSnapshot(backupDir, name);
  };
  return { memsync, agent, snapshot };
}

const KMS: Env = { CLOUD_SYNC_SSE: 'aws:kms', CLOUD_SYNC_SSE_KMS_KEY_ID: 'alias/memsync' };
const S1 = 'auto_20260101_000001';
const S2 = 'auto_20260102_000001';

describe('uploads under SSE-KMS, to a store whose ETags are not MD5s', () => {
  it('verify by reading each file back: single PUT and multipart, plain and hashed on the way out', async () => {
    const store = new KmsLikeStore();
    const { agent, snapshot } = await agentOn(store, KMS);
    const large = randomBytes(12 * MIB);
    const outcome = await agent.upload(await snapshot(S1, { 'config.json': Buffer.from('{"dim":384}'), 'index.bin': large }));
    expect(agent.lastErrorFor(S1)).toBeUndefined();
    expect(outcome?.outcome).toBe('uploaded');
    expect(store.getLog.filter((key) => key.startsWith(`${S1}/`)).sort()).toEqual([`${S1}/config.json`, `${S1}/index.bin`]);
    expect(sha256Hex(store.objects.get(`${S1}/index.bin`)?.bytes ?? Buffer.alloc(0))).toBe(sha256Hex(large));
  });

  it('with client-side encryption too: the ciphertext read back is compared with the ciphertext sent', async () => {
    const store = new KmsLikeStore();
    const { agent, snapshot } = await agentOn(store, { ...KMS, CLOUD_SYNC_ENCRYPTION_KEY: randomBytes(32).toString('base64') });
    const outcome = await agent.upload(await snapshot(S1, { 'config.json': Buffer.from('{"dim":384}'), 'index.bin': randomBytes(6 * MIB) }));
    expect(agent.lastErrorFor(S1)).toBeUndefined();
    expect(outcome?.outcome).toBe('uploaded');
    expect(store.getLog.filter((key) => key.startsWith(`${S1}/`)).sort()).toEqual([`${S1}/config.json`, `${S1}/index.bin`]);
  });

  it('detect stored bytes that differ from those sent, remove the object and write no manifest', async () => {
    // The server stores one byte other than it received (its ETag, opaque, cannot tell).
    const store = new KmsLikeStore({ transformStoredBytes: (key, bytes) => (key.endsWith('index.bin') ? Buffer.concat([bytes.subarray(0, 100), Buffer.from([(bytes[100] ?? 0) ^ 1]), bytes.subarray(101)]) : bytes) });
    const { agent, snapshot } = await agentOn(store, KMS);
    const outcome = await agent.upload(await snapshot(S1, { 'index.bin': randomBytes(6 * MIB) }));
    expect(outcome).toBeUndefined();
    expect(agent.lastErrorFor(S1)).toMatch(/index\.bin: .*SHA-256/);
    expect(store.objects.has(`${S1}/index.bin`)).toBe(false);
    expect(store.objects.has(`${S1}/${MANIFEST_FILE_NAME}`)).toBe(false);
  });

  it('send a file again instead of copying it server-side (a copy could not be proven without downloading it)', async () => {
    const shared = randomBytes(64 * 1024);
    const copiesOn = new MemoryRemoteStore();
    const plain = await agentOn(copiesOn, {});
    await plain.agent.upload(await plain.snapshot(S1, { 'index.bin': shared }));
    await plain.agent.upload(await plain.snapshot(S2, { 'index.bin': shared }));
    expect(copiesOn.copyLog).toEqual([`${S1}/index.bin -> ${S2}/index.bin`]);

    // Even where ETags under SSE-KMS happen to be MD5s (Ceph RGW): memsync cannot tell, so it does not rely on them.
    const store = new MemoryRemoteStore();
    const { agent, snapshot } = await agentOn(store, KMS);
    await agent.upload(await snapshot(S1, { 'index.bin': shared }));
    const second = await agent.upload(await snapshot(S2, { 'index.bin': shared }));
    expect(second).toMatchObject({ outcome: 'uploaded', filesCopied: 0, filesSent: 1 });
    expect(store.copyLog).toEqual([]);
  });

  it('say so at start and in /sync/status', async () => {
    const logs: LogLine[] = [];
    const { memsync } = await agentOn(new KmsLikeStore(), KMS, logs);
    await memsync.start();
    const started = logs.find((line) => line.message === 'watching for backups');
    expect(started?.fields.storedObjects).toMatch(/SSE-KMS.*read back.*SHA-256.*copies and delta uploads are off/);
    const status = (await memsync.server.inject({ url: '/sync/status' })).json<{ verification?: unknown }>();
    expect(status.verification).toMatchObject({ method: 'read-back-sha256', serverSideCopies: false, description: expect.stringContaining('read back') });
  });

  it('without SSE-KMS: by ETag, with copies, and said so too', async () => {
    const logs: LogLine[] = [];
    const { memsync } = await agentOn(new MemoryRemoteStore(), {}, logs);
    await memsync.start();
    expect((await memsync.server.inject({ url: '/sync/status' })).json<{ verification?: unknown }>().verification).toMatchObject({ method: 'etag', serverSideCopies: true });
    expect(logs.find((line) => line.message === 'watching for backups')?.fields.storedObjects).toMatch(/ETag/);
  });
});
