// A bucket can hold anything under a manifest's name. Every manifest memsync reads into memory
// is bounded: an oversized one fails the snapshot it belongs to (integrity, not retried), is
// never read to its end, and never takes the agent or the other snapshots with it.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import PQueue from 'p-queue';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError, isAppError } from '../../src/errors.js';
import { readBody } from '../../src/remote/body.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { listRemoteIndex, type RemoteIndex } from '../../src/remote/remote-index.js';
import type { RemoteObject } from '../../src/remote/store.js';
import { planRemoteSnapshot } from '../../src/restore/remote-snapshot.js';
import { buildManifest, manifestKey, serializeManifest, type Manifest } from '../../src/snapshot/manifest.js';
import { statSnapshot } from '../../src/snapshot/scan.js';
import { emptyHashCache, hashCacheSchema, type HashCacheDocument } from '../../src/state/hash-cache.js';
import { PersistedJson } from '../../src/state/persisted.js';
import { CopySourceCache } from '../../src/upload/copy-sources.js';
import { SnapshotUploader } from '../../src/upload/snapshot-uploader.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { tempDir } from '../helpers/tmp.js';

const MIB = 1024 * 1024;
/** Beyond any manifest memsync writes, whatever the snapshot. */
const HUGE_BYTES = 17 * MIB;
const S1 = 'auto_20250101_000000';
const S2 = 'auto_20250102_000000';
const S3 = 'auto_20250103_000000';
const CONTENT = Buffer.from('remembered');

const sha256Hex = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const oneFileManifest = (name: string): Manifest => buildManifest(name, 'directory', [{ path: 'memory.json', size: CONTENT.length, sha256: sha256Hex(CONTENT) }]);

/** A valid manifest, padded with JSON whitespace to `totalBytes`: it parses, only its size is wrong. */
function paddedManifest(manifest: Manifest, totalBytes: number): Buffer {
  const bytes = serializeManifest(manifest);
  return Buffer.concat([Buffer.alloc(totalBytes - bytes.length, ' '), bytes]);
}

