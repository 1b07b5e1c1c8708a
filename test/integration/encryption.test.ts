// Client-side encryption against the real S3 server of the test run: what lands in the bucket
// is ciphertext of the predicted size with an encrypted manifest; it restores byte-identical
// with the key; a wrong key is refused from the manifest alone, before any file is fetched; a
// tampered or truncated object is refused naming the file; plain and encrypted snapshots live
// side by side in one prefix and are told apart in listings and status.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildMemsync, type Memsync } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { encryptedSize } from '../../src/crypto/format.js';
import { Keyring } from '../../src/crypto/keys.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import type { RemoteStore } from '../../src/remote/store.js';
import { statSnapshot } from '../../src/snapshot/scan.js';
import { RemoteVerifier } from '../../src/verify/verifier.js';
import { createTestBucket, emptyAndDeleteBucket, s3ClientFor } from '../helpers/s3-fixture.js';
import { s3Env, testServer } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';

const server = testServer();
const PREFIX = 'memories/';
const MIB = 1024 * 1024;
const FAST_RETRY = { attempts: 3, baseDelayMs: 20, maxDelayMs: 100 };
const KEY = randomBytes(32).toString('base64');
const OTHER_KEY = randomBytes(32).toString('hex');
/** Text that must never appear in the bucket while encryption is on. */
const SECRET_MEMORY = 'the user keeps the spare key under the blue flowerpot';

const FILES: Record<string, Buffer> = {
  // Above the 5 MiB multipart threshold: encrypted and sent in parts.
  'index.faiss': randomBytes(12 * MIB + 4321),
  'metadata.json': Buffer.from(JSON.stringify({ memories: Array.from({ length: 2000 }, (_, i) => ({ id: i, text: `${SECRET_MEMORY} #${i}` })) })),
  'config.json': Buffer.from(JSON.stringify({ dim: 384, note: SECRET_MEMORY })),
  'empty.txt': Buffer.alloc(0),
};

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

let client: S3Client;
let bucket: string;
let root: string;
const running: Memsync[] = [];

beforeAll(() => {
  client = s3ClientFor(server);
});
afterAll(() => client?.destroy());
afterEach(async () => {
  for (const memsync of running.splice(0)) await memsync.stop();
  if (bucket !== undefined) await emptyAndDeleteBucket(server, bucket);
});

interface Side {
  memsync: Memsync;
  backupDir: string;
  logs: LogLine[];
  /** Keys of objects whose bodies were fetched. */
  gets: string[];
}

/** A store that records every GET, to show what a refusal read before refusing. */
function recordingGets(store: RemoteStore, gets: string[]): RemoteStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'get') return (key: string, signal?: AbortSignal) => (gets.push(key), target.get(key, signal));
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** memsync as main.ts builds it (not started: uploads are driven one by one), with its own backup and state directories. */
async function side(label: string, env: Record<string, string>): Promise<Side> {
  const backupDir = path.join(root, label, 'backups');
  await mkdir(backupDir, { recursive: true });
  const config = loadConfig({
    ...s3Env(server, bucket),
    CLOUD_SYNC_PREFIX: PREFIX,
    CLOUD_SYNC_BACKUP_DIR: backupDir,
    CLOUD_SYNC_STATE_DIR: path.join(root, label, 'state'),
    CLOUD_SYNC_MULTIPART_THRESHOLD_MB: '5',
    CLOUD_SYNC_SCHEDULE: '0 0 1 1 *',
    // Sweeps right after a backup was written must see it settled.
    CLOUD_SYNC_SETTLE_MS: '100',
    ...env,
  });
  const logs: LogLine[] = [];
  const gets: string[] = [];
  const memsync = await buildMemsync(config, recordingLogger(logs), { retry: FAST_RETRY, store: recordingGets(new S3RemoteStore({ ...config.s3, partsInFlight: 4 }), gets) });
  running.push(memsync);
  return { memsync, backupDir, logs, gets };
}

async function writeBackup(backupDir: string, name: string, files: Record<string, Buffer> = FILES): Promise<void> {
  for (const [relative, bytes] of Object.entries(files)) {
    const absolute = path.join(backupDir, name, ...relative.split('/'));
    await mkdir(path.dirname(absolute), { recursive: true });
    await writeFile(absolute, bytes);
  }
}

async function upload(s: Side, name: string): Promise<string | undefined> {
  const outcome = await s.memsync.agent?.upload(await statSnapshot(s.backupDir, name));
  return outcome?.outcome ?? `failed: ${s.memsync.agent?.lastErrorFor(name) ?? '?'}`;
}

