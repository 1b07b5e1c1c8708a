import { randomBytes } from 'node:crypto';
import { link, open, rename, rm, symlink, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import type { BodySource, PutOptions } from '../../src/remote/store.js';
import { statSnapshot } from '../../src/snapshot/scan.js';
import type { HashCacheDocument } from '../../src/state/hash-cache.js';
import { PersistedJson } from '../../src/state/persisted.js';
import type { SnapshotOutcome, UploaderOptions } from '../../src/upload/snapshot-uploader.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { mkfifo, releaseFifos } from '../helpers/fifo.js';
import { uploaderHarness, writeSnapshotFiles, type UploaderHarness } from '../helpers/uploader-harness.js';

/**
 * Files of a settled snapshot swapped for something else after the scan (a FIFO, a symbolic
 * link, another file, a hard link to a file elsewhere): the upload refuses them promptly,
 * naming the file, and the uploader goes on with other snapshots.
 */

const NAME = 'auto_20250101_000000';
const OTHER = 'auto_20250102_000000';
/** A test that hangs shows as a failure instead of stalling the run. */
const BOUNDED_MS = 10_000;


function files(): Record<string, Buffer> {
  return {
    'config.json': Buffer.from(JSON.stringify({ dim: 384, metric: 'cosine' })),
    'index.faiss': randomBytes(200_000),
    'metadata.json': Buffer.from(JSON.stringify({ created: '2025-01-01T00:00:00Z', entries: 3 })),
  };
}

const caches: PersistedJson<HashCacheDocument>[] = [];
afterEach(async () => {
  releaseFifos();
  for (const cache of caches.splice(0)) await cache.flush();
});

type Setup = UploaderHarness;

function setup(extra: Partial<UploaderOptions> = {}, store: MemoryRemoteStore = new MemoryRemoteStore()): Promise<Setup> {
  return uploaderHarness('uploader-local-files', caches, store, extra);
}

const writeSnapshot = writeSnapshotFiles;

async function uploadNow(s: Setup, name: string): Promise<SnapshotOutcome> {
  const stat = await statSnapshot(s.backupDir, name);
  return s.uploader.upload(stat, new AbortController().signal, () => undefined);
}

async function rejection(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof AppError) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

/** A memory store that notes every PUT attempt, stored or not: what the uploader tried to send. */
class AttemptRecordingStore extends MemoryRemoteStore {
  readonly attempts: string[] = [];
  override async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
    this.attempts.push(key);
    return super.put(key, body, options);
  }
}

/**
 * Runs the upload of a scanned snapshot with the file queue paused, and `swap` once every file
 * of it waits for a slot: after hashing and the uploader's own re-check of the directory, the
 * last moment before a file is opened to be sent.
 */
async function uploadSwappingBeforeSend(s: Setup, name: string, swap: () => Promise<void>): Promise<SnapshotOutcome> {
  const stat = await statSnapshot(s.backupDir, name);
  s.fileQueue.pause();
  const queued = new Promise<void>((resolve) => s.fileQueue.once('add', () => resolve()));
  const upload = s.uploader.upload(stat, new AbortController().signal, () => undefined);
  // Seen by the test as a rejection below; held here so it is never unhandled meanwhile.
  upload.catch(() => undefined);
  await queued;
  await swap();
  s.fileQueue.start();
  return upload;
}

/** The snapshot failed naming the swapped file, nothing of it is complete, and another snapshot still uploads. */
async function expectRefusedAlone(s: Setup, error: AppError, swapped: string, why: RegExp): Promise<void> {
  expect(error.kind).toBe('local_io');
  expect(error.message).toContain(swapped);
  expect(error.message).toMatch(why);
  expect(s.store.objects.has(`${NAME}/.memsync-manifest.json`)).toBe(false);
  expect((await uploadNow(s, OTHER)).outcome).toBe('uploaded');
}

describe('a file swapped for a FIFO', () => {
  it(
    'after the scan: the snapshot fails at once naming the file, and another snapshot still uploads',
    async () => {
      const s = await setup();
      await writeSnapshot(s.backupDir, NAME, files());
      await writeSnapshot(s.backupDir, OTHER, files());
      const stat = await statSnapshot(s.backupDir, NAME);
      const swapped = path.join(s.backupDir, NAME, 'index.faiss');
      await rm(swapped);
      await mkfifo(swapped);

      const error = await rejection(s.uploader.upload(stat, new AbortController().signal, () => undefined));
      await expectRefusedAlone(s, error, swapped, /not a regular file/);
    },
    BOUNDED_MS,
  );

  it(
    'while waiting for an upload slot (after hashing): refused, not read',
    async () => {
      const s = await setup();
      await writeSnapshot(s.backupDir, NAME, files());
      await writeSnapshot(s.backupDir, OTHER, files());
      const swapped = path.join(s.backupDir, NAME, 'metadata.json');

      const error = await rejection(
        uploadSwappingBeforeSend(s, NAME, async () => {
          await rm(swapped);
          await mkfifo(swapped);
        }),
      );
      await expectRefusedAlone(s, error, swapped, /not a regular file/);
    },
    BOUNDED_MS,
  );
});

