// A restore that takes the unchanged runs of a large file from its earlier version in another local
// snapshot and fetches only the rest: on the real server (through the S3 store's download thread)
// and on the directory store (ranges fetched on the main thread). The restored file must still
// match the manifest's SHA-256; when the local version or the stored chunks do not give it, the
// file is fetched whole.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkBuffer } from '../../src/delta/chunker.js';
import { serializeSignatureBundle } from '../../src/delta/signature-bundle.js';
import { createSignature } from '../../src/delta/signature.js';
import { loadConfig } from '../../src/config.js';
import { isAppError } from '../../src/errors.js';
import { FsRemoteStore } from '../../src/remote/fs-store.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import type { ByteRange, FileDownloadOptions, RemoteStore } from '../../src/remote/store.js';
import { downloadVerified } from '../../src/restore/download-file.js';
import { findLocalVersion } from '../../src/restore/local-base.js';
import { Restorer } from '../../src/restore/restorer.js';
import { manifestKey, serializeManifest } from '../../src/snapshot/manifest.js';
import { SIGNATURES_FILE_NAME } from '../../src/snapshot/reserved-names.js';
import { pseudoRandomBytes } from '../helpers/delta-data.js';
import { mkfifo, releaseFifos } from '../helpers/fifo.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { createTestBucket, emptyAndDeleteBucket } from '../helpers/s3-fixture.js';
import { s3Env, testServer } from '../helpers/s3.js';

const server = testServer();
const MIB = 1024 * 1024;
const OLD = 'auto_20261201_020000';
const NEW = 'auto_20261201_030000';
const FILE = 'index.faiss';
const OLD_INDEX = pseudoRandomBytes(41, 40 * MIB + 123);
/** The next version: another header, one record appended. */
const NEW_INDEX = Buffer.concat([pseudoRandomBytes(42, 64), OLD_INDEX.subarray(64), pseudoRandomBytes(43, 1536)]);
const CONFIG = Buffer.from('{"dimension":384}');
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const RETRY = { attempts: 2, baseDelayMs: 20, maxDelayMs: 100 };

