import { createHash, randomBytes } from 'node:crypto';
import { writeSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AppError, isAppError } from '../../src/errors.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import type { FileDownloadOptions } from '../../src/remote/store.js';
import { downloadVerified, RANGE_BYTES, RANGED_FROM_BYTES } from '../../src/restore/download-file.js';
import { tempDir } from '../helpers/tmp.js';

const KEY = 'auto_20260101_000000/index.faiss';
const MIB = 1024 * 1024;
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const NO_RANGE_RETRY = { policy: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 } };

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
    const verification = await downloadVerified(store, KEY, target, { path: 'index.faiss', size: large.length, sha256: sha256(large), etag: '', encrypted: false }, { signal: undefined, onBytes: (n) => (received += n), rangeRetry: NO_RANGE_RETRY });
    expect(verification).toBe('sha256');
    expect(store.gets).toBe(0);
    expect(store.ranges).toHaveLength(Math.ceil(large.length / RANGE_BYTES));
    expect(received).toBe(large.length);
    expect((await readFile(target)).equals(large)).toBe(true);
  });

  it('fails cleanly when one range fails, with no request left running against the closed file', async () => {
    const store = new RangeStore(RANGE_BYTES);
    const dir = await setup(store, large);
    const error = await downloadVerified(store, KEY, path.join(dir, 'x'), { path: 'x', size: large.length, sha256: sha256(large), etag: '', encrypted: false }, { signal: undefined, onBytes: () => undefined, rangeRetry: NO_RANGE_RETRY }).catch((e: unknown) => e);
    expect(isAppError(error, 'remote_unavailable')).toBe(true);
    expect(await readdir(dir)).toEqual(['x']);
  });

  it('refuses a range that comes back altered: the SHA-256 of the whole does not match', async () => {
    const store = new RangeStore(undefined, RANGE_BYTES * 2);
    const dir = await setup(store, large);
    const error = await downloadVerified(store, KEY, path.join(dir, 'x'), { path: 'x', size: large.length, sha256: sha256(large), etag: '', encrypted: false }, { signal: undefined, onBytes: () => undefined, rangeRetry: NO_RANGE_RETRY }).catch((e: unknown) => e);
    expect(isAppError(error, 'integrity')).toBe(true);
  });

  it('streams a smaller object with one GET', async () => {
    const small = randomBytes(3 * MIB);
    const store = new RangeStore();
    const dir = await setup(store, small);
    await downloadVerified(store, KEY, path.join(dir, 'small'), { path: 'small', size: small.length, sha256: sha256(small), etag: '', encrypted: false }, { signal: undefined, onBytes: () => undefined, rangeRetry: NO_RANGE_RETRY });
    expect(store.gets).toBe(1);
    expect(store.ranges).toEqual([]);
    expect((await readFile(path.join(dir, 'small'))).equals(small)).toBe(true);
  });

  describe('with a store that downloads into the file itself', () => {
    /** Writes the object into the file last range first (as threads finishing out of order would); `flipAt` alters one byte on the way. */
    class FileWritingStore extends RangeStore {
      threaded = 0;

      constructor(
        private readonly mode: { flipAt?: number; decline?: boolean } = {},
      ) {
        super();
      }

      downloadRangesToFile(key: string, options: FileDownloadOptions): Promise<void> | undefined {
        if (this.mode.decline === true) return undefined;
        this.threaded += 1;
        return (async () => {
          const bytes = Buffer.concat(await (await super.get(key)).toArray());
          if (this.mode.flipAt !== undefined) bytes[this.mode.flipAt] = (bytes[this.mode.flipAt] as number) ^ 1;
          const starts = [];
          for (let start = 0; start < options.sizeBytes; start += options.rangeBytes) starts.push(start);
          for (const start of starts.reverse()) {
            const end = Math.min(options.sizeBytes, start + options.rangeBytes);
            writeSync(options.fd, bytes, start, end - start, start);
            options.onWritten(start, end - start);
          }
        })();
      }
    }

    it('checks what the store wrote against the SHA-256, reading the file back in order', async () => {
      const store = new FileWritingStore();
      const dir = await setup(store, large);
      let received = 0;
      const target = path.join(dir, 'index.faiss');
      const verification = await downloadVerified(store, KEY, target, { path: 'index.faiss', size: large.length, sha256: sha256(large), etag: '', encrypted: false }, { signal: undefined, onBytes: (n) => (received += n), rangeRetry: NO_RANGE_RETRY });
      expect(verification).toBe('sha256');
      expect(store.threaded).toBe(1);
      expect(store.ranges).toEqual([]);
      expect(received).toBe(large.length);
      expect((await readFile(target)).equals(large)).toBe(true);
    });

    it('refuses a file the store wrote with one byte altered', async () => {
      const store = new FileWritingStore({ flipAt: RANGE_BYTES + 5 });
      const dir = await setup(store, large);
      const error = await downloadVerified(store, KEY, path.join(dir, 'x'), { path: 'x', size: large.length, sha256: sha256(large), etag: '', encrypted: false }, { signal: undefined, onBytes: () => undefined, rangeRetry: NO_RANGE_RETRY }).catch((e: unknown) => e);
      expect(isAppError(error, 'integrity')).toBe(true);
    });

    it('reads the ranges itself when the store declines (a bandwidth limit)', async () => {
      const store = new FileWritingStore({ decline: true });
      const dir = await setup(store, large);
      const target = path.join(dir, 'index.faiss');
      await downloadVerified(store, KEY, target, { path: 'index.faiss', size: large.length, sha256: sha256(large), etag: '', encrypted: false }, { signal: undefined, onBytes: () => undefined, rangeRetry: NO_RANGE_RETRY });
      expect(store.ranges).toHaveLength(Math.ceil(large.length / RANGE_BYTES));
      expect((await readFile(target)).equals(large)).toBe(true);
    });
  });
});
