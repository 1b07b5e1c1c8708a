import { S3_MAX_PART_BYTES, S3_MAX_PARTS, type ComposePart, type CompositionPlan } from './compose-plan.js';

/**
 * A composition's copied runs cut at the part boundaries of the file's plain upload layout, so
 * that most copied parts are exactly parts of that layout: the digest pass has already taken the
 * MD5 of each of those (for the plain multipart ETag), and a copied part is checked against the
 * MD5 of its range of the local file. Only the unaligned pieces at a run's ends then need their
 * MD5 read again. Pure: a plan in, parts out.
 */

export interface PlainLayout {
  /** The new file's size. */
  sizeBytes: number;
  /** P: the plain layout's part k is [kP, min((k + 1)P, sizeBytes)). */
  partSizeBytes: number;
}

export interface SplitLimits {
  /** Every part but the last at least this; default the plan's own minimum. */
  minPartBytes?: number;
  /** Default S3_MAX_PART_BYTES. */
  maxPartBytes?: number;
  /** Default S3_MAX_PARTS. */
  maxParts?: number;
}

type CopyPart = Extract<ComposePart, { kind: 'copy' }>;
type SendPart = Extract<ComposePart, { kind: 'send' }>;

/** A copied part that is exactly part `plainPartIndex` (0-based) of the plain layout, or undefined when it is not one. */
export type AlignedCopyPart = CopyPart & { plainPartIndex: number | undefined };
export type AlignedComposePart = SendPart | AlignedCopyPart;

interface Piece {
  targetStart: number;
  length: number;
}

/** Neighbouring copy parts that continue each other in both files: one run (the plan splits runs above the maximum). */
function copyRuns(parts: readonly ComposePart[]): (SendPart | CopyPart[])[] {
  const runs: (SendPart | CopyPart[])[] = [];
  for (const part of parts) {
    const last = runs.at(-1);
    if (part.kind === 'send') runs.push(part);
    else if (Array.isArray(last) && last.at(-1)?.sourceEnd === part.sourceStart && endOf(last.at(-1) as CopyPart) === part.targetStart) last.push(part);
    else runs.push([part]);
  }
  return runs;
}

function endOf(piece: Piece): number {
  return piece.targetStart + piece.length;
}

function isPlainPart(piece: Piece, layout: PlainLayout): boolean {
  return piece.targetStart % layout.partSizeBytes === 0 && (piece.length === layout.partSizeBytes || endOf(piece) === layout.sizeBytes);
}

/** [start, end) cut at every multiple of P inside it. */
function cutAtBoundaries(start: number, end: number, partSizeBytes: number): Piece[] {
  const pieces: Piece[] = [];
  for (let at = start; at < end; ) {
    const next = Math.min(end, (Math.floor(at / partSizeBytes) + 1) * partSizeBytes);
    pieces.push({ targetStart: at, length: next - at });
    at = next;
  }
  return pieces;
}

/**
 * A piece under the minimum at either end of a run joins its neighbour in the run (that part is
 * then no plain part, and its MD5 is read). The end of a run that ends the file needs no care: its
 * last piece is the layout's last part, which is also the composition's last.
 */
function mergeShortEnds(pieces: Piece[], minPartBytes: number, layout: PlainLayout): Piece[] {
  const merged = pieces.map((piece) => ({ ...piece }));
  const first = merged[0];
  if (merged.length > 1 && first !== undefined && !isPlainPart(first, layout) && first.length < minPartBytes) {
    merged.shift();
    const next = merged[0] as Piece;
    next.targetStart = first.targetStart;
    next.length += first.length;
  }
  const last = merged.at(-1);
  if (merged.length > 1 && last !== undefined && !isPlainPart(last, layout) && last.length < minPartBytes && endOf(last) !== layout.sizeBytes) {
    merged.pop();
    (merged.at(-1) as Piece).length += last.length;
  }
  return merged;
}

function splitRun(run: readonly CopyPart[], minPartBytes: number, layout: PlainLayout): AlignedCopyPart[] {
  const first = run[0] as CopyPart;
  const last = run.at(-1) as CopyPart;
  const pieces = mergeShortEnds(cutAtBoundaries(first.targetStart, endOf(last), layout.partSizeBytes), minPartBytes, layout);
  // No whole plain part in the run: nothing is saved by cutting it, so the plan's parts stay.
  if (!pieces.some((piece) => isPlainPart(piece, layout))) return run.map((part) => ({ ...part, plainPartIndex: undefined }));
  return pieces.map((piece) => {
    const sourceStart = first.sourceStart + (piece.targetStart - first.targetStart);
    const plainPartIndex = isPlainPart(piece, layout) ? piece.targetStart / layout.partSizeBytes : undefined;
    return { kind: 'copy', sourceStart, sourceEnd: sourceStart + piece.length, targetStart: piece.targetStart, length: piece.length, plainPartIndex };
  });
}

function keepsRules(parts: readonly AlignedComposePart[], minPartBytes: number, maxPartBytes: number, maxParts: number): boolean {
  if (parts.length > maxParts) return false;
  return parts.every((part, index) => part.length <= maxPartBytes && (index === parts.length - 1 || part.length >= minPartBytes));
}

/**
 * The plan's parts with every copied run cut at the plain layout's part boundaries; sent parts as
 * planned. Undefined when no copied part would be a whole plain part, or when the cut parts would
 * break S3's rules (count, sizes): the plan is then used as it is.
 */
export function splitAtPlainParts(plan: CompositionPlan, layout: PlainLayout, limits: SplitLimits = {}): AlignedComposePart[] | undefined {
  const { partSizeBytes, sizeBytes } = layout;
  if (!Number.isSafeInteger(partSizeBytes) || partSizeBytes < 1 || !Number.isSafeInteger(sizeBytes)) return undefined;
  const covered = plan.parts.reduce((sum, part) => sum + part.length, 0);
  if (covered !== sizeBytes) return undefined;
  const minPartBytes = limits.minPartBytes ?? plan.minPartBytes;
  const parts = copyRuns(plan.parts).flatMap((run): AlignedComposePart[] => (Array.isArray(run) ? splitRun(run, minPartBytes, layout) : [run]));
  if (!parts.some((part) => part.kind === 'copy' && part.plainPartIndex !== undefined)) return undefined;
  return keepsRules(parts, minPartBytes, limits.maxPartBytes ?? S3_MAX_PART_BYTES, limits.maxParts ?? S3_MAX_PARTS) ? parts : undefined;
}
