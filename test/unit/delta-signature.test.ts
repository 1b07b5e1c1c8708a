import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chunkBuffer, type Chunk } from '../../src/delta/chunker.js';
import { MAX_CHUNK_BYTES, MIN_CHUNK_BYTES } from '../../src/delta/chunker-params.js';
import { createSignature, MAX_SIGNED_FILE_BYTES, parseSignature, serializeSignature, signatureByteLimit } from '../../src/delta/signature.js';
import { isAppError } from '../../src/errors.js';
import { pseudoRandomBytes } from '../helpers/delta-data.js';
import { seededRandom } from '../helpers/random.js';

const data = pseudoRandomBytes(31, 3 * 1024 * 1024);
const sha256 = createHash('sha256').update(data).digest('hex');
const signature = createSignature(chunkBuffer(data), data.length, sha256);
const valid = serializeSignature(signature);

/** Recomputes the trailing checksum, as someone forging a signature would. */
function reseal(bytes: Buffer): Buffer {
  const body = bytes.subarray(0, bytes.length - 32);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

function edited(edit: (bytes: Buffer) => Buffer | void): Buffer {
  const copy = Buffer.from(valid);
  return reseal(edit(copy) ?? copy);
}

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (isAppError(error, 'integrity')) return error.message;
    throw error;
  }
  throw new Error('accepted');
}

describe('signature', () => {
  it('round-trips deterministically in 20 bytes per chunk', () => {
    expect(parseSignature(valid, { size: data.length, sha256 })).toEqual(signature);
    expect(serializeSignature(parseSignature(valid))).toEqual(valid);
    expect(valid.length).toBe(64 + signature.chunks.length * 20 + 32);
  });

  it('is bounded by the file size it describes', () => {
    expect(signatureByteLimit(0)).toBe(96);
    expect(signatureByteLimit(MIN_CHUNK_BYTES + 1)).toBe(96 + 2 * 20);
    expect(signatureByteLimit()).toBe(signatureByteLimit(MAX_SIGNED_FILE_BYTES));
    expect(signatureByteLimit()).toBeLessThan(41 * 1024 * 1024);
    expect(refusal(() => parseSignature(valid, { size: 100_000 }))).toMatch(/bytes, expected 96 to/);
  });

  it('refuses a signature of some other content than the stored file', () => {
    expect(refusal(() => parseSignature(valid, { size: data.length + 1 }))).toMatch(/describes|bytes, expected/);
    expect(refusal(() => parseSignature(valid, { sha256: '0'.repeat(64) }))).toMatch(/SHA-256 differs/);
  });

  const countAt = 60;
  const firstEntry = 64;
  it.each([
    ['empty', () => Buffer.alloc(0), /0 bytes/],
    ['truncated', () => valid.subarray(0, valid.length - 1), /checksum/],
    ['one byte flipped', () => Buffer.from(valid).fill(valid[100]! ^ 1, 100, 101), /checksum/],
    ['other magic', () => edited((b) => void b.write('JUNK', 0)), /magic/],
    ['format version 2', () => edited((b) => void b.writeUInt8(2, 4)), /format version 2/],
    ['chunker version 9', () => edited((b) => void b.writeUInt8(9, 5)), /chunker version 9/],
    ['32-byte chunk hashes', () => edited((b) => void b.writeUInt16BE(32, 6)), /hashes of 32 bytes/],
    ['other chunk sizes', () => edited((b) => void b.writeUInt32BE(1024, 8)), /chunk sizes/],
    ['a size beyond any signed file', () => edited((b) => void b.writeBigUInt64BE(2n ** 63n, 20)), /out of range/],
    ['a count larger than the entries', () => edited((b) => void b.writeUInt32BE(signature.chunks.length + 1, countAt)), /do not fit/],
    ['a count of 2^32 - 1', () => edited((b) => void b.writeUInt32BE(0xffffffff, countAt)), /do not fit/],
    ['chunks shorter than the file', () => edited((b) => void b.writeBigUInt64BE(BigInt(data.length + 1), 20)), /add up to/],
    ['a chunk longer than the maximum', () => edited((b) => void b.writeUInt32BE(MAX_CHUNK_BYTES + 1, firstEntry)), /chunk 0 has/],
    ['a middle chunk below the minimum', () => edited((b) => void b.writeUInt32BE(10, firstEntry)), /chunk 0 has 10 bytes/],
    [
      'an empty last chunk',
      () =>
        edited((b) => {
          b.writeUInt32BE(signature.chunks.length + 1, countAt);
          return Buffer.concat([b.subarray(0, b.length - 32), Buffer.alloc(20), Buffer.alloc(32)]);
        }),
      new RegExp(`chunk ${signature.chunks.length} has 0 bytes`),
    ],
    ['more bytes than any signature', () => Buffer.alloc(signatureByteLimit() + 1), /bytes, expected/],
  ])('refuses %s with an integrity error', (_name, make, message) => {
    expect(refusal(() => parseSignature(make()))).toMatch(message);
  });

  it('refuses or parses into a valid tiling, never anything else, after random resealed damage', () => {
    const random = seededRandom(4242);
    for (let round = 0; round < 500; round += 1) {
      const bytes = Buffer.from(valid);
      for (let n = 1 + Math.floor(random() * 4); n > 0; n -= 1) bytes[Math.floor(random() * (bytes.length - 32))] = Math.floor(random() * 256);
      try {
        const parsed = parseSignature(reseal(bytes));
        const total = parsed.chunks.reduce((sum, c, i) => (expect(c.offset).toBe(sum), sum + c.length), 0);
        expect(total).toBe(parsed.size);
      } catch (error) {
        expect(isAppError(error, 'integrity')).toBe(true);
      }
    }
  });

  it('refuses to create or write a signature whose chunks do not tile the file', () => {
    const chunks: Chunk[] = signature.chunks.map((c) => ({ ...c }));
    chunks[1]!.offset += 1;
    expect(refusal(() => createSignature(chunks, data.length, sha256))).toMatch(/chunk 1 starts at/);
    expect(refusal(() => createSignature(signature.chunks, data.length, 'x'))).toMatch(/64 hex/);
    expect(refusal(() => serializeSignature({ ...signature, size: data.length - 1 }))).toMatch(/add up to/);
    expect(createSignature([], 0, sha256).chunks).toEqual([]);
  });
});
