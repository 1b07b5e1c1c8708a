// Delta uploads in the uploader, with the in-memory store: a large file whose previous version is
// stored is composed from ranges of it plus the changed bytes, verified, and every way that can
// fail sends the file whole instead.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { listRemoteIndex, type RemoteIndex } from '../../src/remote/remote-index.js';
import type { ComposeOptions } from '../../src/remote/store.js';
import { statSnapshot } from '../../src/snapshot/scan.js';
import type { HashCacheDocument } from '../../src/state/hash-cache.js';
import { PersistedJson } from '../../src/state/persisted.js';
import { SignatureStore } from '../../src/state/signature-store.js';
import { METADATA_SHA256 } from '../../src/upload/plan.js';
import type { SnapshotOutcome, SnapshotUploader } from '../../src/upload/snapshot-uploader.js';
import { pseudoRandomBytes } from '../helpers/delta-data.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { tempDir } from '../helpers/tmp.js';
import { uploaderHarness, writeSnapshotFiles } from '../helpers/uploader-harness.js';

const MIB = 1024 * 1024;
const S1 = 'auto_20250101_000000';
const S2 = 'auto_20250102_000000';
const S3 = 'auto_20250103_000000';
const DELTA_MIN_BYTES = 16 * MIB;

const caches: PersistedJson<HashCacheDocument>[] = [];
afterEach(async () => {
  for (const cache of caches.splice(0)) await cache.flush();
});

interface Setup {
  backupDir: string;
  store: MemoryRemoteStore;
  logs: LogLine[];
  uploader: SnapshotUploader;
  /** Writes snapshot `name` and uploads it after listing the bucket, as the agent would. */
  upload(name: string, files: Record<string, Buffer>): Promise<Extract<SnapshotOutcome, { outcome: 'uploaded' }>>;
}

async function setup(store: MemoryRemoteStore = new MemoryRemoteStore(), options: { delta?: boolean; signaturesDir?: string } = {}): Promise<Setup> {
  const logs: LogLine[] = [];
  let index: RemoteIndex = { snapshots: new Map(), ignoredKeys: 0, listedAtMs: 0 };
  const signaturesDir = options.signaturesDir ?? path.join(await tempDir('uploader-delta-signatures'), 'signatures');
  const harness = await uploaderHarness('uploader-delta', caches, store, {
    log: recordingLogger(logs),
    multipartThresholdBytes: 16 * MIB,
    serverSideCopy: { remoteIndex: () => index },
    ...(options.delta === false ? {} : { delta: { minFileBytes: DELTA_MIN_BYTES, signatures: new SignatureStore(signaturesDir, recordingLogger(logs)) } }),
  });
  const upload = async (name: string, files: Record<string, Buffer>): Promise<Extract<SnapshotOutcome, { outcome: 'uploaded' }>> => {
    await writeSnapshotFiles(harness.backupDir, name, files);
    index = await listRemoteIndex(store, Date.now);
    const outcome = await harness.uploader.upload(await statSnapshot(harness.backupDir, name), new AbortController().signal, () => undefined);
    if (outcome.outcome !== 'uploaded') throw new Error(`expected uploaded, got ${outcome.outcome}`);
    return outcome;
  };
  return { backupDir: harness.backupDir, store, logs, uploader: harness.uploader, upload };
}

const BASE = pseudoRandomBytes(7, 40 * MIB);
const sha256Hex = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

function expectStored(store: MemoryRemoteStore, key: string, bytes: Buffer): void {
  const stored = store.objects.get(key);
  expect(stored?.bytes.equals(bytes), key).toBe(true);
  expect(stored?.metadata[METADATA_SHA256], key).toBe(sha256Hex(bytes));
}

/** A store whose compose can be made to misbehave once. */
class FaultyCompose extends MemoryRemoteStore {
  beforeCompose: ((options: ComposeOptions) => Promise<void>) | undefined;
  override async compose(targetKey: string, options: ComposeOptions): Promise<void> {
    const hook = this.beforeCompose;
    this.beforeCompose = undefined;
    await hook?.(options);
    return super.compose(targetKey, options);
  }
}