describe('a file swapped after hashing', () => {
  it(
    'for a symbolic link: refused, and the file it points to is never sent',
    async () => {
      const store = new AttemptRecordingStore();
      const s = await setup({}, store);
      const contents = files();
      await writeSnapshot(s.backupDir, NAME, contents);
      // Same bytes outside the backup directory: following the link would upload without a complaint.
      const outside = path.join(s.root, 'outside.json');
      await writeFile(outside, contents['config.json'] as Buffer);
      const swapped = path.join(s.backupDir, NAME, 'config.json');

      const error = await rejection(
        uploadSwappingBeforeSend(s, NAME, async () => {
          await rm(swapped);
          await symlink(outside, swapped);
        }),
      );
      expect(error.kind).toBe('local_io');
      expect(error.message).toContain(swapped);
      expect(error.message).toMatch(/symbolic link/);
      expect(store.attempts).not.toContain(`${NAME}/config.json`);
    },
    BOUNDED_MS,
  );

  it(
    'for another regular file: refused as changed (to be hashed again once it settles), nothing of it sent',
    async () => {
      const store = new AttemptRecordingStore();
      const s = await setup({}, store);
      const contents = files();
      await writeSnapshot(s.backupDir, NAME, contents);
      const swapped = path.join(s.backupDir, NAME, 'index.faiss');

      const error = await rejection(
        uploadSwappingBeforeSend(s, NAME, async () => {
          // Same size, other bytes, another inode: renamed over the hashed one.
          const replacement = path.join(s.root, 'replacement');
          await writeFile(replacement, randomBytes((contents['index.faiss'] as Buffer).length));
          await rename(replacement, swapped);
        }),
      );
      expect(error.kind).toBe('snapshot_gone');
      expect(error.message).toContain('index.faiss');
      expect(store.attempts).not.toContain(`${NAME}/index.faiss`);
    },
    BOUNDED_MS,
  );
});

describe('hard links', () => {
  async function snapshotWithHardLink(s: Setup): Promise<string> {
    await writeSnapshot(s.backupDir, NAME, files());
    const outside = path.join(s.root, 'secret.txt');
    await writeFile(outside, 'not part of any backup\n');
    const linked = path.join(s.backupDir, NAME, 'metadata.json');
    await rm(linked);
    await link(outside, linked);
    return linked;
  }

  it('refused with refuseHardlinks, naming the file; nothing of it sent', async () => {
    const store = new AttemptRecordingStore();
    const s = await setup({ refuseHardlinks: true }, store);
    const linked = await snapshotWithHardLink(s);

    const error = await rejection(uploadNow(s, NAME));
    expect(error.kind).toBe('local_io');
    expect(error.message).toContain(linked);
    expect(error.message).toMatch(/hard link/);
    expect(store.attempts).not.toContain(`${NAME}/metadata.json`);
  });

  it('uploaded like any file by default', async () => {
    const s = await setup();
    await snapshotWithHardLink(s);
    expect((await uploadNow(s, NAME)).outcome).toBe('uploaded');
  });
});

describe('a file operation that does not return', () => {
  /** The size of the libuv pool every asynchronous file operation of this process runs on. */
  const POOL_THREADS = Number(process.env.UV_THREADPOOL_SIZE ?? 4);

  it(
    'fails the snapshot after the deadline with a log line naming the file; uploads go on once the disk answers',
    async () => {
      const lines: LogLine[] = [];
      const s = await setup({ localFileDeadlineMs: 200, log: recordingLogger(lines) });
      await writeSnapshot(s.backupDir, NAME, files());
      await writeSnapshot(s.backupDir, OTHER, files());
      const stat = await statSnapshot(s.backupDir, NAME);

      // A disk that does not answer, as a hung network mount would: every pool thread blocked in
      // an open() that waits for a FIFO writer, so the uploader's own open() never starts.
      const blockers: Promise<FileHandle>[] = [];
      for (let i = 0; i < POOL_THREADS; i += 1) {
        const fifo = path.join(s.root, `blocker-${i}`);
        await mkfifo(fifo);
        blockers.push(open(fifo, 'r'));
      }
      let error: AppError;
      try {
        error = await rejection(s.uploader.upload(stat, new AbortController().signal, () => undefined));
      } finally {
        releaseFifos();
      }
      for (const handle of await Promise.all(blockers)) await handle.close();

      const first = path.join(s.backupDir, NAME, stat.files[0]?.path ?? '');
      expect(error.kind).toBe('local_io');
      expect(error.message).toContain(first);
      expect(error.message).toMatch(/did not finish within 200 ms/);
      expect(lines.some((line) => line.level === 'error' && line.fields.file === first)).toBe(true);

      expect((await uploadNow(s, OTHER)).outcome).toBe('uploaded');
    },
    BOUNDED_MS,
  );
});
