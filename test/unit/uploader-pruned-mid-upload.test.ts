import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import PQueue from 'p-queue';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import type { BodySource, PutOptions, RemoteHead } from '../../src/remote/store.js';
import { parseManifest } from '../../src/snapshot/manifest.js';
import { statSnapshot } from '../../src/snapshot/scan.js';
import type { HashCacheDocument } from '../../src/state/hash-cache.js';
import type { PersistedJson } from '../../src/state/persisted.js';
import { uploaderHarness, writeSnapshotFiles } from '../helpers/uploader-harness.js';

// The memory service prunes a snapshot whenever it falls out of its retention, also while memsync
// is uploading it. What the bucket holds afterwards must still mean what it says: a manifest only
// with every file it lists.

const NAME = 'auto_20250101_000000';
const MANIFEST_KEY = `${NAME}/.memsync-manifest.json`;

const caches: PersistedJson<HashCacheDocument>[] = [];
afterEach(async () => {
  for (const cache of caches.splice(0)) await cache.flush();
});

function smallFiles(): Record<string, Buffer> {
  return { 'metadata.json': randomBytes(3000), 'config.json': randomBytes(200), 'index.faiss': randomBytes(40_000) };
}

/** Keys the store holds under NAME that the stored manifest lists but the store does not have. */
function missingFromManifest(store: MemoryRemoteStore): string[] {
  const manifest = store.objects.get(MANIFEST_KEY);
  if (manifest === undefined) return [];
  return parseManifest(manifest.bytes, NAME)
    .files.map((file) => `${NAME}/${file.path}`)
    .filter((key) => !store.objects.has(key));
}

describe('a snapshot pruned while it is being uploaded', () => {
  it('is never left as a manifest without its files when the prune comes while the manifest is written', async () => {
    const controller = new AbortController();
    let backupDir = '';
    /**
     * The prune lands while the manifest's PUT is on its way: the folder goes, the job is cancelled,
     * and the server stores the manifest all the same (a request it received is not undone by the
     * client giving up on the answer).
     */
    class PruneDuringManifest extends MemoryRemoteStore {
      override async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
        if (key !== MANIFEST_KEY) return super.put(key, body, options);
        await rm(path.join(backupDir, NAME), { recursive: true, force: true });
        controller.abort(new AppError('snapshot_gone', `${NAME} was removed`));
        await super.put(key, body, { ...options, signal: undefined });
        if (options.signal?.aborted === true) throw new AppError('cancelled', `upload ${key}: aborted`);
      }
    }
    const store = new PruneDuringManifest();
    const s = await uploaderHarness('pruned-during-manifest', caches, store);
    backupDir = s.backupDir;
    await writeSnapshotFiles(s.backupDir, NAME, smallFiles());
    const stat = await statSnapshot(s.backupDir, NAME);

    const outcome = await s.uploader.upload(stat, controller.signal, () => undefined).catch((error: unknown) => error);
    await s.fileQueue.onIdle();

    expect(store.objects.has(MANIFEST_KEY)).toBe(true);
    expect(missingFromManifest(store)).toEqual([]);
    // The files were all sent and verified before the prune: the snapshot is complete remotely, and said so.
    expect(outcome).toMatchObject({ outcome: 'uploaded' });
  });

  it('removes the files it sent without asking the store about keys it never wrote', async () => {
    const controller = new AbortController();
    const heads: string[] = [];
    class HeadRecordingStore extends MemoryRemoteStore {
      override async head(key: string): Promise<RemoteHead | undefined> {
        heads.push(key);
        return super.head(key);
      }
    }
    const store = new HeadRecordingStore();
    const s = await uploaderHarness('pruned-after-first-file', caches, store);
    await writeSnapshotFiles(s.backupDir, NAME, smallFiles());
    const stat = await statSnapshot(s.backupDir, NAME);
    const removed = new AppError('snapshot_gone', `${NAME} was removed`);

    const error = await s.uploader
      .upload(stat, controller.signal, (progress) => {
        if (progress.filesDone >= 1) controller.abort(removed);
      })
      .catch((caught: unknown) => caught);
    await s.fileQueue.onIdle();

    expect(error).toBe(removed);
    expect(store.putLog.length).toBeGreaterThanOrEqual(1);
    expect([...store.objects.keys()].filter((key) => key.startsWith(`${NAME}/`))).toEqual([]);
    // No claim was taken (small files), no signatures written, and a file whose upload never began stored nothing.
    expect(heads).toEqual([]);
  });

  it('asks nothing about a file whose upload found it already gone locally', async () => {
    const heads: string[] = [];
    let backupDir = '';
    let pruned = false;
    /** The folder is pruned while the first file is on its way; nothing tells the upload so. */
    class PruneDuringFirstPut extends MemoryRemoteStore {
      override async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
        if (!pruned) {
          pruned = true;
          await rm(path.join(backupDir, NAME), { recursive: true, force: true });
        }
        return super.put(key, body, options);
      }
      override async head(key: string): Promise<RemoteHead | undefined> {
        heads.push(key);
        return super.head(key);
      }
    }
    const store = new PruneDuringFirstPut();
    // One file at a time: the others' uploads begin after the prune.
    const fileQueue = new PQueue({ concurrency: 1 });
    const s = await uploaderHarness('pruned-during-first-put', caches, store, { fileQueue });
    backupDir = s.backupDir;
    await writeSnapshotFiles(s.backupDir, NAME, smallFiles());
    const stat = await statSnapshot(s.backupDir, NAME);

    const error = await s.uploader.upload(stat, new AbortController().signal, () => undefined).catch((caught: unknown) => caught);
    await fileQueue.onIdle();

    expect(store.putLog).toHaveLength(1);
    expect(error).toMatchObject({ kind: 'snapshot_gone' });
    expect([...store.objects.keys()].filter((key) => key.startsWith(`${NAME}/`))).toEqual([]);
    expect(heads).toEqual([]);
  });
});
