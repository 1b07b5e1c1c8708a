import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AppError, isAppError } from '../../src/errors.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { downloadVerified, RANGE_BYTES, RANGED_FROM_BYTES } from '../../src/restore/download-file.js';
import { tempDir } from '../helpers/tmp.js';

const KEY = 'auto_20260101_000000/index.faiss';
const MIB = 1024 * 1024;
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** Counts whole and ranged GETs; `failRange` makes the range starting there fail, `alter` changes what one range returns. */
class RangeStore extends MemoryRemoteStore {
  gets = 0;
  ranges: number[] = [];

  constructor(
    private readonly failRangeAt?: number,
    private readonly alterRangeAt?: number,
  ) {
    super();
  }

  override async get(key: string): Promise<Readable> {
    this.gets += 1;
    return super.get(key);
  }

  override async getRange(key: string, start: number, endInclusive: number): Promise<Readable> {
    this.ranges.push(start);
    if (start === this.failRangeAt) throw new AppError('remote_unavailable', `download ${key}: connection reset`);
    const body = await super.getRange(key, start, endInclusive);
    if (start !== this.alterRangeAt) return body;
    const bytes = Buffer.concat(await body.toArray());
    bytes[0] = (bytes[0] as number) ^ 1;
    return Readable.from([bytes]);
  }
}

async function setup(store: RangeStore, bytes: Buffer): Promise<string> {
  await store.put(KEY, () => bytes, { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
  return tempDir('memsync-download');
}

describe('downloadVerified', () => {
  const large = randomBytes(RANGED_FROM_BYTES + 3 * MIB + 17);

  it('fetches a large plain object as parallel ranges, hashed in order, byte-identical', async () => {
    const store = new RangeStore();
    const dir = await setup(store, large);
    const target = path.join(dir, 'index.faiss');
    let received = 0;
    const verification = await downloadVerified(store, KEY, target, { path: 'index.faiss', size: large.length, sha256: sha256(large), etag: '', encrypted: false }, undefined, (n) => (received += n));
    expect(verification).toBe('sha256');
    expect(store.gets).toBe(0);
    expect(store.ranges).toHaveLength(Math.ceil(large.length / RANGE_BYTES));
    expect(received).toBe(large.length);
    expect((await readFile(target)).equals(large)).toBe(true);
  });

  it('fails cleanly when one range fails, with no request left running against the closed file', async () => {
    const store = new RangeStore(RANGE_BYTES);
    const dir = await setup(store, large);
    const error = await downloadVerified(store, KEY, path.join(dir, 'x'), { path: 'x', size: large.length, sha256: sha256(large), etag: '', encrypted: false }, undefined, () => undefined).catch((e: unknown) => e);
    expect(isAppError(error, 'remote_unavailable')).toBe(true);
    expect(await readdir(dir)).toEqual(['x']);
  });

  it('refuses a range that comes back altered: the SHA-256 of the whole does not match', async () => {
    const store = new RangeStore(undefined, RANGE_BYTES * 2);
    const dir = await setup(store, large);
    const error = await downloadVerified(store, KEY, path.join(dir, 'x'), { path: 'x', size: large.length, sha256: sha256(large), etag: '', encrypted: false }, undefined, () => undefined).catch((e: unknown) => e);
    expect(isAppError(error, 'integrity')).toBe(true);
  });

  it('streams a smaller object with one GET', async () => {
    const small = randomBytes(3 * MIB);
    const store = new RangeStore();
    const dir = await setup(store, small);
    await downloadVerified(store, KEY, path.join(dir, 'small'), { path: 'small', size: small.length, sha256: sha256(small), etag: '', encrypted: false }, undefined, () => undefined);
    expect(store.gets).toBe(1);
    expect(store.ranges).toEqual([]);
    expect((await readFile(path.join(dir, 'small'))).equals(small)).toBe(true);
  });
});
