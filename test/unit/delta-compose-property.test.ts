import { describe, expect, it } from 'vitest';
import { planComposition, type CompositionOptions } from '../../src/delta/compose-plan.js';
import { chunkBuffer } from '../../src/delta/chunker.js';
import { CHUNKER_VERSION, type ChunkerParams } from '../../src/delta/chunker-params.js';
import type { Signature } from '../../src/delta/signature.js';
import { pseudoRandomBytes } from '../helpers/delta-data.js';
import { seededRandom } from '../helpers/random.js';
import { expectValidPlan } from '../helpers/delta-plan-check.js';

/**
 * Random files, random edit scripts, random limits: whatever comes in, the plan must write the
 * new file exactly within S3's rules. Small chunks and parts stand in for the real ones so many
 * layouts run in little time; the seed of a failing round is in the test's name.
 */

const KIB = 1024;
const SMALL_CHUNKS: ChunkerParams = { minChunkBytes: 1 * KIB, normalChunkBytes: 4 * KIB, maxChunkBytes: 16 * KIB };

type Random = () => number;
const between = (random: Random, low: number, high: number): number => low + Math.floor(random() * (high - low + 1));

/** One edit of the kinds a memory service makes, plus moves and duplicated blocks. */
function edit(random: Random, data: Buffer, seed: number): Buffer {
  const at = between(random, 0, data.length);
  const span = Math.min(data.length - at, between(random, 1, 64 * KIB));
  const fresh = pseudoRandomBytes(seed, between(random, 1, 64 * KIB));
  switch (between(random, 0, 7)) {
    case 0:
      return Buffer.concat([data.subarray(0, at), fresh, data.subarray(at)]); // insert
    case 1:
      return Buffer.concat([data.subarray(0, at), data.subarray(at + span)]); // delete
    case 2:
      return Buffer.concat([data.subarray(0, at), fresh.subarray(0, span), data.subarray(at + Math.min(span, fresh.length))]); // overwrite
    case 3:
      return Buffer.concat([data, fresh]); // append
    case 4:
      return data.subarray(0, at); // truncate
    case 5:
      return Buffer.concat([fresh.subarray(0, 64), data.subarray(64)]); // header rewritten
    case 6: {
      const from = between(random, 0, Math.max(0, data.length - span));
      return Buffer.concat([data.subarray(0, at), data.subarray(from, from + span), data.subarray(at)]); // a block repeated
    }
    default:
      return Buffer.concat([data.subarray(at), data.subarray(0, at)]); // halves swapped
  }
}

function signatureOf(data: Buffer): Signature {
  return { chunkerVersion: CHUNKER_VERSION, params: SMALL_CHUNKS, size: data.length, sha256: '0'.repeat(64), chunks: chunkBuffer(data, SMALL_CHUNKS) };
}

describe('planComposition on random edits of random files', () => {
  const rounds = Array.from({ length: 120 }, (_, i) => 1000 + i);
  it.each(rounds)('seed %i: covers the file within the limits, and every copy holds the target bytes', (seed) => {
    const random = seededRandom(seed);
    const base = pseudoRandomBytes(seed, between(random, 0, 3 * 1024 * KIB));
    let next = base;
    for (let n = between(random, 0, 6); n > 0; n -= 1) next = edit(random, next, seed * 31 + n);
    const minPartBytes = between(random, 2, 8) * 16 * KIB;
    const options: CompositionOptions = {
      minPartBytes,
      maxPartBytes: random() < 0.5 ? 5 * 1024 ** 3 : 2 * minPartBytes + between(random, 0, 256 * KIB),
      maxSendPartBytes: random() < 0.5 ? undefined : 2 * minPartBytes,
      maxParts: random() < 0.3 ? between(random, 2, 12) : 10_000,
    };
    const plan = planComposition(chunkBuffer(next, SMALL_CHUNKS), next.length, signatureOf(base), options);
    expectValidPlan(plan, next.length, base.length, { minPartBytes, maxPartBytes: options.maxPartBytes ?? 0, maxParts: options.maxParts ?? 0 }, { base, next });
    if (options.maxSendPartBytes !== undefined) {
      for (const part of plan.parts) if (part.kind === 'send') expect(part.length).toBeLessThanOrEqual(Math.max(options.maxSendPartBytes, 2 * plan.minPartBytes));
    }
  });

  it('copies all but about a part around a single small edit', () => {
    for (let seed = 1; seed <= 20; seed += 1) {
      const base = pseudoRandomBytes(seed, 2 * 1024 * KIB);
      const at = 1024 * KIB + seed * 1000;
      const next = Buffer.concat([base.subarray(0, at), pseudoRandomBytes(seed + 100, 50), base.subarray(at + 10)]);
      const plan = planComposition(chunkBuffer(next, SMALL_CHUNKS), next.length, signatureOf(base), { minPartBytes: 64 * KIB });
      expectValidPlan(plan, next.length, base.length, { minPartBytes: 64 * KIB, maxPartBytes: 5 * 1024 ** 3, maxParts: 10_000 }, { base, next });
      expect(plan.bytesSent).toBe(64 * KIB);
    }
  });
});
