import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isAppError } from '../../src/errors.js';
import { DigestAccumulator, digestFile, fileDigestAccumulator, hasLayoutFor, multipartEtag, normalizeEtag, PartHasher, partSizeFor, producesEtag, sha256OfFile, usesMultipart } from '../../src/snapshot/digest.js';
import { tempDir } from '../helpers/tmp.js';

const MIB = 1024 * 1024;
const THRESHOLD = 5 * MIB;

const md5Hex = (bytes: Buffer): string => createHash('md5').update(bytes).digest('hex');
const sha256Hex = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** S3's multipart ETag computed independently: MD5 of the concatenated raw part MD5s, then -N. */
function expectedMultipartEtag(bytes: Buffer, partSize: number): string {
  const digests: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += partSize) {
    digests.push(createHash('md5').update(bytes.subarray(offset, offset + partSize)).digest());
  }
  if (digests.length === 0) digests.push(createHash('md5').update(Buffer.alloc(0)).digest());
  return `${createHash('md5').update(Buffer.concat(digests)).digest('hex')}-${digests.length}`;
}

async function writeTemp(bytes: Buffer, name = 'file.bin'): Promise<string> {
  const file = path.join(await tempDir('digest'), name);
  await writeFile(file, bytes);
  return file;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('partSizeFor / usesMultipart', () => {
  it.each([
    [0, 8 * MIB],
    [1, 8 * MIB],
    [20 * MIB, 8 * MIB],
    [80_000 * MIB, 8 * MIB],
    [80_000 * MIB + 1, 9 * MIB],
    [100 * 1024 * MIB, 11 * MIB],
  ])('size %d -> part size %d', (size, partSize) => {
    expect(partSizeFor(size)).toBe(partSize);
  });

  it.each([1, 5 * MIB, 80 * 1024 * MIB, 5 * 1024 * 1024 * MIB])('size %d needs at most 10,000 whole-MiB parts', (size) => {
    const partSize = partSizeFor(size);
    expect(partSize % MIB).toBe(0);
    expect(Math.ceil(size / partSize)).toBeLessThanOrEqual(10_000);
  });

  it.each([
    [THRESHOLD - 1, false],
    [0, false],
    // At or above the threshold but within one 8 MiB part: lib-storage sends a single PUT.
    [THRESHOLD, false],
    [8 * MIB, false],
    [8 * MIB + 1, true],
    [20 * MIB, true],
  ])('size %d with a 5 MiB threshold -> multipart %s', (size, multipart) => {
    expect(usesMultipart(size, THRESHOLD)).toBe(multipart);
  });
});

describe('normalizeEtag', () => {
  it.each([
    ['"abc"', 'abc'],
    ['W/"ABC-2"', 'abc-2'],
    ['ABCDEF', 'abcdef'],
    [undefined, ''],
  ])('%j -> %j', (etag, expected) => {
    expect(normalizeEtag(etag)).toBe(expected);
  });
});

describe('PartHasher', () => {
  const partSize = 1000;
  const data = randomBytes(5500);

  function hashInChunks(bytes: Buffer, chunkSizes: readonly number[]): string {
    const hasher = new PartHasher(partSize);
    let offset = 0;
    let i = 0;
    while (offset < bytes.length) {
      const size = chunkSizes[i % chunkSizes.length] ?? 1;
      hasher.update(bytes.subarray(offset, offset + size));
      offset += size;
      i += 1;
    }
    return hasher.etag();
  }

  it.each([[[5500]], [[1]], [[7]], [[999]], [[1000]], [[1001]], [[2500, 1, 1999]], [[333, 4000, 17]]])('gives the independent ETag with chunk sizes %j', (chunkSizes) => {
    expect(hashInChunks(data, chunkSizes)).toBe(expectedMultipartEtag(data, partSize));
    expect(hashInChunks(data, chunkSizes)).toMatch(/^[0-9a-f]{32}-6$/);
  });

  it.each([[[5000]], [[1000]], [[1]], [[600]]])('adds no empty trailing part when the size is a multiple of the part size (chunks %j)', (chunkSizes) => {
    const exact = data.subarray(0, 5000);
    expect(hashInChunks(exact, chunkSizes)).toBe(expectedMultipartEtag(exact, partSize));
    expect(hashInChunks(exact, chunkSizes).endsWith('-5')).toBe(true);
  });

  it('hashes empty input as one empty part', () => {
    expect(new PartHasher(partSize).etag()).toBe(expectedMultipartEtag(Buffer.alloc(0), partSize));
  });

  it('ignores empty chunks', () => {
    const hasher = new PartHasher(partSize);
    hasher.update(Buffer.alloc(0));
    hasher.update(data.subarray(0, 1500));
    hasher.update(Buffer.alloc(0));
    hasher.update(data.subarray(1500));
    expect(hasher.etag()).toBe(expectedMultipartEtag(data, partSize));
  });

  it('multipartEtag matches the independent computation', () => {
    const parts = [Buffer.from('a'), Buffer.from('bb'), Buffer.from('ccc')];
    const digests = parts.map((p) => createHash('md5').update(p).digest());
    expect(multipartEtag(digests)).toBe(`${createHash('md5').update(Buffer.concat(digests)).digest('hex')}-3`);
  });
});

describe('digestFile', () => {
  it.each([
    ['empty', 0],
    ['small', 1234],
    ['just below the threshold', THRESHOLD - 1],
  ])('digests a %s file in one part: etag is the MD5', async (_label, size) => {
    const bytes = randomBytes(size);
    const file = await writeTemp(bytes);
    const digest = await digestFile(file, size, THRESHOLD);
    expect(digest).toEqual({ size, sha256: sha256Hex(bytes), md5: md5Hex(bytes), etag: md5Hex(bytes), partSizeBytes: partSizeFor(size), multipart: false });
  });

  it('digests a file at the threshold that fits in one part as a single PUT: the plain MD5 is the ETag', async () => {
    const bytes = randomBytes(THRESHOLD);
    const digest = await digestFile(await writeTemp(bytes), THRESHOLD, THRESHOLD);
    expect(digest.multipart).toBe(false);
    expect(digest.etag).toBe(md5Hex(bytes));
  });

  it.each([
    ['one byte over one part', 8 * MIB + 1, 2],
    ['of two whole parts', 16 * MIB, 2],
    ['of ~20 MiB', 20 * MIB + 12_345, 3],
  ])('digests a file %s as multipart with the S3 ETag', async (_label, size, parts) => {
    const bytes = randomBytes(size);
    const file = await writeTemp(bytes);
    const digest = await digestFile(file, size, THRESHOLD);
    expect(digest.multipart).toBe(true);
    expect(digest.size).toBe(size);
    expect(digest.partSizeBytes).toBe(8 * MIB);
    expect(digest.sha256).toBe(sha256Hex(bytes));
    expect(digest.md5).toBe(md5Hex(bytes));
    expect(digest.etag).toBe(expectedMultipartEtag(bytes, 8 * MIB));
    expect(digest.etag.endsWith(`-${parts}`)).toBe(true);
  });

  it.each([
    ['grew', 100, 99],
    ['shrank', 100, 101],
    ['grew past the threshold', THRESHOLD + 10, THRESHOLD - 10],
  ])('reports a file that %s since the stat as snapshot_gone', async (_label, actual, expected) => {
    const file = await writeTemp(randomBytes(actual));
    expect(isAppError(await rejection(digestFile(file, expected, THRESHOLD)), 'snapshot_gone')).toBe(true);
  });

  it('reports a missing file as snapshot_gone', async () => {
    const dir = await tempDir('digest');
    expect(isAppError(await rejection(digestFile(path.join(dir, 'missing.bin'), 10, THRESHOLD)), 'snapshot_gone')).toBe(true);
  });

  it('reports a directory in place of the file as local_io', async () => {
    const dir = await tempDir('digest');
    expect(isAppError(await rejection(digestFile(dir, 10, THRESHOLD)), 'local_io')).toBe(true);
  });
});

describe('DigestAccumulator fed part by part', () => {
  const bytes = randomBytes(2 * 8 * MIB + 12345); // 3 parts of memsync's 8 MiB part size

  function partsOf(data: Buffer, partSize: number): Buffer[] {
    const parts: Buffer[] = [];
    for (let offset = 0; offset < data.length; offset += partSize) parts.push(data.subarray(offset, offset + partSize));
    return parts;
  }

  it('returns the MD5 of each part and ends with the same SHA-256 and multipart ETag as a streamed digest', () => {
    const byParts = fileDigestAccumulator(bytes.length, THRESHOLD, { wholeMd5: false });
    const returned = partsOf(bytes, 8 * MIB).map((part) => byParts.addPart(part));
    expect(returned.map((md5) => md5?.toString('hex'))).toEqual(partsOf(bytes, 8 * MIB).map(md5Hex));
    const digest = byParts.digest();
    expect(digest).toMatchObject({ size: bytes.length, sha256: sha256Hex(bytes), etag: expectedMultipartEtag(bytes, 8 * MIB), multipart: true });
    // Not asked for: no third hash pass over the file.
    expect(digest.md5).toBe('');
  });

  it('always computes the whole MD5 of a file sent in one request (it is that object\'s ETag)', () => {
    const small = randomBytes(1000);
    const single = new DigestAccumulator(8 * MIB, false, true, false);
    expect(single.addPart(small)).toBeUndefined();
    expect(single.digest()).toMatchObject({ md5: md5Hex(small), etag: md5Hex(small) });
  });

  it('refuses a whole part after a partial update (the part boundaries would be wrong)', () => {
    const hasher = new PartHasher(8 * MIB);
    hasher.update(bytes.subarray(0, 100));
    expect(() => hasher.addPart(bytes.subarray(100, 100 + 8 * MIB))).toThrow(/partial/);
  });
});

describe('producesEtag', () => {
  const digest = { size: 1, sha256: '', md5: 'a'.repeat(32), etag: 'b'.repeat(32) + '-2', partSizeBytes: 8 * MIB, multipart: true };
  it.each([
    ['the multipart ETag', digest, digest.etag, true],
    ['the whole MD5', digest, digest.md5, true],
    ['another ETag', digest, 'c'.repeat(32), false],
    ['an empty ETag', digest, '', false],
    ['an empty ETag when the whole MD5 is unknown', { ...digest, md5: '' }, '', false],
  ])('%s -> %s', (_label, local, etag, expected) => {
    expect(producesEtag(local, etag)).toBe(expected);
  });
});

describe('sha256OfFile', () => {
  it.each([
    ['empty', 0],
    ['small', 1234],
    ['of several reads', 9 * MIB + 7],
  ])('returns the SHA-256 of a %s file, as digestFile does', async (_label, size) => {
    const bytes = randomBytes(size);
    const file = await writeTemp(bytes);
    expect(await sha256OfFile(file, size)).toBe(sha256Hex(bytes));
    expect(await sha256OfFile(file, size)).toBe((await digestFile(file, size, THRESHOLD)).sha256);
  });

  it.each([
    ['grew', 100, 99],
    ['shrank', 100, 101],
  ])('reports a file that %s since the stat as snapshot_gone', async (_label, actual, expected) => {
    const file = await writeTemp(randomBytes(actual));
    expect(isAppError(await rejection(sha256OfFile(file, expected)), 'snapshot_gone')).toBe(true);
  });

  it('refuses a file that is not the one expected (safe-open rules)', async () => {
    const file = await writeTemp(randomBytes(100));
    const error = await rejection(sha256OfFile(file, 100, { expected: { size: 100, mtimeMs: 1, ctimeMs: 1 } }));
    expect(isAppError(error, 'snapshot_gone')).toBe(true);
  });

  it('reports a directory in place of the file as local_io', async () => {
    expect(isAppError(await rejection(sha256OfFile(await tempDir('digest'), 10)), 'local_io')).toBe(true);
  });
});

describe('hasLayoutFor', () => {
  const large = 40 * MIB;
  const layout = { partSizeBytes: partSizeFor(large), multipart: usesMultipart(large, THRESHOLD) };
  it.each([
    ['the same part size and multipart choice', layout, true],
    ['another part size', { ...layout, partSizeBytes: layout.partSizeBytes + MIB }, false],
    ['a single PUT where multipart is due', { ...layout, multipart: false }, false],
  ])('a digest with %s -> %s', (_label, digestLayout, expected) => {
    expect(hasLayoutFor({ size: large, sha256: '', md5: '', etag: '', ...digestLayout }, large, THRESHOLD)).toBe(expected);
  });
});
