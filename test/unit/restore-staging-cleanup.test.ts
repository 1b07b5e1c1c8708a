// The API answers before start-up removes staging leftovers, so a restore may already be filling
// its staging directory when the cleanup runs: the cleanup must leave it alone, and a restore must
// never put a snapshot in place with a verified file missing.
import { createHash } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isAppError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { Restorer, STAGING_PREFIX } from '../../src/restore/restorer.js';
import { manifestKey, serializeManifest } from '../../src/snapshot/manifest.js';
import { tempDir } from '../helpers/tmp.js';

const NAME = 'auto_20261201_020000';
const FILES: Record<string, Buffer> = { 'config.json': Buffer.from('{"dim":768}'), 'index.faiss': Buffer.alloc(4096, 7), 'metadata.json': Buffer.from('[]') };
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** Holds the GET of one key until released, and says when it is being held. */
class GatedStore extends MemoryRemoteStore {
  private release: (() => void) | undefined;
  readonly held: Promise<void>;
  private holding!: () => void;

  constructor(private readonly gatedKey: string) {
    super();
    this.held = new Promise((resolve) => (this.holding = resolve));
  }

  open(): void {
    this.release?.();
  }

  override async get(key: string): Promise<Readable> {
    if (key === this.gatedKey) {
      await new Promise<void>((resolve) => {
        this.release = resolve;
        this.holding();
      });
    }
    return super.get(key);
  }
}

async function plant(store: MemoryRemoteStore): Promise<void> {
  const put = (key: string, bytes: Buffer) => store.put(key, () => bytes, { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
  for (const [relative, bytes] of Object.entries(FILES)) await put(`${NAME}/${relative}`, bytes);
  const entries = Object.entries(FILES).map(([relative, bytes]) => ({ path: relative, size: bytes.length, sha256: sha256(bytes) }));
  await put(manifestKey(NAME), serializeManifest({ format: 'memsync-manifest', version: 1, snapshot: NAME, kind: 'directory', files: entries }));
}

async function setUp(): Promise<{ store: GatedStore; restorer: Restorer; backupDir: string }> {
  // The second file in manifest order is held, so the first is already in the staging directory.
  const store = new GatedStore(`${NAME}/index.faiss`);
  await plant(store);
  const backupDir = path.join(await tempDir('restore-staging'), 'backups');
  const restorer = new Restorer({ store, backupDir, multipartThresholdBytes: 5 * 1024 * 1024, retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 }, log: silentLogger, now: () => Date.now() });
  return { store, restorer, backupDir };
}

describe('staging directories of restores in progress', () => {
  it('are not removed by the start-up cleanup of leftovers: the restore completes with every file', async () => {
    const { store, restorer, backupDir } = await setUp();
    const restoring = restorer.restore(NAME);
    await store.held;
    expect(await restorer.cleanStaging()).toBe(0);
    store.open();
    expect(await restoring).toMatchObject({ outcome: 'restored', files: 3 });
    for (const [relative, bytes] of Object.entries(FILES)) expect((await readFile(path.join(backupDir, NAME, relative))).equals(bytes), relative).toBe(true);
  });

  it('a verified file that vanished from staging fails the restore: nothing is put in place', async () => {
    const { store, restorer, backupDir } = await setUp();
    const restoring = restorer.restore(NAME).catch((error: unknown) => error);
    await store.held;
    const staging = (await readdir(backupDir)).find((entry) => entry.startsWith(STAGING_PREFIX));
    expect(staging).toBeDefined();
    await rm(path.join(backupDir, staging ?? '', 'config.json'));
    store.open();
    const error = await restoring;
    expect(isAppError(error, 'local_io')).toBe(true);
    expect((error as Error).message).toContain('config.json is gone in the staging directory before the rename');
    expect((await readdir(backupDir)).filter((entry) => !entry.startsWith('.'))).toEqual([]);
  });
});
