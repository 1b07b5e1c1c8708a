import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ChunkGuide } from '../../src/delta/chunk-guide.js';
import { chunkBuffer, Chunker, type Chunk } from '../../src/delta/chunker.js';
import { CHUNKER_VERSION, DEFAULT_CHUNKER_PARAMS, type ChunkerParams } from '../../src/delta/chunker-params.js';
import type { Signature } from '../../src/delta/signature.js';
import { pseudoRandomBytes } from '../helpers/delta-data.js';
import { seededRandom } from '../helpers/random.js';

const SMALL: ChunkerParams = { minChunkBytes: 1024, normalChunkBytes: 4096, maxChunkBytes: 16_384 };

function signatureOf(data: Buffer, params: ChunkerParams = SMALL): Signature {
  return { chunkerVersion: CHUNKER_VERSION, params, size: data.length, sha256: createHash('sha256').update(data).digest('hex'), chunks: chunkBuffer(data, params) };
}

/** Chunks `data` fed in pieces of the given sizes, with `base` as the guide; the chunks and the chunker's counts. */
function guidedChunks(data: Buffer, base: Signature, pieceSize: () => number, params: ChunkerParams = SMALL): { chunks: Chunk[]; chunker: Chunker } {
  const guide = ChunkGuide.from(base, params);
  if (guide === undefined) throw new Error('no guide');
  const chunker = new Chunker(params, guide);
  const chunks: Chunk[] = [];
  for (let at = 0; at < data.length; ) {
    const size = Math.min(data.length - at, pieceSize());
    // A buffer the caller reuses: whatever the chunker keeps of it must be its own copy.
    const piece = Buffer.from(data.subarray(at, at + size));
    chunks.push(...chunker.push(piece));
    piece.fill(0xa5);
    at += size;
  }
  return { chunks: [...chunks, ...chunker.finish()], chunker };
}

type Edit = (base: Buffer, random: () => number) => Buffer;

const between = (random: () => number, low: number, high: number): number => low + Math.floor(random() * (high - low + 1));

const EDITS: Record<string, Edit> = {
  unchanged: (base) => Buffer.from(base),
  append: (base, random) => Buffer.concat([base, pseudoRandomBytes(between(random, 1, 1e6), between(random, 1, 40_000))]),
  'insert in the middle': (base, random) => {
    const at = between(random, 0, base.length);
    return Buffer.concat([base.subarray(0, at), pseudoRandomBytes(between(random, 1, 1e6), between(random, 1, 9000)), base.subarray(at)]);
  },
  'delete from the middle': (base, random) => {
    const at = between(random, 0, base.length - 1);
    return Buffer.concat([base.subarray(0, at), base.subarray(Math.min(base.length, at + between(random, 1, 20_000)))]);
  },
  'header changed and appended': (base, random) => {
    const edited = Buffer.concat([base, pseudoRandomBytes(between(random, 1, 1e6), 1536)]);
    edited.writeUInt32LE(between(random, 0, 2 ** 32 - 1), 8);
    return edited;
  },
  'edited in place': (base, random) => {
    const edited = Buffer.from(base);
    const at = between(random, 0, base.length - 1);
    edited.writeUInt8(edited.readUInt8(at) ^ 0x40, at);
    return edited;
  },
  truncated: (base, random) => Buffer.from(base.subarray(0, between(random, 1, base.length - 1))),
  'chunks reordered': (base) => Buffer.concat([base.subarray(base.length >> 1), base.subarray(0, base.length >> 1)]),
  'something else entirely': (base, random) => pseudoRandomBytes(between(random, 1, 1e6), base.length),
};

/** A base with runs of zeros, so chunk hashes repeat (cut at the maximum size) between random stretches. */
function baseWithRepeats(random: () => number): Buffer {
  const pieces: Buffer[] = [];
  for (let i = 0; i < 6; i += 1) pieces.push(random() < 0.4 ? Buffer.alloc(between(random, 1, 80_000)) : pseudoRandomBytes(between(random, 1, 1e6), between(random, 1, 60_000)));
  return Buffer.concat(pieces);
}