describe('SnapshotUploader with delta uploads', () => {
  it.each<[string, (base: Buffer) => Buffer, number]>([
    ['an append', (base) => Buffer.concat([base, Buffer.from('{"id":"appended"}\n')]), 1 * MIB],
    ['an edit in the middle', (base) => Buffer.concat([base.subarray(0, 20 * MIB), Buffer.from('EDITED'), base.subarray(20 * MIB + 6)]), 6 * MIB],
    ['an insertion in the middle', (base) => Buffer.concat([base.subarray(0, 20 * MIB), Buffer.from('inserted record'), base.subarray(20 * MIB)]), 6 * MIB],
    ['a deletion in the middle', (base) => Buffer.concat([base.subarray(0, 20 * MIB), base.subarray(20 * MIB + 1000)]), 6 * MIB],
    ['a new header at the start', (base) => Buffer.concat([Buffer.from('HEADER v2'), base.subarray(9)]), 6 * MIB],
    ['a file that shrank', (base) => base.subarray(0, 30 * MIB), 1 * MIB],
  ])('sends only about the changed region for %s, and stores the whole new file', async (_label, change, maxSentBytes) => {
    const s = await setup();
    await s.upload(S1, { 'metadata.json': BASE, 'config.json': Buffer.from('{"v":1}') });
    const next = change(BASE);
    const outcome = await s.upload(S2, { 'metadata.json': next, 'config.json': Buffer.from('{"v":2}') });
    expect(outcome.filesDelta).toBe(1);
    expect(outcome.bytesSent).toBeLessThanOrEqual(maxSentBytes + 16);
    expect(outcome.bytesDelta).toBeGreaterThan(next.length - maxSentBytes);
    expectStored(s.store, `${S2}/metadata.json`, next);
    expect(s.store.composeLog).toEqual([`${S1}/metadata.json -> ${S2}/metadata.json`]);
    expect((await s.store.listMultipartUploads('')).length).toBe(0);
  });

  it('composes from the newest version, chaining versions', async () => {
    const s = await setup();
    await s.upload(S1, { 'metadata.json': BASE });
    const v2 = Buffer.concat([BASE, Buffer.from('second')]);
    await s.upload(S2, { 'metadata.json': v2 });
    const v3 = Buffer.concat([v2, Buffer.from('third')]);
    const outcome = await s.upload(S3, { 'metadata.json': v3 });
    expect(outcome.filesDelta).toBe(1);
    expect(s.store.composeLog.at(-1)).toBe(`${S2}/metadata.json -> ${S3}/metadata.json`);
    expectStored(s.store, `${S3}/metadata.json`, v3);
  });

  it('copies a composed object server-side when the next backup holds the same content', async () => {
    const s = await setup();
    await s.upload(S1, { 'metadata.json': BASE });
    const v2 = Buffer.concat([BASE, Buffer.from('x')]);
    await s.upload(S2, { 'metadata.json': v2 });
    const outcome = await s.upload(S3, { 'metadata.json': v2, 'config.json': Buffer.from('{}') });
    expect(outcome).toMatchObject({ filesCopied: 1, bytesCopied: v2.length, filesDelta: 0 });
    expect(outcome.bytesSent).toBe(2);
    expectStored(s.store, `${S3}/metadata.json`, v2);
  });

  it('sends the file whole when the server cannot copy ranges, and stops trying', async () => {
    const s = await setup(new MemoryRemoteStore({ rangedCopy: false }));
    await s.upload(S1, { 'metadata.json': BASE });
    const v2 = Buffer.concat([BASE, Buffer.from('x')]);
    const outcome = await s.upload(S2, { 'metadata.json': v2 });
    expect(outcome.filesDelta).toBe(0);
    expect(outcome.bytesSent).toBe(v2.length);
    expectStored(s.store, `${S2}/metadata.json`, v2);
    expect(s.logs.some((l) => l.level === 'warn' && l.message.startsWith('delta upload not possible') && l.fields.deltaDisabled === true)).toBe(true);
    const v3 = Buffer.concat([v2, Buffer.from('y')]);
    const third = await s.upload(S3, { 'metadata.json': v3 });
    expect(third.filesDelta).toBe(0);
    expect((await s.store.listMultipartUploads('')).length).toBe(0);
  });

  it('sends the file whole when the base is replaced between planning and copying', async () => {
    const store = new FaultyCompose();
    const s = await setup(store);
    await s.upload(S1, { 'metadata.json': BASE });
    store.beforeCompose = async (options) => {
      const other = pseudoRandomBytes(99, BASE.length);
      await store.put(options.sourceKey, () => other, { sizeBytes: other.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
    };
    const v2 = Buffer.concat([BASE, Buffer.from('x')]);
    const outcome = await s.upload(S2, { 'metadata.json': v2 });
    expect(outcome.filesDelta).toBe(0);
    expectStored(s.store, `${S2}/metadata.json`, v2);
    expect((await s.store.listMultipartUploads('')).length).toBe(0);
  });

  it('sends the file whole when a copied range does not hold what the local file holds', async () => {
    const store = new FaultyCompose();
    const s = await setup(store);
    await s.upload(S1, { 'metadata.json': BASE });
    // The base object's bytes change in place but keep their ETag: only the part MD5 check can tell.
    store.beforeCompose = async (options) => {
      const object = store.objects.get(options.sourceKey);
      if (object !== undefined) object.bytes[10 * MIB] = (object.bytes[10 * MIB] ?? 0) ^ 0xff;
    };
    const v2 = Buffer.concat([BASE, Buffer.from('x')]);
    const outcome = await s.upload(S2, { 'metadata.json': v2 });
    expect(outcome.filesDelta).toBe(0);
    expectStored(s.store, `${S2}/metadata.json`, v2);
    expect(s.logs.some((l) => l.level === 'warn' && String(l.fields.reason).includes('differs from the local file'))).toBe(true);
  });

  it('sends small files and unrelated files whole, and nothing composed when delta is off', async () => {
    const off = await setup(new MemoryRemoteStore(), { delta: false });
    await off.upload(S1, { 'metadata.json': BASE });
    const v2 = Buffer.concat([BASE, Buffer.from('x')]);
    expect((await off.upload(S2, { 'metadata.json': v2 })).filesDelta).toBe(0);
    expect(off.store.composeLog).toEqual([]);

    const on = await setup();
    await on.upload(S1, { 'metadata.json': BASE, 'small.json': pseudoRandomBytes(1, 2 * MIB) });
    const unrelated = pseudoRandomBytes(5, BASE.length);
    const outcome = await on.upload(S2, { 'metadata.json': unrelated, 'small.json': pseudoRandomBytes(2, 2 * MIB) });
    expect(outcome.filesDelta).toBe(0);
    expectStored(on.store, `${S2}/metadata.json`, unrelated);
  });

  it('an agent with no state of its own (a new machine) composes from the signatures stored next to the manifest', async () => {
    const store = new MemoryRemoteStore();
    const first = await setup(store);
    await first.upload(S1, { 'metadata.json': BASE, 'config.json': Buffer.from('{}') });
    expect(store.objects.has(`${S1}/.memsync-signatures`)).toBe(true);
    const elsewhere = await setup(store);
    const outcome = await elsewhere.upload(S2, { 'metadata.json': Buffer.concat([BASE, Buffer.from('x')]), 'config.json': Buffer.from('{}') });
    expect(outcome.filesDelta).toBe(1);
    expect(outcome.bytesSent).toBeLessThan(2 * MIB);
  });

  it('a planted or damaged signature bundle only means the file is sent whole', async () => {
    const store = new MemoryRemoteStore();
    const first = await setup(store);
    await first.upload(S1, { 'metadata.json': BASE });
    const planted = Buffer.from(JSON.stringify({ format: 'memsync-signatures', version: 1, files: { 'metadata.json': Buffer.from('not a signature').toString('base64') } }));
    await store.delete(`${S1}/.memsync-signatures`);
    await store.put(`${S1}/.memsync-signatures`, () => planted, { sizeBytes: planted.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
    const elsewhere = await setup(store);
    const v2 = Buffer.concat([BASE, Buffer.from('x')]);
    const outcome = await elsewhere.upload(S2, { 'metadata.json': v2 });
    expect(outcome.filesDelta).toBe(0);
    expectStored(store, `${S2}/metadata.json`, v2);
    expect(elsewhere.logs.some((l) => l.level === 'warn' && l.message.startsWith('signatures stored with a snapshot are unusable'))).toBe(true);
  });

  it('a new uploader over the same signatures (a restarted agent) composes from the signatures kept', async () => {
    const signaturesDir = path.join(await tempDir('uploader-delta-shared'), 'signatures');
    const store = new MemoryRemoteStore();
    const first = await setup(store, { signaturesDir });
    await first.upload(S1, { 'metadata.json': BASE });
    const second = await setup(store, { signaturesDir });
    const outcome = await second.upload(S2, { 'metadata.json': Buffer.concat([BASE, Buffer.from('x')]) });
    expect(outcome.filesDelta).toBe(1);
  });
});