/** Puts snapshot NEW into `store`: its files, its manifest, and the signatures of `signed` as the chunks of its index. */
async function putSnapshot(store: RemoteStore, signed: Buffer | undefined): Promise<void> {
  const put = (key: string, bytes: Buffer): Promise<void> =>
    store.put(key, () => bytes, { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes: bytes.length > 16 * MIB ? 16 * MIB : undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
  await put(`${NEW}/${FILE}`, NEW_INDEX);
  await put(`${NEW}/config.json`, CONFIG);
  const files = [
    { path: 'config.json', size: CONFIG.length, sha256: sha256(CONFIG) },
    { path: FILE, size: NEW_INDEX.length, sha256: sha256(NEW_INDEX) },
  ];
  if (signed !== undefined) {
    const signature = createSignature(chunkBuffer(signed), NEW_INDEX.length, sha256(NEW_INDEX));
    await put(`${NEW}/${SIGNATURES_FILE_NAME}`, serializeSignatureBundle(new Map([[FILE, signature]])));
  } else {
    await store.delete(`${NEW}/${SIGNATURES_FILE_NAME}`);
  }
  await put(manifestKey(NEW), serializeManifest({ format: 'memsync-manifest', version: 1, snapshot: NEW, kind: 'directory', files }));
}

/** Directories that live as long as a describe block (tempDir's go after each test). */
const blockDirs: string[] = [];
async function blockDir(label: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `${label}-`));
  blockDirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of blockDirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** Every byte range the restore asked the store for, however it asked. */
function counting<T extends RemoteStore>(store: T): { store: T; fetched: () => number } {
  const ranges: ByteRange[] = [];
  const get = store.get.bind(store);
  store.get = (key: string, signal?: AbortSignal): Promise<Readable> => {
    if (key.endsWith(FILE)) ranges.push({ start: 0, end: NEW_INDEX.length });
    return get(key, signal);
  };
  const getRange = store.getRange.bind(store);
  store.getRange = (key: string, start: number, endInclusive: number, signal?: AbortSignal): Promise<Readable> => {
    if (key.endsWith(FILE)) ranges.push({ start, end: endInclusive + 1 });
    return getRange(key, start, endInclusive, signal);
  };
  const download = store.downloadRangesToFile?.bind(store);
  if (download !== undefined) {
    store.downloadRangesToFile = (key: string, options: FileDownloadOptions): Promise<void> | undefined => {
      ranges.push(...(options.ranges ?? [{ start: 0, end: options.sizeBytes }]));
      return download(key, options);
    };
  }
  return { store, fetched: () => ranges.reduce((sum, range) => sum + range.end - range.start, 0) };
}

interface Backend {
  name: string;
  make: () => Promise<RemoteStore>;
  cleanup: () => Promise<void>;
}

let bucket: string | undefined;
const backends: Backend[] = [
  {
    name: `${server.kind} (download thread)`,
    make: async () => {
      bucket ??= await createTestBucket(server, 'restore-local-base');
      return new S3RemoteStore({ ...loadConfig({ ...s3Env(server, bucket), CLOUD_SYNC_PREFIX: 'local-base/' }).s3, partsInFlight: 2 });
    },
    cleanup: async () => {
      if (bucket !== undefined) await emptyAndDeleteBucket(server, bucket);
    },
  },
  {
    name: 'the directory store (ranges fetched here)',
    make: async () => new FsRemoteStore({ directory: await blockDir('restore-local-base-fs'), prefix: 'local-base/' }),
    cleanup: async () => undefined,
  },
];

describe.each(backends)('restoring from an earlier version on disk, on $name', (backend) => {
  let backupDir: string;
  let store: RemoteStore;

  beforeAll(async () => {
    store = await backend.make();
    backupDir = path.join(await blockDir('restore-local-base'), 'backups');
    await mkdir(path.join(backupDir, OLD), { recursive: true });
    await writeFile(path.join(backupDir, OLD, FILE), OLD_INDEX);
  }, 120_000);
  afterAll(async () => {
    await backend.cleanup();
  });

  async function restore(logs: LogLine[]): Promise<{ outcome: unknown; fetched: number; restored: Buffer }> {
    await rm(path.join(backupDir, NEW), { recursive: true, force: true });
    const observed = counting(store);
    const restorer = new Restorer({ store: observed.store, backupDir, multipartThresholdBytes: 16 * MIB, retry: RETRY, log: recordingLogger(logs), now: () => Date.now(), localBaseMinFileBytes: 16 * MIB });
    const outcome = await restorer.restore(NEW);
    return { outcome, fetched: observed.fetched(), restored: await readFile(path.join(backupDir, NEW, FILE)) };
  }

  it('fetches only the changed runs; the file is byte-identical and the earlier version untouched', async () => {
    await putSnapshot(store, NEW_INDEX);
    const logs: LogLine[] = [];
    const { outcome, fetched, restored } = await restore(logs);

    expect(outcome).toMatchObject({ outcome: 'restored', verification: 'sha256', files: 2 });
    expect(restored.equals(NEW_INDEX)).toBe(true);
    expect(await readFile(path.join(backupDir, NEW, 'config.json'))).toEqual(CONFIG);
    // The header's run and the tail's, each at most a local run's minimum plus a chunk or two.
    expect(fetched).toBeGreaterThan(0);
    expect(fetched).toBeLessThan(4 * MIB);
    const reuse = logs.find((line) => line.message === 'restoring from an earlier version on disk');
    expect(reuse?.fields).toMatchObject({ file: FILE, base: path.join(backupDir, OLD, FILE), bytesFetched: NEW_INDEX.length - Number(reuse?.fields.bytesLocal) });
    expect((await readFile(path.join(backupDir, OLD, FILE))).equals(OLD_INDEX)).toBe(true);
  });

  it('fetches the file whole when the stored chunks lie about it: the SHA-256 decides, with a warning', async () => {
    // Chunks claiming the new version is the old one plus a tail: the local runs would give the old header.
    await putSnapshot(store, Buffer.concat([OLD_INDEX, Buffer.alloc(1536)]));
    const logs: LogLine[] = [];
    const { outcome, fetched, restored } = await restore(logs);

    expect(outcome).toMatchObject({ outcome: 'restored', verification: 'sha256' });
    expect(restored.equals(NEW_INDEX)).toBe(true);
    expect(logs.some((line) => line.level === 'warn' && line.message.startsWith('the earlier version on disk did not give the file'))).toBe(true);
    expect(fetched).toBeGreaterThanOrEqual(NEW_INDEX.length);
  });

  it('fetches the file whole when the snapshot has no stored chunks', async () => {
    await putSnapshot(store, undefined);
    const logs: LogLine[] = [];
    const { outcome, fetched, restored } = await restore(logs);

    expect(outcome).toMatchObject({ outcome: 'restored', verification: 'sha256' });
    expect(restored.equals(NEW_INDEX)).toBe(true);
    expect(fetched).toBe(NEW_INDEX.length);
    expect(logs.filter((line) => line.level === 'warn')).toEqual([]);
  });

  it('fails as a local error, not a success, when the earlier version changed since it was found (the restorer then fetches the file whole)', async () => {
    const signature = createSignature(chunkBuffer(NEW_INDEX), NEW_INDEX.length, sha256(NEW_INDEX));
    const target = path.join(await blockDir('restore-local-base-target'), FILE);
    // Found at one size; it has fewer bytes when read.
    const base = { path: path.join(backupDir, OLD, FILE), sizeBytes: OLD_INDEX.length + 4096, signature };
    const expected = { path: FILE, size: NEW_INDEX.length, sha256: sha256(NEW_INDEX), etag: '', encrypted: false };
    const error = await downloadVerified(store, `${NEW}/${FILE}`, target, expected, { signal: undefined, onBytes: () => undefined, rangeRetry: { policy: RETRY }, localBase: base }).catch((caught: unknown) => caught);
    expect(isAppError(error, 'local_io'), String(error)).toBe(true);
    expect(String(error)).toContain('ended at byte');
  });

  it('does not read an earlier version reached through a symbolic link: the file is fetched whole', async () => {
    await putSnapshot(store, NEW_INDEX);
    const elsewhere = await blockDir('restore-local-base-elsewhere');
    await writeFile(path.join(elsewhere, FILE), OLD_INDEX);
    const linkedDir = path.join(await blockDir('restore-local-base-linked'), 'backups');
    await mkdir(linkedDir);
    await symlink(elsewhere, path.join(linkedDir, 'auto_20261201_025900'));
    const logs: LogLine[] = [];
    const observed = counting(store);
    const restorer = new Restorer({ store: observed.store, backupDir: linkedDir, multipartThresholdBytes: 16 * MIB, retry: RETRY, log: recordingLogger(logs), now: () => Date.now(), localBaseMinFileBytes: 16 * MIB });

    expect(await restorer.restore(NEW)).toMatchObject({ outcome: 'restored', verification: 'sha256' });
    expect((await readFile(path.join(linkedDir, NEW, FILE))).equals(NEW_INDEX)).toBe(true);
    expect(observed.fetched()).toBe(NEW_INDEX.length);
    expect(logs.some((line) => line.message === 'restoring from an earlier version on disk')).toBe(false);
  });

  it('refuses an earlier version swapped for a FIFO after it was found, without hanging: local_io, which the restorer answers by fetching the file whole', async () => {
    const dir = await blockDir('restore-local-base-fifo');
    await mkdir(path.join(dir, OLD));
    await writeFile(path.join(dir, OLD, FILE), OLD_INDEX);
    const found = await findLocalVersion(dir, NEW, FILE, 16 * MIB);
    expect(found?.path).toBe(path.join(dir, OLD, FILE));
    await rm(path.join(dir, OLD, FILE));
    await mkfifo(path.join(dir, OLD, FILE));
    const signature = createSignature(chunkBuffer(NEW_INDEX), NEW_INDEX.length, sha256(NEW_INDEX));
    const expected = { path: FILE, size: NEW_INDEX.length, sha256: sha256(NEW_INDEX), etag: '', encrypted: false };
    const target = path.join(dir, 'staged');
    try {
      const error = await downloadVerified(store, `${NEW}/${FILE}`, target, expected, {
        signal: undefined,
        onBytes: () => undefined,
        rangeRetry: { policy: RETRY },
        localBase: { ...(found as NonNullable<typeof found>), signature },
      }).catch((caught: unknown) => caught);
      expect(isAppError(error, 'local_io'), String(error)).toBe(true);
      expect(String(error)).toContain('cannot read the earlier version');
    } finally {
      releaseFifos();
    }
  });
});
