import { describe, expect, it } from 'vitest';
import { chunkBuffer } from '../../src/delta/chunker.js';
import { CHUNKER_VERSION, type ChunkerParams } from '../../src/delta/chunker-params.js';
import { planComposition, type ComposePart, type CompositionPlan } from '../../src/delta/compose-plan.js';
import { splitAtPlainParts, type AlignedComposePart } from '../../src/delta/plain-part-split.js';
import { partSizeFor } from '../../src/snapshot/digest.js';
import { expectValidPlan } from '../helpers/delta-plan-check.js';
import { pseudoRandomBytes } from '../helpers/delta-data.js';
import { seededRandom } from '../helpers/random.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const P = 8 * MIB;

const send = (start: number, end: number): ComposePart => ({ kind: 'send', targetStart: start, length: end - start });
/** A copy of base [sourceStart, ...) to target [start, end). */
const copy = (start: number, end: number, sourceStart = start): ComposePart => ({ kind: 'copy', sourceStart, sourceEnd: sourceStart + end - start, targetStart: start, length: end - start });

function planOf(parts: ComposePart[], minPartBytes = 5 * MIB): CompositionPlan {
  const bytesCopied = parts.reduce((sum, part) => sum + (part.kind === 'copy' ? part.length : 0), 0);
  const size = parts.reduce((sum, part) => sum + part.length, 0);
  return { parts, bytesCopied, bytesSent: size - bytesCopied, worthComposing: true, minPartBytes };
}

/** Each part as [kind, start, end, plain part index or '-'], in MiB where whole. */
function shape(parts: readonly AlignedComposePart[] | undefined): string[] | undefined {
  const mib = (bytes: number): string => (bytes % MIB === 0 ? `${bytes / MIB}M` : `${Math.floor(bytes / MIB)}M+${bytes % MIB}`);
  return parts?.map((part) => `${part.kind} ${mib(part.targetStart)}-${mib(part.targetStart + part.length)}${part.kind === 'copy' ? ` ${part.plainPartIndex ?? '-'}` : ''}`);
}

/** Plain parts [from, to) of P as the split names them. */
const plainParts = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `copy ${(from + i) * 8}M-${(from + i + 1) * 8}M ${from + i}`);

/** Whatever the plan, the split writes the same bytes: the same coverage, every copy from the same base offset as in the plan. */
function expectSameBytes(plan: CompositionPlan, parts: readonly AlignedComposePart[], sizeBytes: number, partSizeBytes: number): void {
  const sourceAt = (target: number): number | undefined => {
    const part = plan.parts.find((p) => p.targetStart <= target && target < p.targetStart + p.length);
    return part?.kind === 'copy' ? part.sourceStart + (target - part.targetStart) : undefined;
  };
  let offset = 0;
  for (const part of parts) {
    expect(part.targetStart).toBe(offset);
    if (part.kind === 'copy') {
      expect(sourceAt(part.targetStart)).toBe(part.sourceStart);
      expect(sourceAt(part.targetStart + part.length - 1)).toBe(part.sourceEnd - 1);
      if (part.plainPartIndex !== undefined) {
        expect(part.targetStart).toBe(part.plainPartIndex * partSizeBytes);
        expect(part.length).toBe(Math.min(partSizeBytes, sizeBytes - part.targetStart));
      }
    } else {
      expect(sourceAt(part.targetStart)).toBeUndefined();
    }
    offset += part.length;
  }
  expect(offset).toBe(sizeBytes);
}

