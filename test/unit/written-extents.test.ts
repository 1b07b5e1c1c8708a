import { describe, expect, it } from 'vitest';
import { WrittenExtents } from '../../src/restore/written-extents.js';

describe('WrittenExtents', () => {
  it.each([
    ['in order', [[0, 4], [4, 4], [8, 2]], [4, 8, 10]],
    ['the first extent last', [[4, 4], [8, 2], [0, 4]], [0, 0, 10]],
    ['a gap closed in the middle', [[0, 2], [6, 2], [2, 4]], [2, 2, 8]],
    ['a later extent that leaves a gap open', [[0, 2], [4, 2], [8, 2], [2, 2]], [2, 2, 2, 6]],
    ['an empty extent', [[0, 0], [0, 3]], [0, 3]],
  ])('reports the gap-free prefix: %s', (_label, extents, prefixes) => {
    const written = new WrittenExtents();
    expect(extents.map(([start, length]) => written.add(start as number, length as number))).toEqual(prefixes);
    expect(written.prefixBytes).toBe(prefixes.at(-1));
  });

  it('refuses an extent written twice, inside the prefix or past it', () => {
    const written = new WrittenExtents();
    written.add(0, 4);
    written.add(8, 4);
    expect(() => written.add(2, 2)).toThrow(RangeError);
    expect(() => written.add(8, 1)).toThrow(RangeError);
  });

  it('refuses what is not a byte extent', () => {
    const written = new WrittenExtents();
    expect(() => written.add(-1, 2)).toThrow(RangeError);
    expect(() => written.add(0, 1.5)).toThrow(RangeError);
  });
});
