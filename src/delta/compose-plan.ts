import { AppError } from '../errors.js';
import { matchChunks, type Segment } from './chunk-match.js';
import type { Chunk } from './chunker.js';
import { demoteShortCopies, padShortSends, splitLongRuns, type PartSizes } from './part-rules.js';
import type { Signature } from './signature.js';

/**
 * How to write a new version of a large file as one plain object without sending what the
 * previous version's object (the base) already holds: an S3 multipart upload whose parts are
 * either ranges of the base copied server-side (UploadPartCopy) or bytes sent from the local file.
 * Pure: chunk lists in, parts out.
 */

const MIB = 1024 * 1024;

/** S3: every part but the last at least 5 MiB, none above 5 GiB, at most 10,000 parts. */
export const S3_MIN_PART_BYTES = 5 * MIB; // 5,242,880
export const S3_MAX_PART_BYTES = 5 * 1024 * MIB;
export const S3_MAX_PARTS = 10_000;

/**
 * Below this many copied bytes a plain upload is used: 16 MiB is memsync's default multipart
 * threshold, under which a file goes up in one PUT anyway, and it is three parts' worth of
 * copies, each a request that can fail on its own.
 */
export const DEFAULT_MIN_COPIED_BYTES = 16 * MIB;
/** Nor when less than a tenth of the file is copied: the saving no longer pays for the requests. */
export const DEFAULT_MIN_COPIED_FRACTION = 0.1;

export interface CompositionOptions {
  /** Default S3_MIN_PART_BYTES; tests use smaller. */
  minPartBytes?: number;
  /** Largest copy part; default S3_MAX_PART_BYTES. */
  maxPartBytes?: number;
  /** Largest send part, so a retried part re-reads a bounded range; default maxPartBytes, at least twice the minimum part. */
  maxSendPartBytes?: number;
  /** Default S3_MAX_PARTS. */
  maxParts?: number;
  minCopiedBytes?: number;
  minCopiedFraction?: number;
}

export type ComposePart =
  /** Base bytes [sourceStart, sourceEnd) (end exclusive) go to [targetStart, targetStart + length). */
  | { kind: 'copy'; sourceStart: number; sourceEnd: number; targetStart: number; length: number }
  /** Local bytes [targetStart, targetStart + length) are sent. */
  | { kind: 'send'; targetStart: number; length: number };

export interface CompositionPlan {
  /** In target order, covering [0, newSize) with no gap; part numbers are index + 1. Empty for an empty file. */
  parts: ComposePart[];
  bytesCopied: number;
  bytesSent: number;
  /** False when a plain upload is the better choice (small file, or too little copied). */
  worthComposing: boolean;
  /** The minimum part size the plan keeps: the option's, or more when the part count had to come down. */
  minPartBytes: number;
}

/** The CopySourceRange header of a copy part: S3 takes the last byte inclusive. */
export function copySourceRange(part: Extract<ComposePart, { kind: 'copy' }>): string {
  return `bytes=${part.sourceStart}-${part.sourceEnd - 1}`;
}

interface Limits {
  minPartBytes: number;
  maxPartBytes: number;
  maxSendPartBytes: number;
  maxParts: number;
  minCopiedBytes: number;
  minCopiedFraction: number;
}

function limitsFrom(options: CompositionOptions): Limits {
  const minPartBytes = options.minPartBytes ?? S3_MIN_PART_BYTES;
  const maxPartBytes = options.maxPartBytes ?? S3_MAX_PART_BYTES;
  const limits: Limits = {
    minPartBytes,
    maxPartBytes,
    maxSendPartBytes: options.maxSendPartBytes ?? maxPartBytes,
    maxParts: options.maxParts ?? S3_MAX_PARTS,
    minCopiedBytes: options.minCopiedBytes ?? DEFAULT_MIN_COPIED_BYTES,
    minCopiedFraction: options.minCopiedFraction ?? DEFAULT_MIN_COPIED_FRACTION,
  };
  const whole = [minPartBytes, maxPartBytes, limits.maxSendPartBytes, limits.maxParts].every((n) => Number.isSafeInteger(n) && n >= 1);
  // Splitting a run just above a maximum gives halves: they must still reach the minimum.
  if (!whole || limits.maxSendPartBytes < 2 * minPartBytes || maxPartBytes < 2 * minPartBytes || limits.maxParts < 2) {
    throw new AppError('config', `invalid composition limits: ${JSON.stringify(limits)}`);
  }
  return limits;
}

