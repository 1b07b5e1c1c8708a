// Differential uploads in the uploader, with the in-memory store: what is copied, what is
// sent, and every way a copy falls back to an upload.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import PQueue from 'p-queue';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { MemoryRemoteStore, type MemoryStoreOptions } from '../../src/remote/memory-store.js';
import { listRemoteIndex, type RemoteIndex } from '../../src/remote/remote-index.js';
import type { CopyOptions } from '../../src/remote/store.js';
import { CLAIM_FILE_NAME, MANIFEST_FILE_NAME, parseManifest } from '../../src/snapshot/manifest.js';
import { statSnapshot } from '../../src/snapshot/scan.js';
import { emptyHashCache, hashCacheSchema, type HashCacheDocument } from '../../src/state/hash-cache.js';
import { PersistedJson } from '../../src/state/persisted.js';
import { METADATA_AGENT, METADATA_SHA256 } from '../../src/upload/plan.js';
import { SnapshotUploader, type SnapshotOutcome } from '../../src/upload/snapshot-uploader.js';
import { tempDir } from '../helpers/tmp.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';

const MIB = 1024 * 1024;
const AGENT = 'agent-under-test';
const S1 = 'auto_20250101_000000';
const S2 = 'auto_20250102_000000';
const S3 = 'auto_20250103_000000';

const sha256Hex = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

const caches: PersistedJson<HashCacheDocument>[] = [];
afterEach(async () => {
  for (const cache of caches.splice(0)) await cache.flush();
});

interface Setup {
  backupDir: string;
  store: MemoryRemoteStore;
  logs: LogLine[];
  uploader: SnapshotUploader;
  /** As the agent does: list the bucket, so complete snapshots and their manifest ETags are known. */
  relist(): Promise<void>;
}

async function setup(store: MemoryRemoteStore = new MemoryRemoteStore(), options: { copies?: boolean } = {}): Promise<Setup> {
  const root = await tempDir('uploader-copy');
  const backupDir = path.join(root, 'backups');
  await mkdir(backupDir);
  await mkdir(path.join(root, 'state'));
  const hashCache = new PersistedJson<HashCacheDocument>(path.join(root, 'state', 'hash-cache.json'), hashCacheSchema, emptyHashCache, recordingLogger([]));
  caches.push(hashCache);
  const logs: LogLine[] = [];
  let index: RemoteIndex = { snapshots: new Map(), ignoredKeys: 0, listedAtMs: 0 };
  const uploader = new SnapshotUploader({
    store,
    hashCache,
    fileQueue: new PQueue({ concurrency: 2 }),
    agentId: AGENT,
    backupDir,
    multipartThresholdBytes: 5 * MIB,
    retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 },
    log: recordingLogger(logs),
    now: () => Date.now(),
    serverSideCopy: options.copies === false ? undefined : { remoteIndex: () => index },
  });
  return {
    backupDir,
    store,
    logs,
    uploader,
    relist: async () => {
      index = await listRemoteIndex(store, Date.now);
    },
  };
}

/** The memory-service layout, with an index above the multipart threshold (two 8 MiB parts). */
function memoryFiles(config = 'v1'): Record<string, Buffer> {
  return {
    'config.json': Buffer.from(JSON.stringify({ dim: 384, version: config })),
    'metadata.json': Buffer.from(JSON.stringify({ entries: 3 }).repeat(2000)),
    'index.faiss': SHARED_INDEX,
    'vectors/large.bin': SHARED_LARGE,
  };
}
const SHARED_INDEX = randomBytes(300_000);
const SHARED_LARGE = randomBytes(9 * MIB);

async function writeSnapshot(backupDir: string, name: string, files: Record<string, Buffer>): Promise<void> {
  for (const [relative, bytes] of Object.entries(files)) {
    const absolute = path.join(backupDir, name, ...relative.split('/'));
    await mkdir(path.dirname(absolute), { recursive: true });
    await writeFile(absolute, bytes);
  }
}

/** Writes and uploads one snapshot after relisting (what the agent's index would show), returning an 'uploaded' outcome. */
async function uploadSnapshot(s: Setup, name: string, files: Record<string, Buffer>): Promise<Extract<SnapshotOutcome, { outcome: 'uploaded' }>> {
  await writeSnapshot(s.backupDir, name, files);
  await s.relist();
  const outcome = await s.uploader.upload(await statSnapshot(s.backupDir, name), new AbortController().signal, () => undefined);
  if (outcome.outcome !== 'uploaded') throw new Error(`expected uploaded, got ${outcome.outcome}`);
  return outcome;
}

