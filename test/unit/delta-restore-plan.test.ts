import { describe, expect, it } from 'vitest';
import { chunkBuffer, type Chunk } from '../../src/delta/chunker.js';
import { planLocalReuse } from '../../src/delta/restore-plan.js';
import { isAppError } from '../../src/errors.js';
import { pseudoRandomBytes } from '../helpers/delta-data.js';

const MIB = 1024 * 1024;
const OLD = pseudoRandomBytes(51, 24 * MIB);

/** The plan's runs and ranges must tile the file: each byte written exactly once. */
function expectTiling(plan: ReturnType<typeof planLocalReuse>, size: number): void {
  const pieces = [...plan.copies.map((copy) => [copy.targetStart, copy.targetStart + copy.length]), ...plan.fetches.map((range) => [range.start, range.end])].sort((a, b) => (a[0] as number) - (b[0] as number));
  let at = 0;
  for (const [start, end] of pieces) {
    expect(start).toBe(at);
    at = end as number;
  }
  expect(at).toBe(size);
  expect(plan.bytesLocal + plan.bytesFetched).toBe(size);
}

describe('planLocalReuse', () => {
  it('copies what the local version holds and fetches an edit in the middle and an appended tail', () => {
    const next = Buffer.concat([OLD.subarray(0, 10 * MIB), pseudoRandomBytes(52, 3000), OLD.subarray(10 * MIB + 500), pseudoRandomBytes(53, 1536)]);
    const plan = planLocalReuse(chunkBuffer(next), next.length, chunkBuffer(OLD));
    expectTiling(plan, next.length);
    expect(plan.fetches).toHaveLength(2);
    expect(plan.bytesFetched).toBeLessThan(2 * MIB);
    // Every copied run holds, in the local version, exactly the bytes it must have in the new one.
    for (const copy of plan.copies) expect(OLD.subarray(copy.sourceStart, copy.sourceStart + copy.length).equals(next.subarray(copy.targetStart, copy.targetStart + copy.length))).toBe(true);
  });

  it('fetches short local runs with the ranges around them', () => {
    const next = Buffer.concat([pseudoRandomBytes(54, 2 * MIB), OLD.subarray(4 * MIB, 4 * MIB + 300_000), pseudoRandomBytes(55, 2 * MIB), OLD.subarray(8 * MIB)]);
    const plan = planLocalReuse(chunkBuffer(next), next.length, chunkBuffer(OLD));
    expectTiling(plan, next.length);
    expect(plan.fetches).toHaveLength(1);
    expect(plan.copies.every((copy) => copy.length >= MIB)).toBe(true);
  });

  it('fetches everything from a local version that shares nothing', () => {
    const next = pseudoRandomBytes(56, 3 * MIB);
    const plan = planLocalReuse(chunkBuffer(next), next.length, chunkBuffer(OLD));
    expect(plan).toEqual({ copies: [], fetches: [{ start: 0, end: next.length }], bytesLocal: 0, bytesFetched: next.length });
  });

  it('refuses chunks that do not tile the file', () => {
    const chunks = chunkBuffer(OLD.subarray(0, MIB));
    const gap: Chunk[] = chunks.filter((_chunk, index) => index !== 1);
    for (const [target, size] of [[gap, MIB], [chunks, MIB + 1]] as const) {
      const error = (() => {
        try {
          planLocalReuse(target, size, chunkBuffer(OLD));
        } catch (caught) {
          return caught;
        }
        return undefined;
      })();
      expect(isAppError(error, 'integrity')).toBe(true);
    }
  });
});
