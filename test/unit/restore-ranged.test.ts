import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isAppError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { RANGE_BYTES, RANGED_FROM_BYTES } from '../../src/restore/download-file.js';
import { Restorer } from '../../src/restore/restorer.js';
import { manifestKey, serializeManifest } from '../../src/snapshot/manifest.js';
import { tempDir } from '../helpers/tmp.js';

const NAME = 'auto_20261201_020000';
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

type RangeFault = 'flip-a-byte' | 'end-early';

/** Serves one range of every object wrongly, on every attempt: a bit flipped, or the body cut short. */
class FaultyRangeStore extends MemoryRemoteStore {
  rangeGets = 0;

  constructor(private readonly fault?: { at: number; kind: RangeFault }) {
    super();
  }

  override async getRange(key: string, start: number, endInclusive: number): Promise<Readable> {
    this.rangeGets += 1;
    const body = await super.getRange(key, start, endInclusive);
    if (this.fault === undefined || start !== this.fault.at) return body;
    const bytes = Buffer.concat(await body.toArray());
    if (this.fault.kind === 'flip-a-byte') bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0x10;
    return Readable.from([this.fault.kind === 'end-early' ? bytes.subarray(0, bytes.length - 1) : bytes]);
  }
}

async function plant(store: MemoryRemoteStore, files: Record<string, Buffer>, withManifest = true): Promise<void> {
  const put = (key: string, bytes: Buffer) => store.put(key, () => bytes, { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
  for (const [relative, bytes] of Object.entries(files)) await put(`${NAME}/${relative}`, bytes);
  if (!withManifest) return;
  const entries = Object.entries(files).map(([relative, bytes]) => ({ path: relative, size: bytes.length, sha256: sha256(bytes) }));
  await put(manifestKey(NAME), serializeManifest({ format: 'memsync-manifest', version: 1, snapshot: NAME, kind: 'directory', files: entries }));
}

async function restorerFor(store: MemoryRemoteStore): Promise<{ restorer: Restorer; backupDir: string }> {
  const backupDir = path.join(await tempDir('restore-ranged'), 'backups');
  const restorer = new Restorer({ store, backupDir, multipartThresholdBytes: 5 * 1024 * 1024, retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 }, log: silentLogger, now: () => Date.now() });
  return { restorer, backupDir };
}

describe('restoring large files as ranges written in place', () => {
  const index = randomBytes(RANGED_FROM_BYTES + RANGE_BYTES / 2 + 7);
  const files = { 'index.faiss': index, 'config.json': Buffer.from('{"dim":768}') };

  it('restores every byte, checked against the manifest, under the real name', async () => {
    const store = new FaultyRangeStore();
    await plant(store, files);
    const { restorer, backupDir } = await restorerFor(store);
    const outcome = await restorer.restore(NAME);
    expect(outcome).toMatchObject({ outcome: 'restored', verification: 'sha256', files: 2 });
    expect(store.rangeGets).toBe(Math.ceil(index.length / RANGE_BYTES));
    expect((await readFile(path.join(backupDir, NAME, 'index.faiss'))).equals(index)).toBe(true);
    expect(await readdir(backupDir)).toEqual([NAME]);
  });

  it.each<[string, RangeFault]>([
    ['a range with one byte changed', 'flip-a-byte'],
    ['a range that ends early', 'end-early'],
  ])('refuses %s before the rename: nothing appears under the real name, no staging is left', async (_label, kind) => {
    const store = new FaultyRangeStore({ at: RANGE_BYTES, kind });
    await plant(store, files);
    const { restorer, backupDir } = await restorerFor(store);
    const error = await restorer.restore(NAME).catch((e: unknown) => e);
    expect(isAppError(error, 'integrity')).toBe(true);
    expect(String(error)).toContain('index.faiss');
    expect(await readdir(backupDir)).toEqual([]);
  });

  it('checks a large object without a manifest against its ETag, and refuses it when a range is altered', async () => {
    const good = new FaultyRangeStore();
    await plant(good, { 'index.faiss': index }, false);
    expect(await (await restorerFor(good)).restorer.restore(NAME)).toMatchObject({ outcome: 'restored', verification: 'etag' });

    const altered = new FaultyRangeStore({ at: 0, kind: 'flip-a-byte' });
    await plant(altered, { 'index.faiss': index }, false);
    const { restorer, backupDir } = await restorerFor(altered);
    const error = await restorer.restore(NAME).catch((e: unknown) => e);
    expect(isAppError(error, 'integrity')).toBe(true);
    expect(await readdir(backupDir)).toEqual([]);
  });

  it('leaves an identical local snapshot as it is, and refuses one whose large file differs', async () => {
    const store = new FaultyRangeStore();
    await plant(store, files);
    const { restorer, backupDir } = await restorerFor(store);
    await mkdir(path.join(backupDir, NAME), { recursive: true });
    for (const [relative, bytes] of Object.entries(files)) await writeFile(path.join(backupDir, NAME, relative), bytes);
    expect(await restorer.restore(NAME)).toMatchObject({ outcome: 'already-present', files: 2 });
    expect(store.rangeGets).toBe(0);

    const changed = Buffer.from(index);
    changed[changed.length - 1] = (changed[changed.length - 1] as number) ^ 1;
    await writeFile(path.join(backupDir, NAME, 'index.faiss'), changed);
    const error = await restorer.restore(NAME).catch((e: unknown) => e);
    expect(isAppError(error, 'conflict')).toBe(true);
    expect((await readFile(path.join(backupDir, NAME, 'index.faiss'))).equals(changed)).toBe(true);
  });
});
