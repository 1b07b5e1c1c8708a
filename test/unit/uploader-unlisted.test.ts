import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { listRemoteIndex, type RemoteIndex } from '../../src/remote/remote-index.js';
import type { BodySource, CopyOptions, PutOptions, RemoteHead, RemoteObject } from '../../src/remote/store.js';
import { statSnapshot } from '../../src/snapshot/scan.js';
import type { HashCacheDocument } from '../../src/state/hash-cache.js';
import type { PersistedJson } from '../../src/state/persisted.js';
import { METADATA_AGENT } from '../../src/upload/plan.js';
import type { SnapshotOutcome, UploaderOptions } from '../../src/upload/snapshot-uploader.js';
import { HARNESS_AGENT_ID, uploaderHarness, writeSnapshotFiles, type UploaderHarness } from '../helpers/uploader-harness.js';

// A new snapshot of small files, on a server that refuses a conditional PUT over an existing key,
// needs no listing of its own name before its upload: every write is create-only, so an object
// that is there after all is still found (a 412), and the upload then starts over with a listing.

const NAME = 'auto_20250101_000000';
const OTHER = 'auto_20241231_000000';

const caches: PersistedJson<HashCacheDocument>[] = [];
afterEach(async () => {
  for (const cache of caches.splice(0)) await cache.flush();
});

function smallFiles(): Record<string, Buffer> {
  return { 'metadata.json': randomBytes(3000), 'config.json': randomBytes(200), 'index.faiss': randomBytes(40_000) };
}

/** A memory store that records each request a server would see. */
class RecordingStore extends MemoryRemoteStore {
  readonly requests: string[] = [];
  override listObjects(keyPrefix: string): AsyncIterable<RemoteObject[]> {
    this.requests.push(`LIST ${keyPrefix}`);
    return super.listObjects(keyPrefix);
  }
  override async head(key: string): Promise<RemoteHead | undefined> {
    this.requests.push(`HEAD ${key}`);
    return super.head(key);
  }
  override async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
    this.requests.push(`PUT ${key}`);
    return super.put(key, body, options);
  }
  override async copy(sourceKey: string, targetKey: string, options: CopyOptions): Promise<void> {
    this.requests.push(`COPY ${targetKey}`);
    return super.copy(sourceKey, targetKey, options);
  }
}

interface Setup extends UploaderHarness {
  store: RecordingStore;
  /** As the agent does: the bucket's listing, which the next upload sees. */
  relist(): Promise<void>;
}

async function setup(extra: Partial<UploaderOptions> = {}, store = new RecordingStore()): Promise<Setup> {
  let index: RemoteIndex = { snapshots: new Map(), ignoredKeys: 0, listedAtMs: 0 };
  const harness = await uploaderHarness('uploader-unlisted', caches, store, { conditionalWritesHonoured: () => true, remoteIndex: () => index, ...extra });
  return {
    ...harness,
    store,
    relist: async () => {
      index = await listRemoteIndex(store, Date.now);
      store.requests.length = 0;
    },
  };
}

async function upload(s: Setup, name: string, files: Record<string, Buffer>): Promise<SnapshotOutcome> {
  await writeSnapshotFiles(s.backupDir, name, files);
  return s.uploader.upload(await statSnapshot(s.backupDir, name), new AbortController().signal, () => undefined);
}

function put(store: MemoryRemoteStore, key: string, bytes: Buffer, agent: string): Promise<void> {
  return store.put(key, () => bytes, { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: { [METADATA_AGENT]: agent }, signal: undefined, onProgress: undefined });
}

function lists(store: RecordingStore): string[] {
  return store.requests.filter((request) => request.startsWith('LIST '));
}

describe('a new small snapshot on a server that honours If-None-Match', () => {
  it('is uploaded without a listing of its name before the first write', async () => {
    const s = await setup();
    await s.relist();
    const files = smallFiles();

    const outcome = await upload(s, NAME, files);

    expect(outcome.outcome).toBe('uploaded');
    // The one listing left is the check before the manifest.
    expect(lists(s.store)).toEqual([`LIST ${NAME}/`]);
    expect(s.store.requests.filter((r) => r.startsWith('PUT '))).toHaveLength(4);
    for (const [file, bytes] of Object.entries(files)) expect(s.store.objects.get(`${NAME}/${file}`)?.bytes.equals(bytes)).toBe(true);
  });

  it('is listed first when the bucket listing has not been read yet', async () => {
    const s = await setup();

    await upload(s, NAME, smallFiles());

    expect(lists(s.store)).toEqual([`LIST ${NAME}/`, `LIST ${NAME}/`]);
  });

  it('is listed first when the server does not refuse a conditional PUT over an existing key', async () => {
    const s = await setup({ conditionalWritesHonoured: () => false });
    await s.relist();

    await upload(s, NAME, smallFiles());

    expect(lists(s.store)[0]).toBe(`LIST ${NAME}/`);
    expect(s.store.requests[0]).toBe(`LIST ${NAME}/`);
  });

  it('starts over with a listing when its own object from an earlier attempt is there after all, and replaces it', async () => {
    const s = await setup();
    await s.relist(); // stale: the object below came after it
    await put(s.store, `${NAME}/config.json`, Buffer.from('an earlier version'), HARNESS_AGENT_ID);
    const files = smallFiles();

    const outcome = await upload(s, NAME, files);

    expect(outcome.outcome).toBe('uploaded');
    expect(s.store.objects.get(`${NAME}/config.json`)?.bytes.equals(files['config.json'] as Buffer)).toBe(true);
    expect(lists(s.store)).toEqual([`LIST ${NAME}/`, `LIST ${NAME}/`]);
  });

  it("reports a conflict, as after a listing, when another writer's object is there after all", async () => {
    const s = await setup();
    await s.relist();
    const foreign = Buffer.from('someone else wrote this');
    await put(s.store, `${NAME}/config.json`, foreign, 'another-agent');

    const outcome = await upload(s, NAME, smallFiles());

    expect(outcome.outcome).toBe('conflict');
    expect(s.store.objects.get(`${NAME}/config.json`)?.bytes.equals(foreign)).toBe(true);
    expect(s.store.objects.has(`${NAME}/.memsync-manifest.json`)).toBe(false);
  });

  it('is listed before anything is written when one of its files would be copied server-side (a copy is not create-only)', async () => {
    let index: RemoteIndex = { snapshots: new Map(), ignoredKeys: 0, listedAtMs: 0 };
    const s = await setup({ serverSideCopy: { remoteIndex: () => index } });
    const shared = randomBytes(5000);
    await upload(s, OTHER, { ...smallFiles(), 'config.json': shared });
    index = await listRemoteIndex(s.store, Date.now);
    s.store.requests.length = 0;

    const outcome = await upload(s, NAME, { ...smallFiles(), 'config.json': shared });

    expect(outcome).toMatchObject({ outcome: 'uploaded', filesCopied: 1 });
    const firstWrite = s.store.requests.findIndex((r) => r.startsWith('PUT ') || r.startsWith('COPY '));
    expect(s.store.requests.slice(0, firstWrite)).toContain(`LIST ${NAME}/`);
  });
});
