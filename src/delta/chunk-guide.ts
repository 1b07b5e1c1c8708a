import type { Chunk } from './chunker.js';
import { CHUNKER_VERSION, sameChunkerParams, type ChunkerParams } from './chunker-params.js';
import type { Signature } from './signature.js';

/**
 * The chunks of a file's previous version, as predictions of where the new version's next
 * boundary falls. A boundary depends only on the bytes of the chunk it ends (the rolling hash
 * restarts at every boundary): a chunk whose bytes hash to a previous chunk's hash ends where that
 * chunk ended, so a chunker that finds it need not roll its hash over those bytes. Memory service
 * backups are the previous store plus one change, so nearly every chunk is found this way.
 */

export interface ChunkPrediction {
  /** Index of the previous version's chunk. */
  index: number;
  length: number;
  hash: string;
}

export class ChunkGuide {
  private readonly firstIndexByHash = new Map<string, number>();

  private constructor(
    private readonly chunks: readonly Chunk[],
    private readonly maxChunkBytes: number,
  ) {
    for (const [index, chunk] of chunks.entries()) if (!this.firstIndexByHash.has(chunk.hash)) this.firstIndexByHash.set(chunk.hash, index);
  }

  /** A guide from a signature cut the way `params` cut; undefined when it was cut otherwise (its boundaries predict nothing). */
  static from(signature: Signature, params: ChunkerParams): ChunkGuide | undefined {
    if (signature.chunkerVersion !== CHUNKER_VERSION || !sameChunkerParams(signature.params, params)) return undefined;
    return new ChunkGuide(signature.chunks, params.maxChunkBytes);
  }

  /** The chunk expected at the start of the file. */
  first(): ChunkPrediction | undefined {
    return this.at(0);
  }

  /**
   * The chunk expected after one that hashed to `hash`: the one after the chunk that was
   * predicted for it (`predicted`, which keeps a run of repeated chunks in order), else after the
   * first chunk with that hash.
   */
  after(hash: string, predicted: ChunkPrediction | undefined): ChunkPrediction | undefined {
    const index = predicted?.index ?? this.firstIndexByHash.get(hash);
    return index === undefined ? undefined : this.at(index + 1);
  }

  private at(index: number): ChunkPrediction | undefined {
    // The last chunk ended where its file did, not where its bytes chose: it predicts no boundary.
    if (index >= this.chunks.length - 1) return undefined;
    const chunk = this.chunks[index];
    // A signature comes from the bucket: a length no chunker of these sizes cuts is not followed.
    if (chunk === undefined || chunk.length < 1 || chunk.length > this.maxChunkBytes) return undefined;
    return { index, length: chunk.length, hash: chunk.hash };
  }
}
