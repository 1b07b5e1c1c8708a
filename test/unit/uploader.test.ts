import { createHash, randomBytes } from 'node:crypto';
import { appendFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError, isAppError } from '../../src/errors.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import type { BodySource, PutOptions, RemoteHead, RemoteObject } from '../../src/remote/store.js';
import { buildManifest, manifestKey, parseManifest, serializeManifest, type Manifest } from '../../src/snapshot/manifest.js';
import { sameFingerprint, statSnapshot, statSnapshotIfPresent } from '../../src/snapshot/scan.js';
import { lookupDigest, type HashCacheDocument } from '../../src/state/hash-cache.js';
import { PersistedJson } from '../../src/state/persisted.js';
import { METADATA_AGENT, METADATA_SHA256 } from '../../src/upload/plan.js';
import { type SnapshotOutcome, type UploaderOptions, type UploadProgress } from '../../src/upload/snapshot-uploader.js';
import { rejection, uploaderHarness, writeSnapshotFiles, type UploaderHarness } from '../helpers/uploader-harness.js';

const MIB = 1024 * 1024;
const AGENT = 'agent-under-test';
const NAME = 'auto_20250101_000000';
const MANIFEST_KEY = `${NAME}/.memsync-manifest.json`;

const sha256Hex = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const md5Hex = (bytes: Buffer): string => createHash('md5').update(bytes).digest('hex');

/** The memory-service layout: metadata.json, config.json, index.faiss. */
function defaultFiles(): Record<string, Buffer> {
  return {
    'metadata.json': Buffer.from(JSON.stringify({ created: '2025-01-01T00:00:00Z', entries: 3 })),
    'config.json': Buffer.from(JSON.stringify({ dim: 384, metric: 'cosine' })),
    'index.faiss': randomBytes(300_000),
  };
}

const caches: PersistedJson<HashCacheDocument>[] = [];
afterEach(async () => {
  // Pending coalesced saves must land before tempDir() removes the state directory.
  for (const cache of caches.splice(0)) await cache.flush();
});

type Setup = UploaderHarness;

function setup(store: MemoryRemoteStore = new MemoryRemoteStore(), extra: Partial<UploaderOptions> = {}): Promise<Setup> {
  return uploaderHarness('uploader', caches, store, extra);
}

const writeSnapshot = writeSnapshotFiles;

async function put(store: MemoryRemoteStore, key: string, bytes: Buffer, metadata: Record<string, string> = {}): Promise<void> {
  await store.put(key, () => bytes, { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata, signal: undefined, onProgress: undefined });
}

function upload(s: Setup, name = NAME, signal: AbortSignal = new AbortController().signal, onProgress: (progress: UploadProgress) => void = () => undefined): Promise<SnapshotOutcome> {
  return statSnapshot(s.backupDir, name).then((stat) => s.uploader.upload(stat, signal, onProgress));
}

/** A memory store that logs each LIST, HEAD and PUT into `requests`, as the requests a server would see. */
function countingStore(requests: string[]): typeof MemoryRemoteStore {
  return class CountingStore extends MemoryRemoteStore {
    override listObjects(keyPrefix: string): AsyncIterable<RemoteObject[]> {
      requests.push(`LIST ${keyPrefix}`);
      return super.listObjects(keyPrefix);
    }
    override async head(key: string): Promise<RemoteHead | undefined> {
      requests.push(`HEAD ${key}`);
      return super.head(key);
    }
    override async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
      requests.push(`PUT ${key}`);
      return super.put(key, body, options);
    }
  };
}

function keysUnder(store: MemoryRemoteStore, name: string): string[] {
  return [...store.objects.keys()].filter((key) => key.startsWith(`${name}/`)).sort();
}

function storedBytes(store: MemoryRemoteStore, key: string): Buffer | undefined {
  return store.objects.get(key)?.bytes;
}