/** Chunks must tile [0, size): anything else is a bug upstream, and a plan from it would write a wrong object. */
function checkTiling(chunks: readonly Chunk[], size: number, what: string): void {
  let offset = 0;
  for (const chunk of chunks) {
    if (chunk.offset !== offset || !Number.isSafeInteger(chunk.length) || chunk.length < 1) throw new AppError('integrity', `${what} chunks are not contiguous at byte ${offset}`);
    offset += chunk.length;
  }
  if (offset !== size) throw new AppError('integrity', `${what} chunks cover ${offset} bytes, the file has ${size}`);
}

/** Parts for one minimum part size; more than maxParts of them is the caller's to fix. */
function partsFor(segments: readonly Segment[], minPartBytes: number, limits: Limits): Segment[] {
  // A raised minimum must still fit twice in a maximum part, or splitting would break it.
  const sizes: PartSizes = {
    minPartBytes,
    maxCopyPartBytes: Math.max(limits.maxPartBytes, 2 * minPartBytes),
    maxSendPartBytes: Math.max(limits.maxSendPartBytes, 2 * minPartBytes),
  };
  return splitLongRuns(padShortSends(demoteShortCopies(segments, minPartBytes), minPartBytes), sizes);
}

function toPart(segment: Segment): ComposePart {
  if (segment.kind === 'send') return { kind: 'send', targetStart: segment.targetStart, length: segment.length };
  const { sourceStart, targetStart, length } = segment;
  return { kind: 'copy', sourceStart, sourceEnd: sourceStart + length, targetStart, length };
}

/**
 * The parts that write `newChunks` (a file of `newSize` bytes) from `base` and local bytes.
 * An edit in the middle costs about one minimum part sent, an append only the new tail, a
 * changed header about one minimum part; what is copied has the same SHA-256-128 chunk hash in
 * the base, and the uploader should still compare each copied part's MD5 with the local bytes'.
 */
export function planComposition(newChunks: readonly Chunk[], newSize: number, base: Signature, options: CompositionOptions = {}): CompositionPlan {
  const limits = limitsFrom(options);
  checkTiling(newChunks, newSize, 'new');
  checkTiling(base.chunks, base.size, 'base');
  const segments = matchChunks(newChunks, base.chunks);

  let minPartBytes = limits.minPartBytes;
  let parts = partsFor(segments, minPartBytes, limits);
  // With 5 MiB parts this only happens above about 48 GiB (10,000 x 5 MiB): raising the minimum
  // for every part is crude, but such files are rare and the plan stays valid. Every part but the
  // last at least `needed` bytes gives at most maxParts parts, so the loop ends there at the latest.
  const needed = Math.ceil(newSize / (limits.maxParts - 1));
  while (parts.length > limits.maxParts) {
    minPartBytes = Math.min(Math.max(2 * minPartBytes, minPartBytes + 1), Math.max(needed, minPartBytes + 1));
    parts = partsFor(segments, minPartBytes, limits);
  }

  const bytesCopied = parts.reduce((sum, p) => sum + (p.kind === 'copy' ? p.length : 0), 0);
  const bytesSent = newSize - bytesCopied;
  const worthComposing =
    newSize >= limits.minPartBytes && bytesCopied > 0 && bytesCopied >= limits.minCopiedBytes && bytesCopied >= limits.minCopiedFraction * newSize;
  return { parts: parts.map(toPart), bytesCopied, bytesSent, worthComposing, minPartBytes };
}
