import { AppError } from '../errors.js';
import { matchChunks } from './chunk-match.js';
import type { Chunk } from './chunker.js';

/**
 * How to restore a file version from an earlier version already on the local disk: which runs of
 * it the earlier file holds byte for byte (copied locally) and which ranges must be fetched from
 * the store. Pure: chunk lists in, runs out. What it plans is only a guess until the restored
 * file's SHA-256 matches the manifest; the caller checks that before the file is used.
 */

/**
 * Local runs shorter than this are fetched with the ranges around them: a request costs more
 * than the bytes it would save, and an edit's neighbourhood is seldom worth splitting.
 */
export const MIN_LOCAL_RUN_BYTES = 1024 * 1024;

export interface LocalCopy {
  /** Where the run goes in the restored file. */
  targetStart: number;
  /** Where the local earlier version holds it. */
  sourceStart: number;
  length: number;
}

export interface LocalReusePlan {
  /** In target order. */
  copies: LocalCopy[];
  /** Ranges [start, end) to fetch, in order, apart; with the copies they tile the file. */
  fetches: { start: number; end: number }[];
  bytesLocal: number;
  bytesFetched: number;
}

/** The runs of a file of `targetSize` cut into `target` chunks that the local file cut into `local` chunks holds. */
export function planLocalReuse(target: readonly Chunk[], targetSize: number, local: readonly Chunk[], minLocalRunBytes = MIN_LOCAL_RUN_BYTES): LocalReusePlan {
  let covered = 0;
  for (const chunk of target) {
    if (chunk.offset !== covered || chunk.length < 1) throw new AppError('integrity', `the signature's chunks are not contiguous at byte ${covered}`, { retryable: false });
    covered += chunk.length;
  }
  if (covered !== targetSize) throw new AppError('integrity', `the signature's chunks cover ${covered} bytes, the file has ${targetSize}`, { retryable: false });

  const copies: LocalCopy[] = [];
  const fetches: { start: number; end: number }[] = [];
  for (const segment of matchChunks(target, local)) {
    if (segment.kind === 'copy' && segment.length >= minLocalRunBytes) {
      copies.push({ targetStart: segment.targetStart, sourceStart: segment.sourceStart, length: segment.length });
      continue;
    }
    const last = fetches.at(-1);
    if (last !== undefined && last.end === segment.targetStart) last.end += segment.length;
    else fetches.push({ start: segment.targetStart, end: segment.targetStart + segment.length });
  }
  const bytesLocal = copies.reduce((sum, copy) => sum + copy.length, 0);
  return { copies, fetches, bytesLocal, bytesFetched: targetSize - bytesLocal };
}
