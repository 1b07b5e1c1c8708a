import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { copySourceRange, planComposition, S3_MAX_PART_BYTES, S3_MAX_PARTS, S3_MIN_PART_BYTES, type CompositionOptions } from '../../src/delta/compose-plan.js';
import { chunkBuffer, type Chunk } from '../../src/delta/chunker.js';
import { DEFAULT_CHUNKER_PARAMS, MAX_CHUNK_BYTES } from '../../src/delta/chunker-params.js';
import { createSignature, type Signature } from '../../src/delta/signature.js';
import { isAppError } from '../../src/errors.js';
import { pseudoRandomBytes } from '../helpers/delta-data.js';
import { expectValidPlan } from '../helpers/delta-plan-check.js';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const S3 = { minPartBytes: S3_MIN_PART_BYTES, maxPartBytes: S3_MAX_PART_BYTES, maxParts: S3_MAX_PARTS };

const signatureOf = (data: Buffer): Signature => createSignature(chunkBuffer(data), data.length, createHash('sha256').update(data).digest('hex'));

/** Plans `next` against `base` with real chunks, and checks the plan against the bytes. */
function plan(base: Buffer, next: Buffer, options: CompositionOptions = {}, baseSignature = signatureOf(base)) {
  const result = planComposition(chunkBuffer(next), next.length, baseSignature, options);
  expectValidPlan(result, next.length, base.length, S3, { base, next });
  return result;
}

const kinds = (p: ReturnType<typeof plan>): string => p.parts.map((part) => part.kind).join(',');

describe('planComposition on real chunks (48 MiB file, 5 MiB parts)', () => {
  const base = pseudoRandomBytes(2024, 48 * MIB);
  const baseSignature = signatureOf(base);
  const at = 20 * MIB + 12_345;
  const noise = (n: number): Buffer => pseudoRandomBytes(n + 7, n);
  const cases: [string, Buffer, (p: ReturnType<typeof plan>) => void][] = [
    ['an append costs only the new tail', Buffer.concat([base, noise(MIB)]), (p) => {
      expect(kinds(p)).toBe('copy,send');
      expect(p.bytesSent).toBeGreaterThan(MIB);
      expect(p.bytesSent).toBeLessThanOrEqual(MIB + MAX_CHUNK_BYTES);
    }],
    ['an insertion in the middle costs one part', Buffer.concat([base.subarray(0, at), noise(1000), base.subarray(at)]), (p) => {
      expect(kinds(p)).toBe('copy,send,copy');
      expect(p.bytesSent).toBe(S3_MIN_PART_BYTES);
    }],
    ['a deletion in the middle costs one part', Buffer.concat([base.subarray(0, at), base.subarray(at + 777)]), (p) => {
      expect(kinds(p)).toBe('copy,send,copy');
      expect(p.bytesSent).toBe(S3_MIN_PART_BYTES);
    }],
    ['a record edited in the middle costs one part', Buffer.concat([base.subarray(0, at), noise(100), base.subarray(at + 100)]), (p) => {
      expect(p.bytesSent).toBe(S3_MIN_PART_BYTES);
    }],
    ['two edits 2 MiB apart cost one part', Buffer.concat([base.subarray(0, at), noise(10), base.subarray(at + 10, at + 2 * MIB), noise(20), base.subarray(at + 2 * MIB + 20)]), (p) => {
      expect(p.bytesSent).toBe(S3_MIN_PART_BYTES);
    }],
    ['two edits 20 MiB apart cost two parts', Buffer.concat([base.subarray(0, 10 * MIB), noise(10), base.subarray(10 * MIB + 10, 30 * MIB), noise(10), base.subarray(30 * MIB + 10)]), (p) => {
      expect(kinds(p)).toBe('copy,send,copy,send,copy');
      expect(p.bytesSent).toBe(2 * S3_MIN_PART_BYTES);
    }],
    ['a header rewritten at the start costs one part', Buffer.concat([noise(64), base.subarray(64)]), (p) => {
      expect(kinds(p)).toBe('send,copy');
      expect(p.bytesSent).toBe(S3_MIN_PART_BYTES);
    }],
    ['a file cut short costs at most a chunk', base.subarray(0, 30 * MIB + 5), (p) => {
      expect(p.parts[0]).toMatchObject({ kind: 'copy', sourceStart: 0, targetStart: 0 });
      expect(p.bytesSent).toBeLessThanOrEqual(MAX_CHUNK_BYTES);
    }],
    ['a file that lost its first 10 MiB costs at most a part', base.subarray(10 * MIB + 3), (p) => {
      expect(p.bytesSent).toBeLessThanOrEqual(S3_MIN_PART_BYTES);
    }],
    ['a file with nothing in common is all sent, in one part', pseudoRandomBytes(99, 40 * MIB), (p) => {
      expect(p.parts).toEqual([{ kind: 'send', targetStart: 0, length: 40 * MIB }]);
      expect(p.worthComposing).toBe(false);
    }],
    ['an identical file is one copy of the whole base', base, (p) => {
      expect(p.parts).toEqual([{ kind: 'copy', sourceStart: 0, sourceEnd: base.length, targetStart: 0, length: base.length }]);
      expect(p.bytesSent).toBe(0);
    }],
  ];
  it.each(cases)('%s', (_name, next, expectation) => {
    const result = plan(base, next, {}, baseSignature);
    expectation(result);
    if (result.bytesCopied > 0.5 * next.length) expect(result.worthComposing).toBe(true);
  });

  it('keeps one run through repeated blocks (zero-filled pages) instead of jumping to their first copy', () => {
    const random = (seed: number): Buffer => pseudoRandomBytes(seed, 6 * MIB);
    const repeated = Buffer.concat([random(1), Buffer.alloc(3 * MIB), random(2), Buffer.alloc(3 * MIB), random(3)]);
    const result = plan(repeated, Buffer.concat([Buffer.from('new header'), repeated.subarray(10)]));
    expect(kinds(result)).toBe('send,copy');
    expect(result.bytesSent).toBe(S3_MIN_PART_BYTES);
  });

  it('names the S3 copy range with an inclusive end', () => {
    expect(copySourceRange({ kind: 'copy', sourceStart: 10, sourceEnd: 20, targetStart: 0, length: 10 })).toBe('bytes=10-19');
  });
});

