import { createHash, type Hash } from 'node:crypto';
import { BoundaryScanner } from './boundary-scanner.js';
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

/**
 * A file fed in order, as buffers of any size, and its chunks out. Holds no file data: each piece
 * of a pushed buffer goes straight into the current chunk's SHA-256, so memory stays a few hash
 * states whatever the chunk size, and the caller can run the same buffers through its whole-file
 * SHA-256 and part MD5s in the same read pass.
 */
export class Chunker {
  private readonly scanner: BoundaryScanner;
  private hash: Hash = createHash('sha256');
  private chunkOffset = 0;
  private chunkLength = 0;
  private finished = false;

  constructor(params: ChunkerParams = DEFAULT_CHUNKER_PARAMS) {
    this.scanner = new BoundaryScanner(params);
  }

  /** The chunks that end inside `data`, in order. `data` is not kept and may be reused by the caller. */
  push(data: Uint8Array): Chunk[] {
    if (this.finished) throw new Error('Chunker.push after finish()');
    const chunks: Chunk[] = [];
    for (let position = 0; position < data.length; ) {
      const cut = this.scanner.scan(data, position);
      const end = cut < 0 ? data.length : cut;
      this.hash.update(data.subarray(position, end));
      this.chunkLength += end - position;
      if (cut < 0) break;
      chunks.push(this.endChunk());
      position = cut;
    }
    return chunks;
  }

  /** The last, possibly short, chunk; none for an empty file. */
  finish(): Chunk[] {
    if (this.finished) throw new Error('Chunker.finish called twice');
    this.finished = true;
    return this.chunkLength > 0 ? [this.endChunk()] : [];
  }

  private endChunk(): Chunk {
    const chunk: Chunk = {
      offset: this.chunkOffset,
      length: this.chunkLength,
      hash: this.hash.digest().toString('hex', 0, CHUNK_HASH_BYTES),
    };
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