describe('SnapshotUploader', () => {
  it('uploads every file under NAME/path with identical bytes and writes the manifest last', async () => {
    const s = await setup();
    const files: Record<string, Buffer> = { ...defaultFiles(), 'sub/deep/extra.bin': randomBytes(1000), 'large.bin': randomBytes(9 * MIB) };
    await writeSnapshot(s.backupDir, NAME, files);

    const outcome = await upload(s);

    expect(outcome.outcome).toBe('uploaded');
    if (outcome.outcome !== 'uploaded') return;
    const total = Object.values(files).reduce((sum, b) => sum + b.length, 0);
    expect(outcome).toMatchObject({ bytes: total, bytesSent: total, filesSent: 5 });
    expect(outcome.manifest).toEqual(
      buildManifest(
        NAME,
        'directory',
        Object.entries(files).map(([p, b]) => ({ path: p, size: b.length, sha256: sha256Hex(b) })),
      ),
    );

    for (const [relative, bytes] of Object.entries(files)) {
      const key = `${NAME}/${relative}`;
      expect(storedBytes(s.store, key)?.equals(bytes), key).toBe(true);
      // A large file is hashed while it is sent: its SHA-256 is in the manifest, not in its metadata.
      const metadata = relative === 'large.bin' ? { [METADATA_AGENT]: AGENT } : { [METADATA_AGENT]: AGENT, [METADATA_SHA256]: sha256Hex(bytes) };
      expect(s.store.objects.get(key)?.metadata, key).toEqual(metadata);
    }
    // The 9 MiB file went up in two 8 MiB parts (its ETag is a multipart ETag), the rest in one request.
    expect(s.store.objects.get(`${NAME}/large.bin`)?.etag).toMatch(/-2$/);
    expect(s.store.objects.get(`${NAME}/config.json`)?.etag).toBe(md5Hex(files['config.json'] ?? Buffer.alloc(0)));

    // The claim on the name (a large file is sent in parts), the five files, the manifest last.
    expect(s.store.putLog).toHaveLength(7);
    expect(s.store.putLog[0]).toBe(`${NAME}/.memsync-claim`);
    expect(s.store.putLog.at(-1)).toBe(MANIFEST_KEY);
    expect(new Set(s.store.putLog.slice(1, -1))).toEqual(new Set(Object.keys(files).map((p) => `${NAME}/${p}`)));
    const manifestBytes = storedBytes(s.store, MANIFEST_KEY);
    expect(manifestBytes?.equals(serializeManifest(outcome.manifest))).toBe(true);
    expect(parseManifest(manifestBytes ?? Buffer.alloc(0), NAME)).toEqual(outcome.manifest);
    // The five files and the manifest: the claim is removed once the manifest is written.
    expect(keysUnder(s.store, NAME)).toHaveLength(6);
  });

  it('sends a new snapshot with a listing before and after, one PUT per file and two requests for the manifest: no HEAD per file', async () => {
    const requests: string[] = [];
    const CountingStore = countingStore(requests);
    const s = await setup(new CountingStore());
    const files = { ...defaultFiles(), 'large.bin': randomBytes(9 * MIB) };
    await writeSnapshot(s.backupDir, NAME, files);

    expect((await upload(s)).outcome).toBe('uploaded');

    expect(requests[0]).toBe(`LIST ${NAME}/`);
    // Plus one PUT claiming the name before large.bin goes up in parts.
    expect(requests.filter((r) => r.startsWith('PUT ') && r !== `PUT ${MANIFEST_KEY}`)).toHaveLength(Object.keys(files).length + 1);
    // The only HEAD is the manifest's, just before it is written.
    expect(requests.filter((r) => r.startsWith('HEAD '))).toEqual([`HEAD ${MANIFEST_KEY}`]);
    // The second listing checks nobody replaced an object before the manifest makes the snapshot complete.
    expect(requests.slice(-3)).toEqual([`LIST ${NAME}/`, `HEAD ${MANIFEST_KEY}`, `PUT ${MANIFEST_KEY}`]);
    // Plus one listing after the claim: the name was not completed meanwhile.
    expect(requests).toHaveLength(Object.keys(files).length + 6);

    // Where the store is known to refuse a conditional PUT over an existing key, that PUT is the check: no HEAD at all.
    requests.length = 0;
    const honouring = await setup(new CountingStore(), { conditionalWritesHonoured: () => true });
    await writeSnapshot(honouring.backupDir, NAME, files);
    expect((await upload(honouring)).outcome).toBe('uploaded');
    expect(requests.filter((r) => r.startsWith('HEAD '))).toEqual([]);
    expect(requests).toHaveLength(Object.keys(files).length + 5);
  });

  it('reports each failed attempt it retries (an outage shows before the retries run out)', async () => {
    const store = new MemoryRemoteStore();
    let failures = 1;
    const head = store.head.bind(store);
    store.head = async (key) => {
      if (failures-- > 0) throw new AppError('remote_unavailable', `head ${key}: TimeoutError`);
      return head(key);
    };
    const retried: string[] = [];
    const s = await setup(store, { onRetry: (error) => retried.push(error.kind) });
    await writeSnapshot(s.backupDir, NAME, defaultFiles());
    expect((await upload(s)).outcome).toBe('uploaded');
    expect(retried).toEqual(['remote_unavailable']);
  });

  it('fills the hash cache so the next build reads no file again', async () => {
    const s = await setup();
    await writeSnapshot(s.backupDir, NAME, defaultFiles());
    const stat = await statSnapshot(s.backupDir, NAME);
    await s.uploader.upload(stat, new AbortController().signal, () => undefined);
    for (const file of stat.files) expect(lookupDigest(s.hashCache.current, NAME, file, 5 * MIB)?.size).toBe(file.size);
  });

  it('reports progress ending with every file and every byte done', async () => {
    const s = await setup();
    const files = defaultFiles();
    await writeSnapshot(s.backupDir, NAME, files);
    const reports: UploadProgress[] = [];
    await upload(s, NAME, undefined, (progress) => reports.push(progress));
    const last = reports.at(-1);
    expect(last).toMatchObject({ snapshot: NAME, files: 3, filesDone: 3, totalBytes: Object.values(files).reduce((sum, b) => sum + b.length, 0) });
  });

  // Regression: files sent at the same time once each overwrote the shared byte count.
  it('counts the bytes of files sent concurrently in progress.sentBytes', async () => {
    const s = await setup();
    const files = defaultFiles();
    await writeSnapshot(s.backupDir, NAME, files);
    const reports: UploadProgress[] = [];
    await upload(s, NAME, undefined, (progress) => reports.push(progress));
    const last = reports.at(-1);
    expect(last?.filesDone).toBe(3);
    expect(last?.sentBytes).toBe(last?.totalBytes);
  });

  it('finds a second upload already remote and writes nothing', async () => {
    const s = await setup();
    await writeSnapshot(s.backupDir, NAME, defaultFiles());
    expect((await upload(s)).outcome).toBe('uploaded');
    const puts = s.store.putLog.length;

    const again = await upload(s);
    expect(again.outcome).toBe('already-remote');
    expect(s.store.putLog).toHaveLength(puts);

    // Also from another agent with an empty hash cache: identity is the content, not local state.
    const other = await setup(s.store);
    await writeSnapshot(other.backupDir, NAME, await readBack(s.store));
    expect((await upload(other)).outcome).toBe('already-remote');
    expect(s.store.putLog).toHaveLength(puts);
  });

  it('reports a remote manifest with different content as a conflict and writes nothing', async () => {
    const s = await setup();
    const files = defaultFiles();
    await writeSnapshot(s.backupDir, NAME, files);
    const theirs: Manifest = buildManifest(
      NAME,
      'directory',
      Object.entries(files).map(([p, b]) => ({ path: p, size: b.length, sha256: p === 'config.json' ? sha256Hex(Buffer.from('other')) : sha256Hex(b) })),
    );
    const theirBytes = serializeManifest(theirs);
    await put(s.store, MANIFEST_KEY, theirBytes, { [METADATA_AGENT]: 'someone-else' });
    const puts = s.store.putLog.length;

    const outcome = await upload(s);

    expect(outcome.outcome).toBe('conflict');
    if (outcome.outcome !== 'conflict') return;
    expect(outcome.conflict.files.map((f) => f.path)).toEqual(['config.json']);
    expect(outcome.conflict.localDigest).not.toBe(outcome.conflict.remoteDigest);
    expect(s.store.putLog).toHaveLength(puts);
    expect(keysUnder(s.store, NAME)).toEqual([MANIFEST_KEY]);
    expect(storedBytes(s.store, MANIFEST_KEY)?.equals(theirBytes)).toBe(true);
  });

  it.each<[string, Record<string, string>, (local: Buffer) => Buffer]>([
    ['no metadata, same size', {}, (local) => Buffer.from(local.map((byte) => byte ^ 0xff))],
    ['another agent, same size', { [METADATA_AGENT]: 'another-agent' }, (local) => Buffer.from(local.map((byte) => byte ^ 0xff))],
    ['no metadata, other size', {}, (local) => Buffer.concat([local, Buffer.from('more')])],
    ['another agent, other size', { [METADATA_AGENT]: 'another-agent' }, () => Buffer.from('x')],
  ])('reports a remote file with different content (%s) and no manifest as a conflict, writing nothing', async (_label, metadata, remoteBytes) => {
    const s = await setup();
    const files = defaultFiles();
    await writeSnapshot(s.backupDir, NAME, files);
    const theirs = remoteBytes(files['config.json'] ?? Buffer.alloc(0));
    await put(s.store, `${NAME}/config.json`, theirs, metadata);
    const puts = s.store.putLog.length;

    const outcome = await upload(s);

    expect(outcome.outcome).toBe('conflict');
    if (outcome.outcome !== 'conflict') return;
    expect(outcome.conflict.files.map((f) => f.path)).toEqual(['config.json']);
    expect(s.store.putLog).toHaveLength(puts);
    expect(keysUnder(s.store, NAME)).toEqual([`${NAME}/config.json`]);
    expect(storedBytes(s.store, `${NAME}/config.json`)?.equals(theirs)).toBe(true);
  });

  it.each([
    ['same size', (local: Buffer) => Buffer.from(local.map((byte) => byte ^ 0xff))],
    ['other size', () => Buffer.from('partial')],
  ])('replaces a leftover object this agent wrote (%s) and completes the upload', async (_label, remoteBytes) => {
    const s = await setup();
    const files = defaultFiles();
    await writeSnapshot(s.backupDir, NAME, files);
    const local = files['index.faiss'] ?? Buffer.alloc(0);
    await put(s.store, `${NAME}/index.faiss`, remoteBytes(local), { [METADATA_AGENT]: AGENT });
    const puts = s.store.putLog.length;

    const outcome = await upload(s);

    expect(outcome.outcome).toBe('uploaded');
    expect(storedBytes(s.store, `${NAME}/index.faiss`)?.equals(local)).toBe(true);
    const written = s.store.putLog.slice(puts);
    expect(written).toContain(`${NAME}/index.faiss`);
    expect(written.at(-1)).toBe(MANIFEST_KEY);
  });

  it('keeps an identical object someone else wrote instead of sending it again', async () => {
    const s = await setup();
    const files = defaultFiles();
    await writeSnapshot(s.backupDir, NAME, files);
    await put(s.store, `${NAME}/index.faiss`, files['index.faiss'] ?? Buffer.alloc(0), { [METADATA_AGENT]: 'another-agent' });
    const puts = s.store.putLog.length;

    const outcome = await upload(s);

    expect(outcome).toMatchObject({ outcome: 'uploaded', filesSent: 2 });
    expect(s.store.putLog.slice(puts)).not.toContain(`${NAME}/index.faiss`);
    expect(s.store.objects.get(`${NAME}/index.faiss`)?.metadata[METADATA_AGENT]).toBe('another-agent');
    expect(s.store.putLog.at(-1)).toBe(MANIFEST_KEY);
  });

  it('rejects with integrity and never writes the manifest when the store keeps other bytes', async () => {
    const corrupted = `${NAME}/index.faiss`;
    const store = new MemoryRemoteStore({
      transformStoredBytes: (key, bytes) => (key === corrupted ? Buffer.from(bytes.map((byte, i) => (i === 0 ? byte ^ 1 : byte))) : bytes),
    });
    const s = await setup(store);
    await writeSnapshot(s.backupDir, NAME, defaultFiles());

    const error = await rejection(upload(s));
    await s.fileQueue.onIdle();

    expect(isAppError(error, 'integrity')).toBe(true);
    // Retried once (attempts: 2), both attempts stored, verified, and removed.
    expect(store.putLog.filter((key) => key === corrupted)).toHaveLength(2);
    expect(store.objects.has(corrupted)).toBe(false);
    expect(store.putLog).not.toContain(MANIFEST_KEY);
    expect(store.objects.has(MANIFEST_KEY)).toBe(false);
  });

  it('catches a store that keeps other bytes of a large file hashed while it was sent', async () => {
    const corrupted = `${NAME}/large.bin`;
    const store = new MemoryRemoteStore({
      transformStoredBytes: (key, bytes) => (key === corrupted ? Buffer.from(bytes.map((byte, i) => (i === 5 * MIB ? byte ^ 1 : byte))) : bytes),
    });
    const s = await setup(store);
    await writeSnapshot(s.backupDir, NAME, { ...defaultFiles(), 'large.bin': randomBytes(9 * MIB) });

    const error = await rejection(upload(s));
    await s.fileQueue.onIdle();

    expect(isAppError(error, 'integrity')).toBe(true);
    expect(store.putLog.filter((key) => key === corrupted)).toHaveLength(2);
    expect(store.objects.has(corrupted)).toBe(false);
    expect(store.objects.has(MANIFEST_KEY)).toBe(false);
  });

  it('refuses to write the manifest when another writer replaced an object during the upload, and deletes nothing', async () => {
    const replacedKey = `${NAME}/config.json`;
    let listings = 0;
    /** The second listing (just before the manifest) finds config.json replaced, as a racing multipart completion would leave it. */
    class RacingStore extends MemoryRemoteStore {
      override listObjects(keyPrefix: string): AsyncIterable<RemoteObject[]> {
        listings += 1;
        if (listings === 2) {
          const other = Buffer.from('{"written":"by another agent"}');
          this.objects.set(replacedKey, { bytes: other, etag: md5Hex(other), metadata: { [METADATA_AGENT]: 'another-agent' }, lastModifiedMs: Date.now() });
        }
        return super.listObjects(keyPrefix);
      }
    }
    const store = new RacingStore();
    const s = await setup(store);
    await writeSnapshot(s.backupDir, NAME, defaultFiles());

    const outcome = await upload(s);

    expect(outcome.outcome).toBe('conflict');
    if (outcome.outcome !== 'conflict') return;
    expect(outcome.conflict.files.map((f) => f.path)).toEqual(['config.json']);
    expect(store.objects.has(MANIFEST_KEY)).toBe(false);
    expect(store.objects.get(replacedKey)?.metadata[METADATA_AGENT]).toBe('another-agent');
  });

  it('sends nothing while another agent holds the claim on the name of a snapshot with large files', async () => {
    const store = new MemoryRemoteStore();
    const claim = Buffer.from('{"agent":"another-agent"}');
    store.objects.set(`${NAME}/.memsync-claim`, { bytes: claim, etag: md5Hex(claim), metadata: { [METADATA_AGENT]: 'another-agent' }, lastModifiedMs: Date.now() });
    const s = await setup(store);
    await writeSnapshot(s.backupDir, NAME, { ...defaultFiles(), 'large.bin': randomBytes(9 * MIB) });

    const error = await rejection(upload(s));

    expect(isAppError(error, 'conflict')).toBe(true);
    expect(String((error as Error).message)).toMatch(/being uploaded by another memsync \(agent another-agent\)/);
    expect(store.putLog).toEqual([]);
  });

  it('uploads a single-file snapshot to NAME/NAME with a file manifest', async () => {
    const s = await setup();
    const name = 'auto_20250101_000000.json';
    const bytes = Buffer.from(JSON.stringify({ memories: ['a', 'b'] }));
    await writeFile(path.join(s.backupDir, name), bytes);

    const outcome = await upload(s, name);

    expect(outcome.outcome).toBe('uploaded');
    expect(outcome.manifest).toEqual({ format: 'memsync-manifest', version: 1, snapshot: name, kind: 'file', files: [{ path: name, size: bytes.length, sha256: sha256Hex(bytes) }] });
    expect(s.store.putLog).toEqual([`${name}/${name}`, manifestKey(name)]);
    expect(storedBytes(s.store, `${name}/${name}`)?.equals(bytes)).toBe(true);
    expect(parseManifest(storedBytes(s.store, manifestKey(name)) ?? Buffer.alloc(0), name).kind).toBe('file');
  });

  it.each<[string, (file: string) => Promise<void>]>([
    ['appended to', (file) => appendFile(file, 'more')],
    ['rewritten with the same size', (file) => writeFile(file, Buffer.from('{"dim":999,"metric":"cosine"}'.padEnd(JSON.stringify({ dim: 384, metric: 'cosine' }).length)))],
    ['deleted', (file) => rm(file, { force: true })],
  ])('rejects with snapshot_gone when a file is %s after the stat', async (_label, change) => {
    const s = await setup();
    await writeSnapshot(s.backupDir, NAME, defaultFiles());
    const stat = await statSnapshot(s.backupDir, NAME);
    // File times come from a coarse clock: a change within the same tick leaves them as they
    // were, so the change is made again until the snapshot's stat shows it.
    await until(async () => {
      await change(path.join(s.backupDir, NAME, 'config.json'));
      const now = await statSnapshotIfPresent(s.backupDir, NAME);
      return now === undefined || !sameFingerprint(stat, now);
    });

    const error = await rejection(s.uploader.upload(stat, new AbortController().signal, () => undefined));

    expect(isAppError(error, 'snapshot_gone')).toBe(true);
    expect(s.store.putLog).toEqual([]);
  });

  it('removes the objects it sent when a file changes while the snapshot is being sent', async () => {
    class ChangingStore extends MemoryRemoteStore {
      constructor(private readonly onStored: (key: string) => Promise<void>) {
        super();
      }
      override async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
        await super.put(key, body, options);
        await this.onStored(key);
      }
    }
    let backupDir = '';
    let changed = false;
    const store = new ChangingStore(async (key) => {
      if (changed || key !== `${NAME}/config.json`) return;
      changed = true;
      // A change of size: seen whatever the file times say.
      await appendFile(path.join(backupDir, NAME, 'config.json'), ' ');
    });
    const s = await setup(store);
    backupDir = s.backupDir;
    await writeSnapshot(s.backupDir, NAME, defaultFiles());

    const error = await rejection(upload(s));
    await s.fileQueue.onIdle();

    expect(isAppError(error, 'snapshot_gone')).toBe(true);
    expect(store.putLog).toContain(`${NAME}/config.json`);
    expect(store.putLog).not.toContain(MANIFEST_KEY);
    expect(keysUnder(store, NAME)).toEqual([]);
  });

  it('removes the objects it created when aborted with snapshot_gone mid-way', async () => {
    /** Lets the first PUT through; the others wait until released. */
    class GatedStore extends MemoryRemoteStore {
      /** PUTs begun and not yet ended, let through or not. */
      inFlight = 0;
      private first = true;
      private release: () => void = () => undefined;
      readonly released = new Promise<void>((resolve) => {
        this.release = resolve;
      });
      override async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
        this.inFlight += 1;
        try {
          if (this.first) this.first = false;
          else {
            // A real store stops a waiting request when its signal aborts (multipart uploads get one).
            await Promise.race([
              this.released,
              new Promise<void>((_resolve, reject) => options.signal?.addEventListener('abort', () => reject(new AppError('cancelled', `upload ${key}: aborted`)), { once: true })),
            ]);
          }
          return await super.put(key, body, options);
        } finally {
          this.inFlight -= 1;
        }
      }
      open(): void {
        this.release();
      }
    }
    const store = new GatedStore();
    const s = await setup(store);
    await writeSnapshot(s.backupDir, NAME, defaultFiles());
    const controller = new AbortController();
    const reason = new AppError('snapshot_gone', `${NAME} was rewritten`);

    const error = await rejection(
      upload(s, NAME, controller.signal, (progress) => {
        if (progress.filesDone >= 1 && !controller.signal.aborted) {
          controller.abort(reason);
          // Single PUTs already at the store are let finish once the abort has been seen (an
          // aborted one could still be stored by the server after the cleanup); they are removed with the rest.
          setImmediate(() => store.open());
        }
      }),
    );
    await s.fileQueue.onIdle();
    // Every PUT has ended: whatever they stored is in the store now.
    await until(() => store.inFlight === 0);

    expect(error).toBe(reason);
    expect(store.putLog.length).toBeGreaterThanOrEqual(1);
    expect(keysUnder(store, NAME)).toEqual([]);
  });

  // Regression: the file queue used to reject a running task as soon as the signal aborted while
  // the task went on; a PUT already at the store then finished and was verified after the cleanup,
  // leaving an object under the snapshot's name with no manifest.
  it('leaves nothing under the name when aborted while the server is still answering a stored file', async () => {
    const slowKey = `${NAME}/index.faiss`;
    const controller = new AbortController();
    const reason = new AppError('snapshot_gone', `${NAME} was rewritten`);
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    /** The answer to one file's PUT (stored already) is slow; the snapshot is rewritten meanwhile. */
    let slowAnswered = false;
    class SlowHeadStore extends MemoryRemoteStore {
      override async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
        await super.put(key, body, options);
        if (key === slowKey) {
          controller.abort(reason);
          await released;
          slowAnswered = true;
        }
      }
    }
    const store = new SlowHeadStore();
    const s = await setup(store);
    await writeSnapshot(s.backupDir, NAME, defaultFiles());

    // The slow answer comes once everything else has settled (the abort seen, the other files
    // done); the upload must wait for it before cleaning up, or the object it stored stays.
    void until(() => controller.signal.aborted && s.fileQueue.size === 0 && s.fileQueue.pending <= 1).then(release);
    const error = await rejection(upload(s, NAME, controller.signal));
    await s.fileQueue.onIdle();
    await until(() => slowAnswered);

    expect(error).toBe(reason);
    expect(store.putLog).toContain(slowKey);
    expect(keysUnder(store, NAME)).toEqual([]);
  });
});

/** What the store holds for NAME, as the files of a local snapshot. */
async function readBack(store: MemoryRemoteStore): Promise<Record<string, Buffer>> {
  const files: Record<string, Buffer> = {};
  for (const key of keysUnder(store, NAME)) {
    if (key === MANIFEST_KEY) continue;
    const bytes = storedBytes(store, key);
    if (bytes !== undefined) files[key.slice(NAME.length + 1)] = bytes;
  }
  return files;
}

/** Waits, turn by turn of the event loop, until `condition` holds; fails after 10 s. */
async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await nextTurn();
  }
}