describe('planComposition on a metadata.json-like document', () => {
  /** JSON records of repetitive text, as the memory service writes: low entropy must still cut on content. */
  function records(count: number, edited = -1): Buffer {
    const words = ['tea', 'coffee', 'morning', 'evening', 'prefers', 'the user', 'remembers', 'project'];
    const lines: string[] = [];
    for (let i = 0; i < count; i += 1) {
      const text = Array.from({ length: 6 + (i % 5) }, (_, k) => words[(i * 7 + k * 3) % words.length]).join(' ');
      lines.push(JSON.stringify({ id: `m-${i}`, text: i === edited ? `${text} (edited)` : text, vector_id: i }));
    }
    return Buffer.from(`{"memories":[\n${lines.join(',\n')}\n]}\n`);
  }

  it('cuts text on content and re-sends about one part for an edited record', () => {
    const base = records(300_000);
    const chunks = chunkBuffer(base);
    expect(chunks.filter((c) => c.length === MAX_CHUNK_BYTES).length).toBeLessThan(chunks.length / 4);
    const result = plan(base, records(300_000, 150_000));
    expect(result.parts.map((p) => p.kind)).toEqual(['copy', 'send', 'copy']);
    expect(result.bytesSent).toBe(S3_MIN_PART_BYTES);
  });
});

describe('planComposition on small files', () => {
  it('is not worth composing a file below one part, or one that copies less than the threshold', () => {
    const small = pseudoRandomBytes(5, 3 * MIB);
    const edited = Buffer.concat([small.subarray(0, MIB), Buffer.from('x'), small.subarray(MIB + 1)]);
    expect(plan(small, edited).worthComposing).toBe(false);
    expect(plan(small, small).worthComposing).toBe(false);
    const twelve = pseudoRandomBytes(6, 12 * MIB);
    expect(plan(twelve, Buffer.concat([twelve.subarray(0, 6 * MIB), Buffer.from('x'), twelve.subarray(6 * MIB + 1)])).worthComposing).toBe(false);
  });

  it('has no part for an empty file', () => {
    expect(planComposition([], 0, signatureOf(pseudoRandomBytes(1, MIB)))).toEqual({ parts: [], bytesCopied: 0, bytesSent: 0, worthComposing: false, minPartBytes: S3_MIN_PART_BYTES });
  });
});

/** Chunks of fixed size named by a label per chunk: sizes only, no data, for files of gigabytes. */
function synthetic(labels: readonly string[], chunkBytes: number, lastBytes = chunkBytes): Chunk[] {
  return labels.map((hash, i) => ({ offset: i * chunkBytes, length: i === labels.length - 1 ? lastBytes : chunkBytes, hash }));
}
const labels = (count: number, prefix = 'b'): string[] => Array.from({ length: count }, (_, i) => `${prefix}${i}`);
function syntheticSignature(chunks: Chunk[]): Signature {
  const size = chunks.reduce((sum, c) => sum + c.length, 0);
  return { chunkerVersion: 1, params: { ...DEFAULT_CHUNKER_PARAMS }, size, sha256: '0'.repeat(64), chunks };
}

