/**
 * The gear table of the content-defined chunker: one pseudo-random 32-bit value per byte value.
 * Chunk boundaries, and so every stored signature, depend on these exact values: the table is
 * generated from a fixed seed by a fixed counter-based generator, never from Math.random, so a
 * signature computed on one machine today matches one computed on another machine tomorrow.
 * Changing the seed or the generator is a new chunker version (CHUNKER_VERSION).
 */

/** 'mems' in ASCII: any fixed value works, this one is pinned by the tests. */
export const GEAR_SEED = 0x6d656d73;

/** 2^32 divided by the golden ratio: the Weyl-sequence step that spreads successive counters over the 32-bit range. */
const WEYL_STEP = 0x9e3779b9;

/**
 * The lowbias32 integer finalizer (two multiply-xorshift rounds, constants published by
 * C. Wellons): every input bit flips about half of the output bits, so consecutive counters give
 * unrelated values. Math.imul keeps the products in 32 bits, as in the C original.
 */
function mix32(value: number): number {
  let x = value | 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x | 0;
}

/**
 * Entry i is mix32(seed + (i + 1) * WEYL_STEP), all in 32-bit arithmetic (a SplitMix-style
 * generator). Stored signed (Int32Array) because the rolling hash runs in V8's int32 fast path.
 */
export function gearTable(seed: number = GEAR_SEED): Int32Array {
  const table = new Int32Array(256);
  for (let i = 0; i < 256; i += 1) table[i] = mix32((seed + Math.imul(i + 1, WEYL_STEP)) | 0);
  return table;
}

export const GEAR: Int32Array = gearTable();
