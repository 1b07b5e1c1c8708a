import { AppError } from '../errors.js';

/**
 * The parameters of memsync's content-defined chunker. Boundaries, and so every stored
 * signature, depend on them: a signature records them, and only chunks cut the same way match.
 */

const KIB = 1024;

/**
 * Sizes, chosen for composing S3 objects from 5 MiB parts. Reuse is quantized by the part size
 * anyway: an edit costs one 5 MiB part whether chunks are 64 or 128 KiB, and the ends of a copied
 * run lose at most one max chunk each (1 MiB in all, still inside that part). 128 KiB chunks halve
 * the signature of 64 KiB ones (a 1 GiB file: about 7,000 chunks, 20 bytes each) and the per-chunk
 * hashing overhead; chunks near 1 MiB would start to cut into the copied runs between close edits.
 * The minimum is a quarter of the normal size: bytes below it are skipped unread, which is a good
 * part of the chunker's speed, and it keeps a boundary from following another within a few bytes.
 */
export const MIN_CHUNK_BYTES = 32 * KIB;
export const NORMAL_CHUNK_BYTES = 128 * KIB;
export const MAX_CHUNK_BYTES = 512 * KIB;

/** The gear table, masks and skipping of this version; stored in every signature. */
export const CHUNKER_VERSION = 1;

/** Chunk hashes are the first 16 bytes of SHA-256 (see Chunk.hash in chunker.ts). */
export const CHUNK_HASH_BYTES = 16;

/** Bytes a 32-bit gear hash remembers: each byte shifts it left by one bit. */
export const WINDOW_BYTES = 32;

/**
 * Normalization level 2 of FastCDC: the mask before the normal size has two more bits than
 * log2(normal), the one after it two fewer. Higher levels make sizes more even but cut less on content.
 */
export const NORMALIZATION_BITS = 2;

export interface ChunkerParams {
  minChunkBytes: number;
  /** A power of two: the masks have log2(normal) ± 2 bits. */
  normalChunkBytes: number;
  maxChunkBytes: number;
}

export const DEFAULT_CHUNKER_PARAMS: Readonly<ChunkerParams> = Object.freeze({
  minChunkBytes: MIN_CHUNK_BYTES,
  normalChunkBytes: NORMAL_CHUNK_BYTES,
  maxChunkBytes: MAX_CHUNK_BYTES,
});

export function sameChunkerParams(a: ChunkerParams, b: ChunkerParams): boolean {
  return a.minChunkBytes === b.minChunkBytes && a.normalChunkBytes === b.normalChunkBytes && a.maxChunkBytes === b.maxChunkBytes;
}

/** Other sizes exist for tests (small chunks on small data); a config error when they cannot work. */
export function validateChunkerParams(params: ChunkerParams): void {
  const { minChunkBytes: min, normalChunkBytes: normal, maxChunkBytes: max } = params;
  const normalBits = Math.log2(normal);
  const valid =
    Number.isInteger(min) &&
    Number.isInteger(max) &&
    Number.isInteger(normalBits) &&
    normalBits >= 8 &&
    normalBits + NORMALIZATION_BITS <= 30 &&
    min > WINDOW_BYTES &&
    min < normal &&
    normal < max &&
    max <= 2 ** 30;
  if (!valid) throw new AppError('config', `invalid chunker sizes: min ${min}, normal ${normal}, max ${max} bytes`);
}