describe('planComposition on synthetic chunk lists of large files', () => {
  const chunk = 128 * 1024;
  const count = (2 * GIB) / chunk; // 16,384 chunks, a 2 GiB file
  const base = syntheticSignature(synthetic(labels(count), chunk));

  it('copies a 2 GiB file around one edit and sends one part', () => {
    const next = labels(count);
    next[9000] = 'edited';
    const result = planComposition(synthetic(next, chunk), 2 * GIB, base);
    expectValidPlan(result, 2 * GIB, base.size, S3);
    expect(result.parts.map((p) => p.kind)).toEqual(['copy', 'send', 'copy']);
    expect(result.bytesSent).toBe(S3_MIN_PART_BYTES);
    expect(result.worthComposing).toBe(true);
  });

  it('sends only a 100 KiB tail appended to a 2 GiB file', () => {
    const next = synthetic([...labels(count), 'tail'], chunk, 100 * 1024);
    const result = planComposition(next, 2 * GIB + 100 * 1024, base);
    expectValidPlan(result, 2 * GIB + 100 * 1024, base.size, S3);
    expect(result.parts.at(-1)).toEqual({ kind: 'send', targetStart: 2 * GIB, length: 100 * 1024 });
    expect(result.bytesSent).toBe(100 * 1024);
  });

  it('splits a 12 GiB copy into parts of at most 5 GiB', () => {
    const big = syntheticSignature(synthetic(labels(12 * 1024), MIB));
    const result = planComposition(big.chunks, big.size, big);
    expectValidPlan(result, big.size, big.size, S3);
    expect(result.parts.map((p) => p.length)).toEqual([4 * GIB, 4 * GIB, 4 * GIB]);
  });

  it('grows the part size when 10,000 parts would not do (60 GiB, an edit every 6 MiB)', () => {
    const n = 60 * 1024;
    const big = syntheticSignature(synthetic(labels(n), MIB));
    const next = labels(n).map((label, i) => (i % 6 === 5 ? `edit${i}` : label));
    const result = planComposition(synthetic(next, MIB), big.size, big);
    expectValidPlan(result, big.size, big.size, S3);
    expect(result.minPartBytes).toBeGreaterThan(S3_MIN_PART_BYTES);
    expect(result.parts.length).toBeLessThanOrEqual(S3_MAX_PARTS);
  });

  it('keeps to a smaller part count given as an option, copying what runs are long enough', () => {
    // 33 edits 62.5 MiB apart cannot fit 8 parts: parts grow past the runs between edits.
    const scattered = labels(count).map((label, i) => (i % 500 === 0 ? `edit${i}` : label));
    const tight = planComposition(synthetic(scattered, chunk), 2 * GIB, base, { maxParts: 8 });
    expectValidPlan(tight, 2 * GIB, base.size, { ...S3, maxParts: 8 });
    expect(tight.minPartBytes).toBeGreaterThan(62.5 * MIB);
    expect(tight.bytesCopied).toBe(0);
    // Two edits: 8 parts are plenty and nothing grows.
    const two = labels(count).map((label, i) => (i === 3000 || i === 12_000 ? `edit${i}` : label));
    const roomy = planComposition(synthetic(two, chunk), 2 * GIB, base, { maxParts: 8 });
    expectValidPlan(roomy, 2 * GIB, base.size, { ...S3, maxParts: 8 });
    expect(roomy.minPartBytes).toBe(S3_MIN_PART_BYTES);
    expect(roomy.bytesSent).toBe(2 * S3_MIN_PART_BYTES);
  });

  it('refuses chunks that do not tile the file they claim', () => {
    const gap = synthetic(labels(3), chunk);
    gap[1]!.offset += 1;
    for (const run of [() => planComposition(gap, 3 * chunk, base), () => planComposition(synthetic(labels(3), chunk), 3 * chunk + 1, base)]) {
      expect(() => run()).toThrow(expect.objectContaining({ kind: 'integrity' }));
    }
    try {
      planComposition([], 0, base, { minPartBytes: 10, maxPartBytes: 15 });
      expect.unreachable();
    } catch (error) {
      expect(isAppError(error, 'config')).toBe(true);
    }
  });
});
