import { createHash, type Hash } from 'node:crypto';
import { BoundaryScanner } from './boundary-scanner.js';
import type { ChunkGuide, ChunkPrediction } from './chunk-guide.js';
import { CHUNK_HASH_BYTES, DEFAULT_CHUNKER_PARAMS, type ChunkerParams } from './chunker-params.js';

/**
 * Splits a file into content-defined chunks (see boundary-scanner.ts for where the cuts fall
 * and chunker-params.ts for the sizes), each named by a digest of its bytes, so two versions of a
 * file can be compared chunk by chunk without either being read again.
 */

export interface Chunk {
  /** Byte offset of the chunk in the file. */
  offset: number;
  length: number;
  /**
   * First 16 bytes of the SHA-256 of the chunk's bytes, in hex. 128 bits keep accidental
   * collisions out of reach (about 2^-65 among 2^32 chunks) and a forged one costs about 2^64
   * work, at half the signature size of the full digest; SHA-256 rather than a faster hash
   * because node's is native and uses the CPU's SHA instructions where there are any. A copied
   * range is checked anyway against the MD5 the server reports for the part.
   */
  hash: string;
}

/** How the bytes of a file were cut so far. */
export interface ChunkerStats {
  /** Bytes whose boundaries the rolling hash found. */
  scannedBytes: number;
  /** Bytes of chunks found as a previous version's chunks (see chunk-guide.ts), unrolled. */
  followedBytes: number;
}

/**
 * A file fed in order, as buffers of any size, and its chunks out. Holds no file data: each piece
 * of a pushed buffer goes straight into the current chunk's SHA-256, so memory stays a few hash
 * states whatever the chunk size, and the caller can run the same buffers through its whole-file
 * SHA-256 and part MD5s in the same read pass.
 *
 * With a guide, the chunker first tries the chunk the previous version has next: it hashes that
 * many bytes and, when they hash the same, cuts there without rolling. Otherwise it cuts those
 * bytes again from the chunk's start, as it would have without a guide; the only file bytes it
 * keeps are those of a predicted chunk that continues into the next buffer (at most one maximum
 * chunk), for that case. Either way the chunks are those of an unguided chunker.
 */
export class Chunker {
  private readonly scanner: BoundaryScanner;
  private hash: Hash = createHash('sha256');
  private chunkOffset = 0;
  private chunkLength = 0;
  private finished = false;
  /** The previous version's chunk the current chunk is expected to be; undefined while scanning. */
  private predicted: ChunkPrediction | undefined;
  /** Bytes of the predicted chunk from earlier buffers: cut again if the prediction fails. */
  private held: Buffer | undefined;
  private heldLength = 0;
  private readonly counts: ChunkerStats = { scannedBytes: 0, followedBytes: 0 };

  constructor(
    private readonly params: ChunkerParams = DEFAULT_CHUNKER_PARAMS,
    private readonly guide?: ChunkGuide,
  ) {
    this.scanner = new BoundaryScanner(params);
    this.predicted = guide?.first();
  }

  get stats(): Readonly<ChunkerStats> {
    return this.counts;
  }

  /** The chunks that end inside `data`, in order. `data` is not kept and may be reused by the caller. */
  push(data: Uint8Array): Chunk[] {
    if (this.finished) throw new Error('Chunker.push after finish()');
    const chunks: Chunk[] = [];
    for (let position = 0; position < data.length; ) {
      if (this.predicted !== undefined) {
        position = this.follow(data, position, this.predicted, chunks);
        continue;
      }
      const cut = this.scanner.scan(data, position);
      const end = cut < 0 ? data.length : cut;
      this.add(data.subarray(position, end));
      this.counts.scannedBytes += end - position;
      if (cut < 0) break;
      const chunk = this.endChunk(this.chunkHash());
      chunks.push(chunk);
      this.predicted = this.guide?.after(chunk.hash, undefined);
      position = cut;
    }
    return chunks;
  }

  /** The last, possibly short, chunk; none for an empty file. */
  finish(): Chunk[] {
    if (this.finished) throw new Error('Chunker.finish called twice');
    this.finished = true;
    const chunks: Chunk[] = [];
    // The file ended inside a predicted chunk: its bytes are cut as they come.
    if (this.predicted !== undefined && this.chunkLength > 0) this.abandonPrediction(chunks);
    if (this.chunkLength > 0) chunks.push(this.endChunk(this.chunkHash()));
    return chunks;
  }

  /** Feeds `data` from `position` into the predicted chunk; returns the position to go on from. */
  private follow(data: Uint8Array, position: number, predicted: ChunkPrediction, chunks: Chunk[]): number {
    const take = Math.min(predicted.length - this.chunkLength, data.length - position);
    const bytes = data.subarray(position, position + take);
    this.add(bytes);
    if (this.chunkLength < predicted.length) {
      this.hold(bytes);
      return data.length;
    }
    const hash = this.chunkHash();
    if (hash === predicted.hash) {
      this.counts.followedBytes += this.chunkLength;
      chunks.push(this.endChunk(hash));
      this.heldLength = 0;
      this.predicted = this.guide?.after(hash, predicted);
      return position + take;
    }
    // Not the previous version's chunk: the bytes held from earlier buffers are cut now, and this
    // buffer's share of the chunk is scanned from where it began in it.
    this.abandonPrediction(chunks);
    return position;
  }

  /** Cuts the held bytes of a failed prediction as an unguided chunker would have; scanning goes on after them. */
  private abandonPrediction(chunks: Chunk[]): void {
    const held = this.held?.subarray(0, this.heldLength) ?? Buffer.alloc(0);
    this.predicted = undefined;
    this.hash = createHash('sha256');
    this.chunkLength = 0;
    this.heldLength = 0;
    this.counts.scannedBytes += held.length;
    for (let position = 0; position < held.length; ) {
      const cut = this.scanner.scan(held, position);
      const end = cut < 0 ? held.length : cut;
      this.add(held.subarray(position, end));
      if (cut < 0) break;
      // No prediction inside the held bytes: the buffer they are in is the one that would receive
      // the next prediction's bytes. The next boundary in the file asks the guide again.
      chunks.push(this.endChunk(this.chunkHash()));
      position = cut;
    }
  }

  private add(bytes: Uint8Array): void {
    this.hash.update(bytes);
    this.chunkLength += bytes.length;
  }

  private hold(bytes: Uint8Array): void {
    this.held ??= Buffer.allocUnsafe(this.params.maxChunkBytes);
    this.held.set(bytes, this.heldLength);
    this.heldLength += bytes.length;
  }

  private chunkHash(): string {
    return this.hash.digest().toString('hex', 0, CHUNK_HASH_BYTES);
  }

  private endChunk(hash: string): Chunk {
    const chunk: Chunk = { offset: this.chunkOffset, length: this.chunkLength, hash };
    this.chunkOffset += this.chunkLength;
    this.chunkLength = 0;
    this.hash = createHash('sha256');
    return chunk;
  }
}

/** The chunks of a whole buffer (tests, small files). */
export function chunkBuffer(data: Uint8Array, params: ChunkerParams = DEFAULT_CHUNKER_PARAMS): Chunk[] {
  const chunker = new Chunker(params);
  return [...chunker.push(data), ...chunker.finish()];
}
