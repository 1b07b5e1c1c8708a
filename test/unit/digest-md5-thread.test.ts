import { createHash, randomBytes } from 'node:crypto';
import { appendFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isAppError } from '../../src/errors.js';
import { digestFile, partSizeFor } from '../../src/snapshot/digest.js';
import { tempDir } from '../helpers/tmp.js';

// The MD5s of large files are taken on a second thread (md5-offload.ts); the digest must be
// exactly what one thread computes, whatever the size's relation to parts and read blocks.

const MIB = 1024 * 1024;
const THRESHOLD = 5 * MIB;
const ALWAYS_OFFLOAD = 0;
const NEVER_OFFLOAD = Number.MAX_SAFE_INTEGER;

async function writeTemp(bytes: Buffer): Promise<string> {
  const file = path.join(await tempDir('digest-thread'), 'file.bin');
  await writeFile(file, bytes);
  return file;
}

describe('digestFile with its MD5s on a second thread', () => {
  it.each([
    ['empty', 0],
    ['smaller than a read block', 1234],
    ['single-request size', THRESHOLD - 1],
    ['one byte over a part', 8 * MIB + 1],
    ['exactly two parts', 16 * MIB],
    ['several parts and a tail', 27 * MIB + 12_345],
  ])('gives the same digest as one thread for a file %s', async (_label, size) => {
    const bytes = randomBytes(size);
    const file = await writeTemp(bytes);
    const offloaded = await digestFile(file, size, THRESHOLD, { offloadFromBytes: ALWAYS_OFFLOAD });
    const inline = await digestFile(file, size, THRESHOLD, { offloadFromBytes: NEVER_OFFLOAD });
    expect(offloaded).toEqual(inline);
    expect(offloaded.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(offloaded.md5).toBe(createHash('md5').update(bytes).digest('hex'));
    expect(offloaded.partSizeBytes).toBe(partSizeFor(size));
  });

  it('shows the observer every byte, in order, from the same read', async () => {
    const bytes = randomBytes(9 * MIB + 77);
    const seen = createHash('sha256');
    let seenBytes = 0;
    const observe = (block: Buffer): void => {
      seen.update(block);
      seenBytes += block.length;
    };
    await digestFile(await writeTemp(bytes), bytes.length, THRESHOLD, { observe, offloadFromBytes: ALWAYS_OFFLOAD });
    expect(seenBytes).toBe(bytes.length);
    expect(seen.digest('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it('reports a file that grew since its stat as changed', async () => {
    const bytes = randomBytes(3 * MIB);
    const file = await writeTemp(bytes);
    await appendFile(file, 'more');
    const error = await digestFile(file, bytes.length, THRESHOLD, { offloadFromBytes: ALWAYS_OFFLOAD }).catch((caught: unknown) => caught);
    expect(isAppError(error, 'snapshot_gone')).toBe(true);
  });

  it('fails the digest, without hanging, when the observer throws mid-file', async () => {
    const bytes = randomBytes(13 * MIB);
    let blocks = 0;
    const observe = (): void => {
      blocks += 1;
      if (blocks === 2) throw new Error('observer failed');
    };
    const error = await digestFile(await writeTemp(bytes), bytes.length, THRESHOLD, { observe, offloadFromBytes: ALWAYS_OFFLOAD }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe('observer failed');
  });
});