function expectStoredAsLocal(store: MemoryRemoteStore, name: string, files: Record<string, Buffer>): void {
  for (const [relative, bytes] of Object.entries(files)) {
    const stored = store.objects.get(`${name}/${relative}`);
    expect(stored?.bytes.equals(bytes), relative).toBe(true);
    expect(stored?.metadata, relative).toEqual({ [METADATA_AGENT]: AGENT, [METADATA_SHA256]: sha256Hex(bytes) });
  }
}

const sizeOf = (files: Record<string, Buffer>, ...paths: string[]): number => paths.reduce((sum, p) => sum + (files[p]?.length ?? 0), 0);

const warnings = (logs: LogLine[]): LogLine[] => logs.filter((l) => l.level === 'warn' && l.message.startsWith('server-side copy not possible'));

describe('SnapshotUploader with server-side copy', () => {
  it('copies every file an earlier complete snapshot holds and sends only the changed one; the manifest is still last', async () => {
    const s = await setup();
    const first = memoryFiles('v1');
    const one = await uploadSnapshot(s, S1, first);
    expect(one).toMatchObject({ bytesCopied: 0, filesCopied: 0, filesSent: 4 });

    const second = memoryFiles('v2');
    const putsBefore = s.store.putLog.length;
    const two = await uploadSnapshot(s, S2, second);

    expect(two).toMatchObject({ bytesSent: sizeOf(second, 'config.json'), filesSent: 1, filesCopied: 3 });
    expect(two.bytesCopied).toBe(sizeOf(second, 'metadata.json', 'index.faiss', 'vectors/large.bin'));
    expect(two.bytesSent + two.bytesCopied).toBe(two.bytes);
    // The claim comes first: a large file is about to be written (here by copy).
    expect(s.store.putLog.slice(putsBefore)).toEqual([`${S2}/${CLAIM_FILE_NAME}`, `${S2}/config.json`, `${S2}/${MANIFEST_FILE_NAME}`]);
    expect([...s.store.copyLog].sort()).toEqual([
      `${S1}/index.faiss -> ${S2}/index.faiss`,
      `${S1}/metadata.json -> ${S2}/metadata.json`,
      `${S1}/vectors/large.bin -> ${S2}/vectors/large.bin`,
    ]);
    expectStoredAsLocal(s.store, S2, second);
    // A plain layout: the copy of the multipart file is a whole object under the new name.
    expect(s.store.objects.get(`${S2}/vectors/large.bin`)?.etag).toMatch(/-2$/);
    expect(parseManifest(s.store.objects.get(`${S2}/${MANIFEST_FILE_NAME}`)?.bytes ?? Buffer.alloc(0), S2)).toEqual(two.manifest);
    expect(warnings(s.logs)).toEqual([]);
  });

  it('accepts the plain MD5 a server gives the copy of a multipart source (AWS S3)', async () => {
    const s = await setup(new MemoryRemoteStore({ copyEtag: 'md5' }));
    await uploadSnapshot(s, S1, memoryFiles('v1'));
    const two = await uploadSnapshot(s, S2, memoryFiles('v2'));
    expect(two.filesCopied).toBe(3);
    expect(s.store.objects.get(`${S2}/vectors/large.bin`)?.etag).toMatch(/^[0-9a-f]{32}$/);
  });

  it('copies from the newest complete snapshot, and from unchanged files of snapshots before that', async () => {
    const s = await setup();
    await uploadSnapshot(s, S1, memoryFiles('v1'));
    await uploadSnapshot(s, S2, memoryFiles('v2'));
    const copiesBefore = s.store.copyLog.length;
    // config.json as in S1: copied from S1, the rest from S2.
    const three = await uploadSnapshot(s, S3, memoryFiles('v1'));
    expect(three).toMatchObject({ filesSent: 0, bytesSent: 0, filesCopied: 4 });
    expect(s.store.copyLog.slice(copiesBefore).sort()).toEqual([
      `${S1}/config.json -> ${S3}/config.json`,
      `${S2}/index.faiss -> ${S3}/index.faiss`,
      `${S2}/metadata.json -> ${S3}/metadata.json`,
      `${S2}/vectors/large.bin -> ${S3}/vectors/large.bin`,
    ]);
  });

  it('reads each source manifest once: later uploads use the cache, and what it wrote itself is never downloaded', async () => {
    class CountingStore extends MemoryRemoteStore {
      readonly manifestGets: string[] = [];
      override get(key: string): ReturnType<MemoryRemoteStore['get']> {
        if (key.endsWith(MANIFEST_FILE_NAME)) this.manifestGets.push(key);
        return super.get(key);
      }
    }
    const store = new CountingStore();
    const writer = await setup(store);
    await uploadSnapshot(writer, S1, memoryFiles('v1'));
    // A fresh process (e.g. after a restart) knows nothing yet.
    const s = await setup(store);
    await uploadSnapshot(s, S2, memoryFiles('v2'));
    expect(store.manifestGets.filter((k) => k.startsWith(`${S1}/`))).toEqual([`${S1}/${MANIFEST_FILE_NAME}`]);
    await uploadSnapshot(s, S3, memoryFiles('v3'));
    expect(store.manifestGets.filter((k) => k.startsWith(`${S1}/`) || k.startsWith(`${S2}/`))).toEqual([`${S1}/${MANIFEST_FILE_NAME}`]);
  });

  it('falls back to uploading when the server does not implement copies, logs it once and stops trying', async () => {
    class CountingStore extends MemoryRemoteStore {
      copyAttempts = 0;
      override copy(sourceKey: string, targetKey: string, options: CopyOptions): Promise<void> {
        this.copyAttempts += 1;
        return super.copy(sourceKey, targetKey, options);
      }
    }
    const store = new CountingStore({ refuseCopies: 'NotImplemented' });
    const s = await setup(store);
    await uploadSnapshot(s, S1, memoryFiles('v1'));
    const second = memoryFiles('v2');
    const two = await uploadSnapshot(s, S2, second);
    expect(two).toMatchObject({ filesSent: 4, bytesSent: two.bytes, filesCopied: 0, bytesCopied: 0 });
    expectStoredAsLocal(store, S2, second);
    const attempts = store.copyAttempts;
    expect(attempts).toBeGreaterThanOrEqual(1);
    expect(attempts).toBeLessThanOrEqual(2); // two files in flight may both ask before the first answer
    await uploadSnapshot(s, S3, memoryFiles('v3'));
    expect(store.copyAttempts).toBe(attempts);
    expect(warnings(s.logs).map((l) => l.fields.reason)).toEqual(['copies not implemented by the server']);
    expect(warnings(s.logs)[0]?.fields).toMatchObject({ snapshot: S2 });
  });

  it('falls back per file when a copy is refused (AccessDenied on the source), with one warning for all of them', async () => {
    const store = new MemoryRemoteStore();
    const s = await setup(store);
    await uploadSnapshot(s, S1, memoryFiles('v1'));
    store.refuseCopies = 'AccessDenied';
    const second = memoryFiles('v2');
    const two = await uploadSnapshot(s, S2, second);
    expect(two).toMatchObject({ filesSent: 4, filesCopied: 0 });
    expectStoredAsLocal(store, S2, second);
    expect(warnings(s.logs).map((l) => l.fields.reason)).toEqual(['copy refused (AccessDenied)']);
    expect(s.logs.filter((l) => l.level === 'debug' && l.message.startsWith('server-side copy not possible'))).toHaveLength(2);
    // Refusals are per file: once the server allows copies again, they are used.
    store.refuseCopies = undefined;
    expect((await uploadSnapshot(s, S3, memoryFiles('v3'))).filesCopied).toBe(3);
  });

  it('uploads a file whose source was deleted (retention) after the listing, or replaced by other bytes', async () => {
    const store = new MemoryRemoteStore();
    const s = await setup(store);
    await uploadSnapshot(s, S1, memoryFiles('v1'));
    await writeSnapshot(s.backupDir, S2, memoryFiles('v2'));
    await s.relist();
    await store.delete(`${S1}/index.faiss`);
    await store.put(`${S1}/metadata.json`, () => Buffer.from('not the same'), { sizeBytes: 12, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
    const two = await s.uploader.upload(await statSnapshot(s.backupDir, S2), new AbortController().signal, () => undefined);
    expect(two).toMatchObject({ outcome: 'uploaded', filesSent: 3, filesCopied: 1 });
    expectStoredAsLocal(store, S2, memoryFiles('v2'));
    expect(warnings(s.logs).map((l) => l.fields.reason).sort()).toEqual(['source changed', 'source gone']);
  });

  it('uses an older source when the newest one is gone', async () => {
    const store = new MemoryRemoteStore();
    const s = await setup(store);
    await uploadSnapshot(s, S1, memoryFiles('v1'));
    await uploadSnapshot(s, S2, memoryFiles('v2'));
    await writeSnapshot(s.backupDir, S3, memoryFiles('v3'));
    await s.relist();
    await store.delete(`${S2}/index.faiss`);
    const copiesBefore = store.copyLog.length;
    const three = await s.uploader.upload(await statSnapshot(s.backupDir, S3), new AbortController().signal, () => undefined);
    expect(three).toMatchObject({ outcome: 'uploaded', filesSent: 1, filesCopied: 3 });
    expect(store.copyLog.slice(copiesBefore)).toContain(`${S1}/index.faiss -> ${S3}/index.faiss`);
  });

  it('uploads when the source vanishes between its check and the copy', async () => {
    class VanishingSourceStore extends MemoryRemoteStore {
      override async copy(sourceKey: string, targetKey: string, options: CopyOptions): Promise<void> {
        this.objects.delete(sourceKey);
        return super.copy(sourceKey, targetKey, options);
      }
    }
    const store = new VanishingSourceStore();
    const s = await setup(store);
    await uploadSnapshot(s, S1, memoryFiles('v1'));
    const second = memoryFiles('v2');
    const two = await uploadSnapshot(s, S2, second);
    expect(two).toMatchObject({ filesSent: 4, filesCopied: 0 });
    expectStoredAsLocal(store, S2, second);
    expect(warnings(s.logs).map((l) => l.fields.reason)).toEqual(['source gone']);
  });

  it('removes a copy that does not verify (server kept the source metadata) and uploads the file instead', async () => {
    class KeepsMetadataStore extends MemoryRemoteStore {
      override async copy(sourceKey: string, targetKey: string, options: CopyOptions): Promise<void> {
        await super.copy(sourceKey, targetKey, { ...options, metadata: { [METADATA_AGENT]: 'someone-else' } });
      }
    }
    const store = new KeepsMetadataStore();
    const s = await setup(store);
    await uploadSnapshot(s, S1, memoryFiles('v1'));
    const second = memoryFiles('v2');
    const two = await uploadSnapshot(s, S2, second);
    expect(two).toMatchObject({ filesSent: 4, filesCopied: 0 });
    expectStoredAsLocal(store, S2, second);
    expect(warnings(s.logs).map((l) => l.fields.reason)).toEqual(['copy did not verify']);
  });

  it('surfaces a failure that is not about copying (store unavailable) as the upload failure it is', async () => {
    class DownStore extends MemoryRemoteStore {
      down = false;
      override async copy(sourceKey: string, targetKey: string, options: CopyOptions): Promise<void> {
        if (this.down) throw new AppError('remote_unavailable', 'copy: ECONNRESET');
        return super.copy(sourceKey, targetKey, options);
      }
    }
    const store = new DownStore();
    const s = await setup(store);
    await uploadSnapshot(s, S1, memoryFiles('v1'));
    store.down = true;
    await expect(uploadSnapshot(s, S2, memoryFiles('v2'))).rejects.toMatchObject({ kind: 'remote_unavailable' });
    expect(store.objects.has(`${S2}/${MANIFEST_FILE_NAME}`)).toBe(false);
  });

  it('copies nothing when server-side copy is off', async () => {
    const s = await setup(new MemoryRemoteStore(), { copies: false });
    await uploadSnapshot(s, S1, memoryFiles('v1'));
    const two = await uploadSnapshot(s, S2, memoryFiles('v2'));
    expect(two).toMatchObject({ filesSent: 4, filesCopied: 0, bytesCopied: 0 });
    expect(s.store.copyLog).toEqual([]);
  });

  it('a single-file snapshot (dump_*.tar) is copied too', async () => {
    const s = await setup();
    const tar = randomBytes(200_000);
    await writeFile(path.join(s.backupDir, 'dump_20250101_000000.tar'), tar);
    await s.relist();
    await s.uploader.upload(await statSnapshot(s.backupDir, 'dump_20250101_000000.tar'), new AbortController().signal, () => undefined);
    await writeFile(path.join(s.backupDir, 'dump_20250102_000000.tar'), tar);
    await s.relist();
    const two = await s.uploader.upload(await statSnapshot(s.backupDir, 'dump_20250102_000000.tar'), new AbortController().signal, () => undefined);
    expect(two).toMatchObject({ outcome: 'uploaded', filesCopied: 1, bytesSent: 0 });
    expect(s.store.objects.get('dump_20250102_000000.tar/dump_20250102_000000.tar')?.bytes.equals(tar)).toBe(true);
  });
});