async function objectKeys(prefix: string): Promise<string[]> {
  const answer = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (answer.Contents ?? []).map((o) => o.Key ?? '').sort();
}

async function getObject(key: string): Promise<Buffer> {
  const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from((await answer.Body?.transformToByteArray()) ?? []);
}

async function restore(s: Side, name: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const answer = await s.memsync.server.inject({ method: 'POST', headers: { 'content-type': 'application/json' }, url: `/sync/restore/${name}?confirm=true` });
  return { status: answer.statusCode, body: answer.json<Record<string, unknown>>() };
}

async function expectRestoredIdentical(backupDir: string, name: string, files: Record<string, Buffer> = FILES): Promise<void> {
  for (const [relative, bytes] of Object.entries(files)) {
    expect(sha256(await readFile(path.join(backupDir, name, ...relative.split('/')))), relative).toBe(sha256(bytes));
  }
}

describe(`client-side encryption on ${server.kind}`, () => {
  it('stores only ciphertext of the predicted size, restores it byte-identical with the key, and re-uploads nothing after a restart', async () => {
    bucket = await createTestBucket(server, 'encryption');
    root = await tempDir('memsync-encryption');
    const name = 'auto_20260301_101010';
    const writer = await side('writer', { CLOUD_SYNC_ENCRYPTION_KEY: KEY });
    await writeBackup(writer.backupDir, name);
    expect(await upload(writer, name)).toBe('uploaded');

    const keys = await objectKeys(`${PREFIX}${name}/`);
    // Besides the files: the encrypted manifest (the claim taken before index.faiss went up in parts is removed after it).
    expect(keys).toEqual([...Object.keys(FILES).map((f) => `${PREFIX}${name}/${f}`), `${PREFIX}${name}/.memsync-manifest.enc`].sort());
    const marker = Buffer.from('blue flowerpot');
    for (const [relative, bytes] of Object.entries(FILES)) {
      const key = `${PREFIX}${name}/${relative}`;
      const stored = await getObject(key);
      expect(stored.length, key).toBe(encryptedSize(bytes.length));
      expect(stored.includes(marker), key).toBe(false);
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      // Not the SHA-256 (it would confirm a guessed file): a keyed tag of it.
      expect(head.Metadata?.['memsync-sha256'], key).toBeUndefined();
      expect(head.Metadata?.['memsync-content-tag'], key).toMatch(/^[0-9a-f]{64}$/);
    }
    const manifest = await getObject(`${PREFIX}${name}/.memsync-manifest.enc`);
    expect(manifest.includes(Buffer.from('metadata.json'))).toBe(false);
    expect(manifest.includes(Buffer.from(sha256(FILES['config.json'] as Buffer)))).toBe(false);

    // Listing and status say it is encrypted, and which key the agent uses.
    const listing = (await writer.memsync.server.inject({ url: '/sync/snapshots' })).json<{ snapshots: { name: string; encrypted: boolean; complete: boolean }[] }>();
    expect(listing.snapshots).toEqual([expect.objectContaining({ name, complete: true, encrypted: true })]);
    const status = (await writer.memsync.server.inject({ url: '/sync/status' })).json<{ encryption: { enabled: boolean; source: string; keyId: string } }>();
    expect(status.encryption).toMatchObject({ enabled: true, source: 'key', keyId: expect.stringMatching(/^[0-9a-f]{8}$/) });
    await writer.memsync.stop();
    running.splice(running.indexOf(writer.memsync), 1);

    // A restarted agent recognises the encrypted manifest from the listing alone: nothing to upload.
    const again = await side('writer', { CLOUD_SYNC_ENCRYPTION_KEY: KEY });
    const summary = await again.memsync.agent?.sweep('test');
    expect(summary).toMatchObject({ inSync: [name], queued: [] });

    // A new machine with the key restores it byte-identical, verified by SHA-256 after decryption.
    const reader = await side('reader', { CLOUD_SYNC_ENCRYPTION_KEY: KEY });
    const restored = await restore(reader, name);
    expect(restored).toMatchObject({ status: 200, body: { outcome: 'restored', files: 4, verification: 'sha256' } });
    await expectRestoredIdentical(reader.backupDir, name);
  });

  it('refuses a wrong key or a missing key from the manifest alone, before fetching any file', async () => {
    bucket = await createTestBucket(server, 'encryption wrong key');
    root = await tempDir('memsync-encryption');
    const name = 'auto_20260301_111111';
    const writer = await side('writer', { CLOUD_SYNC_ENCRYPTION_KEY: KEY });
    await writeBackup(writer.backupDir, name);
    expect(await upload(writer, name)).toBe('uploaded');

    const wrong = await side('wrong', { CLOUD_SYNC_ENCRYPTION_KEY: OTHER_KEY });
    const refused = await restore(wrong, name);
    expect(refused.status).toBe(422);
    expect(refused.body).toMatchObject({ error: 'encryption_key', message: expect.stringMatching(/key check value does not match/) });
    expect(wrong.gets).toEqual([`${name}/.memsync-manifest.enc`]);
    expect(await readdir(wrong.backupDir)).toEqual([]);

    const plain = await side('plain', {});
    const noKey = await restore(plain, name);
    expect(noKey).toMatchObject({ status: 422, body: { error: 'encryption_key', message: expect.stringMatching(/encrypted and no encryption key is configured/) } });
    expect(plain.gets).toEqual([`${name}/.memsync-manifest.enc`]);
    expect(await readdir(plain.backupDir)).toEqual([]);

    // An agent with another key holding a snapshot of that name cannot compare contents: a conflict, nothing overwritten.
    const before = await getObject(`${PREFIX}${name}/.memsync-manifest.enc`);
    await writeBackup(wrong.backupDir, name);
    expect(await upload(wrong, name)).toBe('conflict');
    expect((await getObject(`${PREFIX}${name}/.memsync-manifest.enc`)).equals(before)).toBe(true);
    // The files and the manifest: no claim left behind.
    expect(await objectKeys(`${PREFIX}${name}/`)).toHaveLength(Object.keys(FILES).length + 1);
  });

  it('refuses a tampered or truncated object naming the file, and leaves no snapshot behind', async () => {
    bucket = await createTestBucket(server, 'encryption tampered');
    root = await tempDir('memsync-encryption');
    const writer = await side('writer', { CLOUD_SYNC_ENCRYPTION_KEY: KEY });
    const tampered = 'auto_20260301_121212';
    const truncated = 'auto_20260301_131313';
    for (const name of [tampered, truncated]) {
      await writeBackup(writer.backupDir, name);
      expect(await upload(writer, name)).toBe('uploaded');
    }
    // One flipped bit in the middle of index.faiss; metadata.json cut short by one byte but
    // re-padded to its listed size, so only decryption can tell.
    const indexKey = `${PREFIX}${tampered}/index.faiss`;
    const index = await getObject(indexKey);
    index[Math.floor(index.length / 2)] = (index[Math.floor(index.length / 2)] as number) ^ 1;
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: indexKey, Body: index }));
    const metadataKey = `${PREFIX}${truncated}/metadata.json`;
    const metadata = await getObject(metadataKey);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: metadataKey, Body: Buffer.concat([metadata.subarray(0, metadata.length - 1), Buffer.from([0])]) }));

    const reader = await side('reader', { CLOUD_SYNC_ENCRYPTION_KEY: KEY });
    for (const [name, file] of [
      [tampered, 'index.faiss'],
      [truncated, 'metadata.json'],
    ] as const) {
      const refused = await restore(reader, name);
      expect(refused.status, name).toBe(502);
      const line = reader.logs.find((l) => l.level === 'error' && JSON.stringify(l.fields).includes(`${name}/${file}`));
      expect(line?.fields, `${name}: an error line naming ${file}`).toBeDefined();
      expect(JSON.stringify(line?.fields)).toMatch(/failed authentication/);
    }
    expect(await readdir(reader.backupDir)).toEqual([]);

    // `memsync verify` reports the same objects as failed, by name, instead of erroring out.
    const store = new S3RemoteStore({ ...loadConfig({ ...s3Env(server, bucket), CLOUD_SYNC_PREFIX: PREFIX }).s3, partsInFlight: 2 });
    const verifier = new RemoteVerifier({ store, retry: FAST_RETRY, concurrency: 2, log: recordingLogger([]), now: Date.now, keyring: new Keyring({ kind: 'key', key: Buffer.from(KEY, 'base64') }) });
    try {
      const [first, second] = [await verifier.verifySnapshot(tampered), await verifier.verifySnapshot(truncated)];
      expect(first).toMatchObject({ status: 'failed', failures: [expect.objectContaining({ path: 'index.faiss', reason: expect.stringMatching(/failed authentication/) })] });
      expect(second).toMatchObject({ status: 'failed', failures: [expect.objectContaining({ path: 'metadata.json' })] });
    } finally {
      store.close();
    }
  });

  it('keeps plain and encrypted snapshots side by side in one prefix, tells them apart, and restores both', async () => {
    bucket = await createTestBucket(server, 'encryption mixed');
    root = await tempDir('memsync-encryption');
    const plainName = 'auto_20260301_141414';
    const sealedName = 'auto_20260301_151515';
    const small: Record<string, Buffer> = { 'metadata.json': Buffer.from(SECRET_MEMORY), 'config.json': Buffer.from('{"dim":384}') };
    const plain = await side('plain', {});
    await writeBackup(plain.backupDir, plainName, small);
    expect(await upload(plain, plainName)).toBe('uploaded');
    const sealed = await side('sealed', { CLOUD_SYNC_ENCRYPTION_KEY: KEY });
    await writeBackup(sealed.backupDir, sealedName, small);
    expect(await upload(sealed, sealedName)).toBe('uploaded');
    expect(await objectKeys(`${PREFIX}${plainName}/`)).toContain(`${PREFIX}${plainName}/.memsync-manifest.json`);
    expect((await getObject(`${PREFIX}${plainName}/metadata.json`)).toString()).toBe(SECRET_MEMORY);

    // The same content under the plain snapshot's name, on the encrypting side: already there, nothing re-sent or re-encrypted.
    await writeBackup(sealed.backupDir, plainName, small);
    expect(await upload(sealed, plainName)).toBe('already-remote');
    expect(await objectKeys(`${PREFIX}${plainName}/`)).not.toContain(`${PREFIX}${plainName}/.memsync-manifest.enc`);

    await sealed.memsync.agent?.refreshRemoteIndex();
    const listing = (await sealed.memsync.server.inject({ url: '/sync/snapshots' })).json<{ snapshots: { name: string; encrypted: boolean }[] }>();
    expect(listing.snapshots.map((s) => [s.name, s.encrypted])).toEqual([
      [sealedName, true],
      [plainName, false],
    ]);
    const status = (await sealed.memsync.server.inject({ url: '/sync/status' })).json<{ remoteSnapshots: { count: number; encrypted: number } }>();
    expect(status.remoteSnapshots).toMatchObject({ count: 2, encrypted: 1 });

    const reader = await side('reader', { CLOUD_SYNC_ENCRYPTION_KEY: KEY });
    for (const name of [plainName, sealedName]) {
      expect(await restore(reader, name), name).toMatchObject({ status: 200, body: { outcome: 'restored', verification: 'sha256' } });
      await expectRestoredIdentical(reader.backupDir, name, small);
    }
  });

  it('with a passphrase: the salt is kept across restarts, another machine with the passphrase restores, a wrong one is refused', async () => {
    bucket = await createTestBucket(server, 'encryption passphrase');
    root = await tempDir('memsync-encryption');
    const name = 'auto_20260301_161616';
    const passphrase = 'correct horse battery staple';
    const small: Record<string, Buffer> = { 'metadata.json': Buffer.from(SECRET_MEMORY), 'index.faiss': randomBytes(300_000) };
    const writer = await side('writer', { CLOUD_SYNC_ENCRYPTION_PASSPHRASE: passphrase });
    await writeBackup(writer.backupDir, name, small);
    expect(await upload(writer, name)).toBe('uploaded');
    await writer.memsync.stop();
    running.splice(running.indexOf(writer.memsync), 1);

    const restarted = await side('writer', { CLOUD_SYNC_ENCRYPTION_PASSPHRASE: passphrase });
    expect(await restarted.memsync.agent?.sweep('test')).toMatchObject({ inSync: [name], queued: [] });
    expect(restarted.gets).toEqual([]);

    const reader = await side('reader', { CLOUD_SYNC_ENCRYPTION_PASSPHRASE: passphrase });
    expect(await restore(reader, name)).toMatchObject({ status: 200, body: { outcome: 'restored' } });
    await expectRestoredIdentical(reader.backupDir, name, small);

    const wrong = await side('wrong', { CLOUD_SYNC_ENCRYPTION_PASSPHRASE: `${passphrase}!` });
    expect(await restore(wrong, name)).toMatchObject({ status: 422, body: { error: 'encryption_key' } });
    expect(await readdir(wrong.backupDir)).toEqual([]);
  });
});
