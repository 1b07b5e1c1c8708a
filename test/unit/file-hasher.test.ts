import { createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isAppError } from '../../src/errors.js';
import { digestsToCheck, FileHasher } from '../../src/restore/file-hasher.js';
import { candidatePartSizes } from '../../src/snapshot/object-check.js';
import { tempDir } from '../helpers/tmp.js';

const MIB = 1024 * 1024;
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const md5 = (bytes: Buffer): Buffer => createHash('md5').update(bytes).digest();

/** Writes `bytes` into a fresh file in the given order of pieces, telling the hasher the gap-free prefix after each. */
async function hashWrittenOutOfOrder(bytes: Buffer, pieces: [number, number][], expected: { sha256: string | undefined; etag: string }, end = bytes.length) {
  const file = path.join(await tempDir('file-hasher'), 'f');
  const handle = await open(file, 'wx+');
  const hasher = new FileHasher(handle.fd, { size: bytes.length, ...expected }, 'f');
  try {
    let prefix = 0;
    const done = new Set<number>();
    for (const [start, length] of pieces) {
      await handle.write(bytes, start, length, start);
      done.add(start);
      while (done.has(prefix)) prefix = pieces.find(([s]) => s === prefix)!.reduce((s, l) => s + l);
      hasher.advance(prefix);
    }
    return await hasher.finish(end);
  } finally {
    await hasher.close();
    await handle.close();
  }
}

describe('FileHasher', () => {
  const bytes = randomBytes(9 * MIB + 123);
  const pieces: [number, number][] = [[4 * MIB, 5 * MIB + 123], [0, MIB], [2 * MIB, 2 * MIB], [MIB, MIB]];

  it('hashes a file written out of order, in order, on its own thread', async () => {
    const digest = await hashWrittenOutOfOrder(bytes, pieces, { sha256: sha256(bytes), etag: '' });
    expect(digest.sha256).toBe(sha256(bytes));
    expect(digest.size).toBe(bytes.length);
    // A manifest's SHA-256 decides: no MD5 pass is taken.
    expect(digest.md5).toBe('');
    expect(digest.partEtags).toEqual([]);
  });

  it('computes the MD5 and multipart ETags only for an object without a manifest', async () => {
    const partSize = 5 * MIB;
    const parts = [bytes.subarray(0, partSize), bytes.subarray(partSize)];
    const etag = `${createHash('md5').update(Buffer.concat(parts.map(md5))).digest('hex')}-2`;
    expect(digestsToCheck({ size: bytes.length, sha256: undefined, etag })).toEqual({ md5: true, partSizes: candidatePartSizes(bytes.length, 2) });
    const digest = await hashWrittenOutOfOrder(bytes, pieces, { sha256: undefined, etag });
    expect(digest.md5).toBe(md5(bytes).toString('hex'));
    expect(digest.partEtags).toContain(etag);
  });

  it('fails, naming the file, when the file ends before the bytes said to be written', async () => {
    const error = await hashWrittenOutOfOrder(bytes, pieces, { sha256: sha256(bytes), etag: '' }, bytes.length + 10).catch((e: unknown) => e);
    expect(isAppError(error, 'local_io')).toBe(true);
    expect(String(error)).toContain('ends at');
  });

  it('reports a file longer than what was written for it', async () => {
    const digest = await hashWrittenOutOfOrder(bytes, pieces, { sha256: sha256(bytes), etag: '' }, bytes.length - 1);
    expect(digest.size).toBe(bytes.length);
  });
});
