import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chunkBuffer, Chunker, type Chunk } from '../../src/delta/chunker.js';
import { DEFAULT_CHUNKER_PARAMS, MAX_CHUNK_BYTES, MIN_CHUNK_BYTES, type ChunkerParams } from '../../src/delta/chunker-params.js';
import { GEAR, gearTable } from '../../src/delta/gear-table.js';
import { pseudoRandomBytes } from '../helpers/delta-data.js';
import { seededRandom } from '../helpers/random.js';

const SMALL: ChunkerParams = { minChunkBytes: 1024, normalChunkBytes: 4096, maxChunkBytes: 16_384 };

/**
 * The boundary rule written the plain way, one byte at a time with the cut conditions spelled
 * out: the optimized scanner (word loads, three loops, state across buffers) must agree with it.
 */
function referenceBoundaries(data: Uint8Array, params: ChunkerParams): number[] {
  const bits = Math.log2(params.normalChunkBytes);
  const topBits = (n: number): number => ~(-1 >>> n) | 0;
  const ends: number[] = [];
  let start = 0;
  while (start < data.length) {
    let fp = 0;
    let end = Math.min(data.length, start + params.maxChunkBytes);
    for (let length = params.minChunkBytes - 32 + 1; start + length <= end && length < params.maxChunkBytes; length += 1) {
      fp = ((fp << 1) + GEAR[data[start + length - 1]!]!) | 0;
      if (length < params.minChunkBytes) continue;
      const mask = length < params.normalChunkBytes ? topBits(bits + 2) : topBits(bits - 2);
      if ((fp & mask) === 0) {
        end = start + length;
        break;
      }
    }
    ends.push(end);
    start = end;
  }
  return ends;
}

function chunkInPieces(data: Buffer, pieceSizes: () => number, params: ChunkerParams = DEFAULT_CHUNKER_PARAMS): Chunk[] {
  const chunker = new Chunker(params);
  const chunks: Chunk[] = [];
  for (let at = 0; at < data.length; ) {
    const size = Math.min(data.length - at, pieceSizes());
    // A copy at an odd byte offset: the scanner's aligned word loads must not change where it cuts.
    const piece = Buffer.alloc(size + 1).subarray(1);
    data.copy(piece, 0, at, at + size);
    chunks.push(...chunker.push(piece));
    at += size;
  }
  return [...chunks, ...chunker.finish()];
}

const sha128 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex').slice(0, 32);

describe('gear table', () => {
  it('is the fixed table every signature was computed with', () => {
    // Changing any of these changes every boundary: that is a new CHUNKER_VERSION, not an edit.
    expect([0, 1, 2, 127, 128, 255].map((i) => GEAR[i]! >>> 0)).toEqual([0x16a648b2, 0x570df217, 0x69097029, 0xc60887bb, 0x9d92b01e, 0xc97f45c6]);
    expect(new Set(GEAR).size).toBe(256);
    expect(gearTable()).toEqual(GEAR);
  });
});

