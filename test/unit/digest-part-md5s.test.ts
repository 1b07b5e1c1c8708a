// The digest pass hands out the MD5 of every part of a multipart file's plain layout (which its
// ETag only sums up), whether the MD5s are taken on the main thread or on others: a composed
// upload checks the parts it copies against them.
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { digestFile, multipartEtag, partSizeFor } from '../../src/snapshot/digest.js';
import { tempDir } from '../helpers/tmp.js';

const MIB = 1024 * 1024;
const THRESHOLD = 5 * MIB;

async function digestWithPartMd5s(bytes: Buffer, offloadFromBytes: number): Promise<{ etag: string; partMd5s: readonly Buffer[] | undefined }> {
  const file = path.join(await tempDir('digest-part-md5s'), 'file.bin');
  await writeFile(file, bytes);
  let partMd5s: readonly Buffer[] | undefined;
  const digest = await digestFile(file, bytes.length, THRESHOLD, { offloadFromBytes, onPartMd5s: (md5s) => (partMd5s = md5s) });
  return { etag: digest.etag, partMd5s };
}

describe('digestFile: the plain layout part MD5s', () => {
  describe.each([
    ['on the main thread', Number.MAX_SAFE_INTEGER],
    ['on MD5 threads', 0],
  ])('%s', (_, offloadFromBytes) => {
    it.each([
      ['one byte over a part', 8 * MIB + 1],
      ['exactly three parts', 24 * MIB],
      ['several parts and a tail', 27 * MIB + 12_345],
    ])('%s: the MD5 of each part, whose multipart ETag is the digest\'s', async (_label, size) => {
      const bytes = randomBytes(size);
      const { etag, partMd5s } = await digestWithPartMd5s(bytes, offloadFromBytes);
      const partSize = partSizeFor(size);
      const expected = Array.from({ length: Math.ceil(size / partSize) }, (_unused, k) => createHash('md5').update(bytes.subarray(k * partSize, (k + 1) * partSize)).digest());
      expect(partMd5s?.map((md5) => md5.toString('hex'))).toEqual(expected.map((md5) => md5.toString('hex')));
      expect(multipartEtag(partMd5s ?? [])).toBe(etag);
    });

    it('a file sent in one request has no parts: none are shown', async () => {
      expect((await digestWithPartMd5s(randomBytes(THRESHOLD - 1), offloadFromBytes)).partMd5s).toBeUndefined();
    });
  });
});