describe('splitAtPlainParts', () => {
  it('append: every whole part of the copied run is a plain part; the short piece before the send joins the part before it', () => {
    const size = 1024 * MIB + 1536;
    const plan = planOf([copy(0, 1020 * MIB), send(1020 * MIB, size)]);
    const parts = splitAtPlainParts(plan, { sizeBytes: size, partSizeBytes: P });
    expect(shape(parts)).toEqual([...plainParts(0, 126), 'copy 1008M-1020M -', 'send 1020M-1024M+1536']);
    expectSameBytes(plan, parts ?? [], size, P);
  });

  it('header change: the short piece after the sent header joins the first plain part after it', () => {
    const size = 1024 * MIB + 1536;
    const plan = planOf([send(0, 5 * MIB), copy(5 * MIB, 1020 * MIB), send(1020 * MIB, size)]);
    const parts = splitAtPlainParts(plan, { sizeBytes: size, partSizeBytes: P });
    expect(shape(parts)).toEqual(['send 0M-5M', 'copy 5M-16M -', ...plainParts(2, 126), 'copy 1008M-1020M -', 'send 1020M-1024M+1536']);
    expectSameBytes(plan, parts ?? [], size, P);
  });

  it('edit in the middle: pieces of at least the minimum keep their own part; the copies come from shifted base offsets', () => {
    const size = 1024 * MIB + 3;
    // Three bytes inserted at 500 MiB + 3: the second run copies base bytes from 3 bytes earlier.
    const at = 500 * MIB + 3;
    const plan = planOf([copy(0, at), send(at, at + 5 * MIB), copy(at + 5 * MIB, size, at + 5 * MIB - 3)]);
    const parts = splitAtPlainParts(plan, { sizeBytes: size, partSizeBytes: P });
    expect(shape(parts)).toEqual([...plainParts(0, 61), 'copy 488M-500M+3 -', 'send 500M+3-505M+3', 'copy 505M+3-512M -', ...plainParts(64, 128), 'copy 1024M-1024M+3 128']);
    expect(parts?.at(-1)).toMatchObject({ sourceStart: 1024 * MIB - 3, sourceEnd: 1024 * MIB });
    expectSameBytes(plan, parts ?? [], size, P);
  });

  it('shrink: a file copied from the middle of a larger base, its short last plain part included', () => {
    const size = 600 * MIB + 100;
    const plan = planOf([copy(0, size, 100 * MIB)]);
    const parts = splitAtPlainParts(plan, { sizeBytes: size, partSizeBytes: P });
    expect(shape(parts)).toEqual([...plainParts(0, 75), 'copy 600M-600M+100 75']);
    expect(parts?.[0]).toMatchObject({ sourceStart: 100 * MIB, sourceEnd: 108 * MIB });
    expectSameBytes(plan, parts ?? [], size, P);
  });

  it('runs shorter than a part stay as planned; with no whole plain part anywhere, undefined (the plan is used)', () => {
    const short = planOf([send(0, 6 * MIB), copy(6 * MIB, 13 * MIB), send(13 * MIB, 20 * MIB)]);
    expect(splitAtPlainParts(short, { sizeBytes: 20 * MIB, partSizeBytes: P })).toBeUndefined();
    const mixed = planOf([send(0, 6 * MIB), copy(6 * MIB, 13 * MIB), send(13 * MIB, 20 * MIB), copy(20 * MIB, 40 * MIB)]);
    const parts = splitAtPlainParts(mixed, { sizeBytes: 40 * MIB, partSizeBytes: P });
    expect(shape(parts)).toEqual(['send 0M-6M', 'copy 6M-13M -', 'send 13M-20M', 'copy 20M-32M -', 'copy 32M-40M 4']);
  });

  it('a head and a tail both short around one plain part: the run is one part, so nothing is reused', () => {
    const plan = planOf([send(0, 6 * MIB), copy(6 * MIB, 19 * MIB), send(19 * MIB, 25 * MIB)]);
    expect(splitAtPlainParts(plan, { sizeBytes: 25 * MIB, partSizeBytes: P })).toBeUndefined();
  });

  it('a file of exactly k parts: the last plain part ends the file', () => {
    const size = 64 * MIB;
    const plan = planOf([send(0, 5 * MIB), copy(5 * MIB, size)]);
    const parts = splitAtPlainParts(plan, { sizeBytes: size, partSizeBytes: P });
    expect(shape(parts)).toEqual(['send 0M-5M', 'copy 5M-16M -', ...plainParts(2, 8)]);
    expect(size / P - 1).toBe(7);
  });

  it('runs the plan split for the maximum part size are joined again before the cut', () => {
    const plan = planOf([copy(0, 20 * MIB), copy(20 * MIB, 40 * MIB), send(40 * MIB, 46 * MIB)]);
    const parts = splitAtPlainParts(plan, { sizeBytes: 46 * MIB, partSizeBytes: P });
    expect(shape(parts)).toEqual([...plainParts(0, 5), 'send 40M-46M']);
  });

  it('the 10,000-part limit: a split of exactly 10,000 parts is taken, one that would need 10,001 is not', () => {
    const size = 10_000 * P;
    expect(partSizeFor(size)).toBe(P);
    const fits = splitAtPlainParts(planOf([send(0, 5 * MIB), copy(5 * MIB, size)]), { sizeBytes: size, partSizeBytes: P });
    expect(fits?.length).toBe(10_000);
    const at = 5000 * P + 5 * MIB;
    const tooMany = planOf([send(0, 5 * MIB), copy(5 * MIB, at), send(at, at + 5 * MIB), copy(at + 5 * MIB, size)]);
    expect(splitAtPlainParts(tooMany, { sizeBytes: size, partSizeBytes: P }, { maxParts: 10_001 })?.length).toBe(10_001);
    expect(splitAtPlainParts(tooMany, { sizeBytes: size, partSizeBytes: P })).toBeUndefined();
  });

  it('a merged piece above the maximum part size: undefined', () => {
    const plan = planOf([send(0, 6 * MIB), copy(6 * MIB, 40 * MIB)]);
    expect(splitAtPlainParts(plan, { sizeBytes: 40 * MIB, partSizeBytes: P }, { maxPartBytes: 9 * MIB })).toBeUndefined();
    expect(splitAtPlainParts(plan, { sizeBytes: 40 * MIB, partSizeBytes: P }, { maxPartBytes: 16 * MIB })).toBeDefined();
  });

  it('a layout that does not match the plan (another size): undefined', () => {
    const plan = planOf([copy(0, 40 * MIB), send(40 * MIB, 46 * MIB)]);
    expect(splitAtPlainParts(plan, { sizeBytes: 47 * MIB, partSizeBytes: P })).toBeUndefined();
  });
});