describe('chunker', () => {
  it('cuts a fixed input at the pinned boundaries with the pinned hashes', () => {
    const data = pseudoRandomBytes(7, 3 * 1024 * 1024);
    // The input itself is pinned so a change of the generator is not taken for one of the chunker.
    expect(createHash('sha256').update(data).digest('hex')).toBe('3039d1920888e7a25da81e4d87485dba6cf63cf8c0dfd3ff3a1e340536bf2954');
    const chunks = chunkBuffer(data);
    expect(chunks.map((c) => c.offset)).toEqual([
      0, 146089, 292305, 393813, 559110, 692886, 741460, 941569, 1077533, 1134613, 1313388, 1483679, 1683704, 1776670, 1928874, 2094305,
      2241132, 2375583, 2511857, 2670478, 2873116, 3075291,
    ]);
    expect(chunks[0]).toEqual({ offset: 0, length: 146089, hash: 'a81ad838f8fa3e45ed739c4ccf2f2a50' });
    expect(chunks.at(-1)).toEqual({ offset: 3075291, length: 70437, hash: 'de9f4b033f1649c3473cd2c2f2844aa1' });
  });

  it('cuts where the byte-by-byte definition cuts, with default and small sizes', () => {
    for (const [seed, params, size] of [
      [11, DEFAULT_CHUNKER_PARAMS, 6 * 1024 * 1024],
      [12, SMALL, 300_000],
    ] as const) {
      const data = pseudoRandomBytes(seed, size);
      const chunks = chunkBuffer(data, params);
      expect(chunks.map((c) => c.offset + c.length)).toEqual(referenceBoundaries(data, params));
      expect(chunks.length).toBeGreaterThan(size / params.maxChunkBytes);
    }
  });

  it('gives the same chunks however the file is split into buffers and wherever they sit in memory', () => {
    const data = pseudoRandomBytes(3, 2 * 1024 * 1024 + 12_345);
    const whole = chunkBuffer(data);
    const random = seededRandom(99);
    expect(chunkInPieces(data, () => 1 + Math.floor(random() * 200_000))).toEqual(whole);
    expect(chunkInPieces(data, () => 65_536)).toEqual(whole);
    expect(chunkInPieces(data.subarray(0, 300_000), () => 1 + Math.floor(random() * 100), SMALL)).toEqual(chunkBuffer(data.subarray(0, 300_000), SMALL));
  });

  it('emits contiguous chunks within the size bounds, each named by the SHA-256 of its bytes', () => {
    const data = pseudoRandomBytes(5, 4 * 1024 * 1024);
    const chunks = chunkBuffer(data);
    let offset = 0;
    for (const [index, chunk] of chunks.entries()) {
      expect(chunk.offset).toBe(offset);
      expect(chunk.length).toBeLessThanOrEqual(MAX_CHUNK_BYTES);
      if (index < chunks.length - 1) expect(chunk.length).toBeGreaterThanOrEqual(MIN_CHUNK_BYTES);
      expect(chunk.hash).toBe(sha128(data.subarray(chunk.offset, chunk.offset + chunk.length)));
      offset += chunk.length;
    }
    expect(offset).toBe(data.length);
  });

  it('cuts data with no content boundary (all zeros) at the maximum size', () => {
    const chunks = chunkBuffer(Buffer.alloc(2 * MAX_CHUNK_BYTES + 10));
    expect(chunks.map((c) => c.length)).toEqual([MAX_CHUNK_BYTES, MAX_CHUNK_BYTES, 10]);
  });

  it('re-synchronises a chunk or two after an insertion and after a deletion', () => {
    const base = pseudoRandomBytes(21, 4 * 1024 * 1024);
    const baseHashes = new Set(chunkBuffer(base).map((c) => c.hash));
    const middle = 2 * 1024 * 1024;
    for (const edited of [
      Buffer.concat([base.subarray(0, middle), Buffer.from('a few inserted bytes'), base.subarray(middle)]),
      Buffer.concat([base.subarray(0, middle), base.subarray(middle + 777)]),
    ]) {
      const chunks = chunkBuffer(edited);
      const changed = chunks.filter((c) => !baseHashes.has(c.hash));
      expect(changed.length).toBeGreaterThan(0);
      expect(changed.length).toBeLessThanOrEqual(2);
      for (const c of changed) expect(c.offset + c.length).toBeGreaterThan(middle);
    }
  });

  it('keeps no pushed data: a buffer reused after push does not change the chunks', () => {
    const data = pseudoRandomBytes(8, 100_000);
    const chunker = new Chunker(SMALL);
    const reused = Buffer.from(data);
    const chunks = chunker.push(reused);
    reused.fill(0); // a read loop refilling its buffer
    chunks.push(...chunker.finish());
    expect(chunks).toEqual(chunkBuffer(data, SMALL));
  });

  it('has no chunk for an empty file and refuses use after finish', () => {
    const chunker = new Chunker();
    expect(chunker.push(Buffer.alloc(0))).toEqual([]);
    expect(chunker.finish()).toEqual([]);
    expect(() => chunker.push(Buffer.from('x'))).toThrow(/after finish/);
  });

  it('refuses sizes the masks cannot express', () => {
    expect(() => new Chunker({ minChunkBytes: 1024, normalChunkBytes: 5000, maxChunkBytes: 16_384 })).toThrow(/invalid chunker sizes/);
    expect(() => new Chunker({ minChunkBytes: 16, normalChunkBytes: 4096, maxChunkBytes: 16_384 })).toThrow(/invalid chunker sizes/);
  });
});
