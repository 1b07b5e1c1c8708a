import { NORMALIZATION_BITS, validateChunkerParams, WINDOW_BYTES, type ChunkerParams } from './chunker-params.js';
import { GEAR } from './gear-table.js';

/**
 * Chunk boundaries in the FastCDC style (Xia et al., "FastCDC: a Fast and Efficient
 * Content-Defined Chunking Approach", USENIX ATC 2016): a gear rolling hash, cut-point skipping
 * below the minimum size, and normalized chunking with a harder mask before the normal size and
 * an easier one after it, so sizes cluster around the normal size. A boundary depends only on the
 * 32 bytes before it and the distance from the previous boundary: an edit moves the boundaries of
 * a chunk or two, and the rest of the file is cut as before.
 */

/** The word path reads four bytes per load and takes them apart in little-endian order. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Mask of the `bits` most significant bits: they depend on the most bytes of the window. */
function topBitsMask(bits: number): number {
  return ~(-1 >>> bits) | 0;
}

/** 32-bit words over the whole ArrayBuffer of `data`, or undefined where the word path cannot be used. */
function wordView(data: Uint8Array): Uint32Array | undefined {
  if (!LITTLE_ENDIAN || data.length < 64) return undefined;
  return new Uint32Array(data.buffer, 0, data.buffer.byteLength >>> 2);
}

/**
 * Finds boundaries in a stream of buffers, keeping only the rolling hash and the length of the
 * current chunk between calls, so boundaries do not depend on how the stream is split.
 */
export class BoundaryScanner {
  private readonly rollFromBytes: number;
  private readonly minBytes: number;
  private readonly normalBytes: number;
  private readonly maxBytes: number;
  private readonly hardMask: number;
  private readonly easyMask: number;
  /** Bytes of the current chunk seen before the next scan. */
  private chunkLength = 0;
  private fingerprint = 0;

  constructor(params: ChunkerParams) {
    validateChunkerParams(params);
    this.minBytes = params.minChunkBytes;
    this.normalBytes = params.normalChunkBytes;
    this.maxBytes = params.maxChunkBytes;
    // Bytes below the minimum are not even hashed (cut-point skipping); rolling starts one window
    // before it so the first candidate boundary already sees a full window.
    this.rollFromBytes = this.minBytes - WINDOW_BYTES;
    const normalBits = Math.log2(this.normalBytes);
    this.hardMask = topBitsMask(normalBits + NORMALIZATION_BITS);
    this.easyMask = topBitsMask(normalBits - NORMALIZATION_BITS);
  }

  /**
   * The index in `data` just after the next boundary at or after `from`, or -1 when `data` ends
   * first (the state carries over to the next buffer). After a boundary, call again from it.
   */
  scan(data: Uint8Array, from: number): number {
    const end = data.length;
    // Virtual index of the chunk's first byte (negative when it began in an earlier buffer);
    // the byte at chunkStart + L - 1 makes the chunk L bytes long.
    const chunkStart = from - this.chunkLength;
    const words = wordView(data);
    let i = Math.max(from, chunkStart + this.rollFromBytes);

    let stop = Math.min(end, chunkStart + this.minBytes - 1);
    let fp = this.fingerprint;
    for (; i < stop; i += 1) fp = ((fp << 1) + GEAR[data[i]!]!) | 0;
    this.fingerprint = fp;

    stop = Math.min(end, chunkStart + this.normalBytes - 1);
    let hit = this.roll(data, words, i, stop, this.hardMask);
    if (hit >= 0) return this.cutAfter(hit);
    i = Math.max(i, stop);

    stop = Math.min(end, chunkStart + this.maxBytes - 1);
    hit = this.roll(data, words, i, stop, this.easyMask);
    if (hit >= 0) return this.cutAfter(hit);
    i = Math.max(i, stop);

    if (i < end) return this.cutAfter(i); // the byte that makes the chunk max bytes long
    this.chunkLength = end - chunkStart;
    return -1;
  }

  /**
   * Rolls bytes [from, stop) into the hash; the index of the first byte after which the hash has
   * no bit of `mask` set, or -1. The per-byte work is a shift, an add, a table load and a mask
   * test in int32 arithmetic, with no call or allocation; the middle loop loads four bytes at a
   * time (aligned words), which on V8 is about twice as fast as one bounds-checked load per byte.
   */
  private roll(data: Uint8Array, words: Uint32Array | undefined, from: number, stop: number, mask: number): number {
    // A region that ended in an earlier buffer gives a negative stop, which >>> would make huge.
    if (from >= stop) return -1;
    const gear = GEAR;
    let fp = this.fingerprint;
    let i = from;
    let hit = -1;
    if (words !== undefined) {
      const base = data.byteOffset;
      for (; i < stop && ((base + i) & 3) !== 0; i += 1) {
        fp = ((fp << 1) + gear[data[i]!]!) | 0;
        if ((fp & mask) === 0) return this.keep(fp, i);
      }
      const lastWord = (base + stop) >>> 2;
      for (let w = (base + i) >>> 2; w < lastWord; w += 1) {
        const word = words[w]!;
        fp = ((fp << 1) + gear[word & 0xff]!) | 0;
        if ((fp & mask) === 0) return this.keep(fp, w * 4 - base);
        fp = ((fp << 1) + gear[(word >>> 8) & 0xff]!) | 0;
        if ((fp & mask) === 0) return this.keep(fp, w * 4 - base + 1);
        fp = ((fp << 1) + gear[(word >>> 16) & 0xff]!) | 0;
        if ((fp & mask) === 0) return this.keep(fp, w * 4 - base + 2);
        fp = ((fp << 1) + gear[word >>> 24]!) | 0;
        if ((fp & mask) === 0) return this.keep(fp, w * 4 - base + 3);
        i += 4;
      }
    }
    for (; i < stop; i += 1) {
      fp = ((fp << 1) + gear[data[i]!]!) | 0;
      if ((fp & mask) === 0) {
        hit = i;
        break;
      }
    }
    return this.keep(fp, hit);
  }

  private keep(fp: number, result: number): number {
    this.fingerprint = fp;
    return result;
  }

  private cutAfter(index: number): number {
    this.fingerprint = 0;
    this.chunkLength = 0;
    return index + 1;
  }
}
