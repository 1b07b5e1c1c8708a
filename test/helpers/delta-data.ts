/**
 * Seeded pseudo-random bytes for the delta tests and the chunker bench: xorshift32 (Marsaglia),
 * four bytes per step, so many MiB are made in milliseconds and the same seed gives the same bytes
 * on every machine (little-endian assumed, as on every machine memsync runs on).
 */
export function pseudoRandomBytes(seed: number, length: number): Buffer {
  const words = new Uint32Array(Math.ceil(length / 4));
  let x = seed >>> 0 || 0x9e3779b9; // xorshift32 is stuck at zero
  for (let i = 0; i < words.length; i += 1) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return Buffer.from(words.buffer, 0, length);
}