describe('splitAtPlainParts on plans of random edits', () => {
  const SMALL_CHUNKS: ChunkerParams = { minChunkBytes: 1 * KIB, normalChunkBytes: 4 * KIB, maxChunkBytes: 16 * KIB };
  const between = (random: () => number, low: number, high: number): number => low + Math.floor(random() * (high - low + 1));

  /** Splits one random edit; undefined when the split left the plan as it was. */
  function splitRandomEdit(seed: number): AlignedComposePart[] | undefined {
    const random = seededRandom(seed);
    const base = pseudoRandomBytes(seed, between(random, 256 * KIB, 3 * 1024 * KIB));
    const at = between(random, 0, base.length);
    const fresh = pseudoRandomBytes(seed + 1, between(random, 1, 96 * KIB));
    const edits = [
      Buffer.concat([base.subarray(0, at), fresh, base.subarray(at)]),
      Buffer.concat([fresh.subarray(0, 64), base.subarray(64), fresh]),
      Buffer.concat([base, fresh]),
      base.subarray(between(random, 0, at)),
    ];
    const next = edits[between(random, 0, edits.length - 1)] as Buffer;
    const minPartBytes = between(random, 2, 8) * 16 * KIB;
    const signature = { chunkerVersion: CHUNKER_VERSION, params: SMALL_CHUNKS, size: base.length, sha256: '0'.repeat(64), chunks: chunkBuffer(base, SMALL_CHUNKS) };
    const plan = planComposition(chunkBuffer(next, SMALL_CHUNKS), next.length, signature, { minPartBytes });
    const partSizeBytes = minPartBytes + between(random, 0, 4 * minPartBytes);
    const parts = splitAtPlainParts(plan, { sizeBytes: next.length, partSizeBytes }, { minPartBytes, maxPartBytes: 5 * 1024 ** 3, maxParts: 10_000 });
    if (parts === undefined) return undefined;
    expectValidPlan(planOf(parts, plan.minPartBytes), next.length, base.length, { minPartBytes, maxPartBytes: 5 * 1024 ** 3, maxParts: 10_000 }, { base, next });
    expectSameBytes(plan, parts, next.length, partSizeBytes);
    expect(parts.some((part) => part.kind === 'copy' && part.plainPartIndex !== undefined)).toBe(true);
    return parts;
  }

  it('the same bytes within S3 rules, plain parts exactly where the layout has them (60 seeds, most of them split)', () => {
    const split = Array.from({ length: 60 }, (_, i) => splitRandomEdit(7000 + i)).filter((parts) => parts !== undefined);
    expect(split.length).toBeGreaterThan(30);
  });
});
