// One SnapshotUploader over a memory store and a temporary backup directory, as the uploader's
// unit tests build it, with the helpers they share.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import PQueue from 'p-queue';
import { silentLogger } from '../../src/log.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { emptyHashCache, hashCacheSchema, type HashCacheDocument } from '../../src/state/hash-cache.js';
import { PersistedJson } from '../../src/state/persisted.js';
import { SnapshotUploader, type UploaderOptions } from '../../src/upload/snapshot-uploader.js';
import { tempDir } from './tmp.js';

export const HARNESS_AGENT_ID = 'agent-under-test';
const MIB = 1024 * 1024;

export interface UploaderHarness {
  root: string;
  backupDir: string;
  store: MemoryRemoteStore;
  hashCache: PersistedJson<HashCacheDocument>;
  fileQueue: PQueue;
  uploader: SnapshotUploader;
}

/**
 * Builds the harness; its hash cache is pushed onto `caches`, whose pending saves a test file
 * flushes after each test (before tempDir() removes the state directory).
 */
export async function uploaderHarness(
  label: string,
  caches: PersistedJson<HashCacheDocument>[],
  store: MemoryRemoteStore = new MemoryRemoteStore(),
  extra: Partial<UploaderOptions> = {},
): Promise<UploaderHarness> {
  const root = await tempDir(label);
  const backupDir = path.join(root, 'backups');
  const stateDir = path.join(root, 'state');
  await mkdir(backupDir);
  await mkdir(stateDir);
  const hashCache = new PersistedJson<HashCacheDocument>(path.join(stateDir, 'hash-cache.json'), hashCacheSchema, emptyHashCache, silentLogger);
  caches.push(hashCache);
  const fileQueue = new PQueue({ concurrency: 2 });
  const uploader = new SnapshotUploader({
    store,
    hashCache,
    fileQueue,
    agentId: HARNESS_AGENT_ID,
    backupDir,
    multipartThresholdBytes: 5 * MIB,
    retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 },
    log: silentLogger,
    now: () => Date.now(),
    ...extra,
  });
  return { root, backupDir, store, hashCache, fileQueue, uploader };
}

/** Writes the files of snapshot `name`, creating subdirectories for paths with `/`. */
export async function writeSnapshotFiles(backupDir: string, name: string, files: Record<string, Buffer>): Promise<void> {
  await mkdir(path.join(backupDir, name), { recursive: true });
  for (const [relative, bytes] of Object.entries(files)) {
    const absolute = path.join(backupDir, name, ...relative.split('/'));
    await mkdir(path.dirname(absolute), { recursive: true });
    await writeFile(absolute, bytes);
  }
}

/** What `promise` rejects with; throws when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}