describe('chunks guided by the previous version', () => {
  it('are the chunks an unguided chunker cuts, whatever the edit and however the file is fed (seeded)', () => {
    const random = seededRandom(20261206);
    let cases = 0;
    for (let round = 0; round < 12; round += 1) {
      const base = round % 3 === 0 ? baseWithRepeats(random) : pseudoRandomBytes(between(random, 1, 1e6), between(random, 40_000, 300_000));
      const signature = signatureOf(base);
      for (const [name, edit] of Object.entries(EDITS)) {
        const edited = edit(base, random);
        const pieceLimit = [1, 700, 5000, 70_000][round % 4] ?? 5000;
        const { chunks } = guidedChunks(edited, signature, () => between(random, 1, pieceLimit));
        expect(chunks, `${name}, round ${round}`).toEqual(chunkBuffer(edited, SMALL));
        cases += 1;
      }
    }
    expect(cases).toBe(12 * Object.keys(EDITS).length);
  });

  it('finds an unchanged file without rolling: only its last chunk, which ended with the file, is scanned', () => {
    const base = pseudoRandomBytes(7, 400_000);
    const signature = signatureOf(base);
    const { chunker } = guidedChunks(base, signature, () => 65_536);
    const last = signature.chunks.at(-1) as Chunk;
    expect(chunker.stats).toEqual({ followedBytes: base.length - last.length, scannedBytes: last.length });
  });

  it('rolls over little more than the changed chunks of an edited file', () => {
    const base = pseudoRandomBytes(8, 1_000_000);
    const edited = EDITS['header changed and appended']?.(base, seededRandom(3)) as Buffer;
    const { chunks, chunker } = guidedChunks(edited, signatureOf(base), () => 65_536);
    expect(chunks).toEqual(chunkBuffer(edited, SMALL));
    // The first chunk (header), the chunk after it (found by scanning), and the old last chunk plus the tail.
    expect(chunker.stats.scannedBytes).toBeLessThan(4 * SMALL.maxChunkBytes + 1536);
    expect(chunker.stats.followedBytes + chunker.stats.scannedBytes).toBeGreaterThanOrEqual(edited.length);
  });

  it('follows nothing from a signature cut with other sizes', () => {
    const base = pseudoRandomBytes(9, 100_000);
    expect(ChunkGuide.from(signatureOf(base, SMALL), DEFAULT_CHUNKER_PARAMS)).toBeUndefined();
    expect(ChunkGuide.from({ ...signatureOf(base, SMALL), chunkerVersion: CHUNKER_VERSION + 1 }, SMALL)).toBeUndefined();
  });

  it('is not misled by a signature that lies: wrong hashes, lengths no chunker cuts', () => {
    const base = pseudoRandomBytes(10, 200_000);
    const truthful = signatureOf(base);
    const lies: Signature[] = [
      { ...truthful, chunks: truthful.chunks.map((chunk) => ({ ...chunk, hash: 'f'.repeat(32) })) },
      { ...truthful, chunks: truthful.chunks.map((chunk, index) => (index === 0 ? { ...chunk, length: SMALL.maxChunkBytes * 4 } : chunk)) },
      { ...truthful, chunks: truthful.chunks.map((chunk) => ({ ...chunk, length: 0 })) },
      // Right hashes, lengths shifted by one: the hash of the wrong span never matches.
      { ...truthful, chunks: truthful.chunks.map((chunk) => ({ ...chunk, length: chunk.length + 1 })) },
    ];
    for (const lie of lies) expect(guidedChunks(base, lie, () => 3000).chunks).toEqual(truthful.chunks);
  });

  it('cuts a file that ends inside a predicted chunk as the file is', () => {
    const base = pseudoRandomBytes(11, 120_000);
    const signature = signatureOf(base);
    const first = signature.chunks[0] as Chunk;
    const cut = Buffer.from(base.subarray(0, first.length + 100));
    expect(guidedChunks(cut, signature, () => 50).chunks).toEqual(chunkBuffer(cut, SMALL));
  });
});