async function putObject(store: MemoryRemoteStore, key: string, bytes: Buffer): Promise<void> {
  await store.put(key, () => bytes, { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
}

/** A complete one-file snapshot as memsync writes it, or with `manifestBytes` in place of its manifest. */
async function plantSnapshot(store: MemoryRemoteStore, name: string, manifestBytes?: Buffer): Promise<void> {
  await putObject(store, `${name}/memory.json`, CONTENT);
  await putObject(store, manifestKey(name), manifestBytes ?? serializeManifest(oneFileManifest(name)));
}

/** `chunks` chunks of `chunkBytes`, counting how many were produced: what a reader pulled from the network. */
function countingBody(chunks: number, chunkBytes: number): { stream: Readable; produced: () => number } {
  let produced = 0;
  const stream = Readable.from(
    (function* () {
      for (let i = 0; i < chunks; i += 1) {
        produced += 1;
        yield Buffer.alloc(chunkBytes, 0x20);
      }
    })(),
    { objectMode: false },
  );
  return { stream, produced: () => produced };
}

function expectRefusedAsTooLarge(error: unknown): void {
  expect(isAppError(error, 'integrity'), String(error)).toBe(true);
  expect((error as AppError).retryable).toBe(false);
  expect((error as AppError).message).toMatch(/larger than/);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(value)?.slice(0, 200)}`);
    },
    (error: unknown) => error,
  );
}

describe('readBody bound', () => {
  it('returns a body of up to maxBytes whole', async () => {
    const { stream } = countingBody(4, 1024);
    expect((await readBody(stream, 'k', 4096)).length).toBe(4096);
  });

  it('stops reading as soon as the body passes maxBytes, destroys the stream, and fails as integrity (not retried)', async () => {
    const body = countingBody(64, 1024);
    const error = await rejection(readBody(body.stream, 'snap/.memsync-manifest.json', 4096));
    expectRefusedAsTooLarge(error);
    expect((error as AppError).message).toContain('snap/.memsync-manifest.json');
    expect(body.produced()).toBeLessThan(64);
    expect(body.stream.destroyed).toBe(true);
  });
});

describe('restore of a snapshot with an oversized manifest', () => {
  class CountingStore extends MemoryRemoteStore {
    readonly gets: string[] = [];
    override get(key: string): ReturnType<MemoryRemoteStore['get']> {
      this.gets.push(key);
      return super.get(key);
    }
  }

  it('refuses a manifest whose listed size is over the limit without downloading it', async () => {
    const store = new CountingStore();
    await plantSnapshot(store, S1, paddedManifest(oneFileManifest(S1), HUGE_BYTES));
    expectRefusedAsTooLarge(await rejection(planRemoteSnapshot(store, S1)));
    expect(store.gets).toEqual([]);
  });

  it('refuses a manifest far larger than its snapshot\'s listed files can need, even under the absolute limit', async () => {
    const store = new CountingStore();
    await plantSnapshot(store, S1, paddedManifest(oneFileManifest(S1), 1 * MIB));
    expectRefusedAsTooLarge(await rejection(planRemoteSnapshot(store, S1)));
  });

  it('stops reading a manifest whose body is larger than the listing said', async () => {
    const body = countingBody(HUGE_BYTES / (64 * 1024), 64 * 1024);
    class LyingStore extends MemoryRemoteStore {
      override async *listObjects(keyPrefix: string): AsyncIterable<RemoteObject[]> {
        for await (const page of super.listObjects(keyPrefix)) yield page.map((o) => (o.key === manifestKey(S1) ? { ...o, size: 500 } : o));
      }
      override async get(key: string): Promise<Readable> {
        return key === manifestKey(S1) ? body.stream : super.get(key);
      }
    }
    const store = new LyingStore();
    await plantSnapshot(store, S1);
    expectRefusedAsTooLarge(await rejection(planRemoteSnapshot(store, S1)));
    expect(body.produced()).toBeLessThan(HUGE_BYTES / (64 * 1024));
    expect(body.stream.destroyed).toBe(true);
  });

  it('still reads the manifest memsync wrote', async () => {
    const store = new CountingStore();
    await plantSnapshot(store, S1);
    expect((await planRemoteSnapshot(store, S1)).manifest).toEqual(oneFileManifest(S1));
  });
});

describe('copy sources with an oversized manifest in the bucket', () => {
  async function cacheOver(store: MemoryRemoteStore, logs: LogLine[]): Promise<CopySourceCache> {
    const index: RemoteIndex = await listRemoteIndex(store, Date.now);
    return new CopySourceCache({ store, remoteIndex: () => index, snapshots: 10, log: recordingLogger(logs) });
  }

  it('drops only that snapshot as a copy source, says so once, and does not download it again', async () => {
    class CountingStore extends MemoryRemoteStore {
      readonly gets: string[] = [];
      override get(key: string): ReturnType<MemoryRemoteStore['get']> {
        this.gets.push(key);
        return super.get(key);
      }
    }
    const store = new CountingStore();
    await plantSnapshot(store, S1);
    await plantSnapshot(store, S2, paddedManifest(oneFileManifest(S2), 1 * MIB));
    const logs: LogLine[] = [];
    const cache = await cacheOver(store, logs);

    const known = await cache.known('auto_20250109_000000', new AbortController().signal);
    expect(known.map((k) => k.name)).toEqual([S1]);
    expect(logs.filter((l) => l.level === 'warn' && l.fields.snapshot === S2)).toHaveLength(1);

    await cache.known('auto_20250109_000000', new AbortController().signal);
    expect(store.gets.filter((key) => key === manifestKey(S2))).toHaveLength(1);
  });

  it('reads at most two manifests at a time', async () => {
    let inFlight = 0;
    let mostInFlight = 0;
    class SlowStore extends MemoryRemoteStore {
      override async get(key: string): Promise<Readable> {
        inFlight += 1;
        mostInFlight = Math.max(mostInFlight, inFlight);
        for (let i = 0; i < 5; i += 1) await nextTurn();
        inFlight -= 1;
        return super.get(key);
      }
    }
    const store = new SlowStore();
    const names = Array.from({ length: 6 }, (_, i) => `auto_2025010${i + 1}_000000`);
    for (const name of names) await plantSnapshot(store, name);
    const cache = await cacheOver(store, []);
    const known = await cache.known('auto_20250109_000000', new AbortController().signal);
    expect(known).toHaveLength(6);
    expect(mostInFlight).toBeLessThanOrEqual(2);
  });
});

describe('upload over a name whose remote manifest is oversized', () => {
  const caches: PersistedJson<HashCacheDocument>[] = [];
  afterEach(async () => {
    for (const cache of caches.splice(0)) await cache.flush();
  });

  it('fails that snapshot as integrity and uploads the next one', async () => {
    const root = await tempDir('hostile-manifest');
    const backupDir = path.join(root, 'backups');
    for (const name of [S1, S3]) {
      await mkdir(path.join(backupDir, name), { recursive: true });
      await writeFile(path.join(backupDir, name, 'memory.json'), CONTENT);
    }
    const hashCache = new PersistedJson<HashCacheDocument>(path.join(root, 'hash-cache.json'), hashCacheSchema, emptyHashCache, recordingLogger([]));
    caches.push(hashCache);
    const store = new MemoryRemoteStore();
    // The same content as the local snapshot, only padded: before the bound, this counted as already remote.
    await plantSnapshot(store, S1, paddedManifest(oneFileManifest(S1), HUGE_BYTES));
    const uploader = new SnapshotUploader({
      store,
      hashCache,
      fileQueue: new PQueue({ concurrency: 2 }),
      agentId: 'agent-under-test',
      backupDir,
      multipartThresholdBytes: 5 * MIB,
      retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
      log: recordingLogger([]),
      now: () => Date.now(),
      serverSideCopy: undefined,
    });
    const signal = new AbortController().signal;

    expectRefusedAsTooLarge(await rejection(uploader.upload(await statSnapshot(backupDir, S1), signal, () => undefined)));
    expect((await uploader.upload(await statSnapshot(backupDir, S3), signal, () => undefined)).outcome).toBe('uploaded');
  });
});
