import { expect } from 'vitest';
import type { CompositionPlan } from '../../src/delta/compose-plan.js';

export interface PlanLimits {
  minPartBytes: number;
  maxPartBytes: number;
  maxParts: number;
}

/**
 * What every plan must be, whatever the input: parts in order covering [0, newSize) exactly,
 * copies inside the base, S3's sizes and count, totals that add up; with the files at hand,
 * every copied range holds in the base exactly the bytes the new file has there.
 */
export function expectValidPlan(plan: CompositionPlan, newSize: number, baseSize: number, limits: PlanLimits, files?: { base: Uint8Array; next: Uint8Array }): void {
  expect(plan.parts.length).toBeLessThanOrEqual(limits.maxParts);
  expect(plan.minPartBytes).toBeGreaterThanOrEqual(limits.minPartBytes);
  if (newSize > 0) expect(plan.parts.length).toBeGreaterThan(0);
  let offset = 0;
  let copied = 0;
  for (const [index, part] of plan.parts.entries()) {
    expect(part.targetStart).toBe(offset);
    expect(part.length).toBeGreaterThan(0);
    expect(part.length).toBeLessThanOrEqual(Math.max(limits.maxPartBytes, 2 * plan.minPartBytes));
    if (index < plan.parts.length - 1) expect(part.length).toBeGreaterThanOrEqual(plan.minPartBytes);
    if (part.kind === 'copy') {
      expect(part.sourceEnd - part.sourceStart).toBe(part.length);
      expect(part.sourceStart).toBeGreaterThanOrEqual(0);
      expect(part.sourceEnd).toBeLessThanOrEqual(baseSize);
      copied += part.length;
      if (files !== undefined) {
        const same = Buffer.compare(files.base.subarray(part.sourceStart, part.sourceEnd), files.next.subarray(part.targetStart, part.targetStart + part.length)) === 0;
        expect(same, `part ${index + 1} copies base [${part.sourceStart}, ${part.sourceEnd}) to ${part.targetStart}`).toBe(true);
      }
    }
    offset += part.length;
  }
  expect(offset).toBe(newSize);
  expect(plan.bytesCopied).toBe(copied);
  expect(plan.bytesSent).toBe(newSize - copied);
}
