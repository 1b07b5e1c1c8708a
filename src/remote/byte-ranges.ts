import type { ByteRange } from './store.js';

/**
 * Byte ranges [start, end) of an object of `sizeBytes`, in order, each at most `rangeBytes`: of
 * the whole object, or of `within` (ordered, apart, inside the object) only. Pure.
 */
export function planRanges(sizeBytes: number, rangeBytes: number, within: readonly ByteRange[] = [{ start: 0, end: sizeBytes }]): ByteRange[] {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0 || !Number.isSafeInteger(rangeBytes) || rangeBytes <= 0) {
    throw new RangeError(`cannot cut ${sizeBytes} bytes into ranges of ${rangeBytes}`);
  }
  const ranges: ByteRange[] = [];
  let previousEnd = 0;
  for (const { start: from, end: to } of within) {
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < previousEnd || to < from || to > sizeBytes) {
      throw new RangeError(`range ${from}-${to} is not ordered inside an object of ${sizeBytes} bytes`);
    }
    for (let start = from; start < to; start += rangeBytes) ranges.push({ start, end: Math.min(to, start + rangeBytes) });
    previousEnd = to;
  }
  return ranges;
}
