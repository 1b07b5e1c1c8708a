import type { CopySegment, Segment, SendSegment } from './chunk-match.js';

/**
 * Turns matched runs into parts S3 accepts: every part but the last at least the minimum size,
 * none above the maximum. A copy part must be one contiguous range of the base and a send part
 * can hold any bytes of the new file, so every fix turns copied bytes into sent ones, and each
 * step here picks the fix that sends the fewest.
 */

export interface PartSizes {
  minPartBytes: number;
  maxCopyPartBytes: number;
  maxSendPartBytes: number;
}

function asSend(segment: Segment): SendSegment {
  return { kind: 'send', targetStart: segment.targetStart, length: segment.length };
}

/** Merges neighbouring sends, which demoting copies leaves behind. */
function mergeSends(segments: readonly Segment[]): Segment[] {
  const merged: Segment[] = [];
  for (const segment of segments) {
    const last = merged.at(-1);
    if (last?.kind === 'send' && segment.kind === 'send') last.length += segment.length;
    else merged.push({ ...segment });
  }
  return merged;
}

/**
 * A copy run below the minimum cannot be a part of its own (and a part cannot mix copied and
 * sent bytes): it is sent. The last run is no exception: sending a short tail costs at most one
 * minimum part, while keeping it as a copy would make the send before it need padding.
 */
export function demoteShortCopies(segments: readonly Segment[], minPartBytes: number): Segment[] {
  return mergeSends(segments.map((s) => (s.kind === 'copy' && s.length < minPartBytes ? asSend(s) : s)));
}

/**
 * Grows every send below the minimum that is not last by taking bytes from the copies around
 * it: first the end of the previous copy (already settled), then the start of the next one,
 * each kept at the minimum (the last copy may shrink to one byte). When their spare bytes do not
 * cover the shortfall, the smaller neighbouring copy is sent whole, which always suffices: every
 * copy is at least the minimum, and sending the last one makes this send the last part.
 * Expects demoteShortCopies' output: copies at least the minimum, no two sends side by side.
 */
export function padShortSends(segments: readonly Segment[], minPartBytes: number): Segment[] {
  const pending: Segment[] = segments.map((s) => ({ ...s }));
  const out: Segment[] = [];
  for (let i = 0; i < pending.length; ) {
    let current = pending[i]!;
    i += 1;
    if (current.kind === 'copy') {
      out.push(current);
      continue;
    }
    for (let following = pending[i]; following?.kind === 'send'; following = pending[i]) {
      current = { kind: 'send', targetStart: current.targetStart, length: current.length + following.length };
      i += 1;
    }
    const next = pending[i] as CopySegment | undefined;
    if (next === undefined || current.length >= minPartBytes) {
      out.push(current);
      continue;
    }
    const previous = out.at(-1) as CopySegment | undefined;
    const nextIsLast = i === pending.length - 1;
    const shortfall = minPartBytes - current.length;
    const previousSpare = previous === undefined ? 0 : previous.length - minPartBytes;
    const nextSpare = next.length - (nextIsLast ? 1 : minPartBytes);
    if (previousSpare + nextSpare >= shortfall) {
      const fromPrevious = Math.min(shortfall, previousSpare);
      const fromNext = shortfall - fromPrevious;
      if (previous !== undefined) previous.length -= fromPrevious;
      next.targetStart += fromNext;
      next.sourceStart += fromNext;
      next.length -= fromNext;
      out.push({ kind: 'send', targetStart: current.targetStart - fromPrevious, length: minPartBytes });
    } else if (previous !== undefined && previous.length < next.length) {
      out.pop(); // the previous copy is sent whole, joined to the send before it if there is one
      let start = previous.targetStart;
      const before = out.at(-1);
      if (before?.kind === 'send') {
        out.pop();
        start = before.targetStart;
      }
      out.push({ kind: 'send', targetStart: start, length: current.targetStart + current.length - start });
    } else {
      // The next copy joins this send; the merged send is looked at again with what follows it.
      pending[i] = { kind: 'send', targetStart: current.targetStart, length: current.length + next.length };
    }
  }
  return out;
}

/**
 * Splits runs above the maximum into near-equal parts: a run just above the maximum becomes two
 * parts of about half of it, still far above the minimum (the caller keeps max >= 2 x min).
 */
export function splitLongRuns(segments: readonly Segment[], sizes: PartSizes): Segment[] {
  const parts: Segment[] = [];
  for (const segment of segments) {
    const max = segment.kind === 'copy' ? sizes.maxCopyPartBytes : sizes.maxSendPartBytes;
    const count = Math.ceil(segment.length / max);
    const small = Math.floor(segment.length / count);
    let offset = 0;
    for (let k = 0; k < count; k += 1) {
      const length = small + (k < segment.length % count ? 1 : 0);
      const targetStart = segment.targetStart + offset;
      parts.push(segment.kind === 'copy' ? { kind: 'copy', targetStart, length, sourceStart: segment.sourceStart + offset } : { kind: 'send', targetStart, length });
      offset += length;
    }
  }
  return parts;
}
