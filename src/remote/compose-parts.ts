import { AppError } from '../errors.js';
import type { ComposePartSpec } from './store.js';

/** S3's limits on a multipart upload, which a composition is. */
export const MIN_COMPOSE_PART_BYTES = 5_242_880; // 5 MiB, every part but the last
export const MAX_COMPOSE_PARTS = 10_000;

export function composePartBytes(part: ComposePartSpec): number {
  return part.kind === 'copy' ? part.sourceEnd - part.sourceStart : part.length;
}

/**
 * Refuses a part list no server could compose (empty, empty parts, too many): a planning
 * mistake, not something to send. The 5 MiB minimum is left to the server, which names it.
 */
export function checkComposeParts(what: string, parts: readonly ComposePartSpec[]): void {
  if (parts.length === 0 || parts.length > MAX_COMPOSE_PARTS) {
    throw new AppError('bad_input', `${what}: ${parts.length} parts (1 to ${MAX_COMPOSE_PARTS} allowed)`, { retryable: false });
  }
  parts.forEach((part, index) => {
    const start = part.kind === 'copy' ? part.sourceStart : part.targetStart;
    if (!Number.isSafeInteger(start) || start < 0 || !Number.isSafeInteger(composePartBytes(part)) || composePartBytes(part) <= 0) {
      throw new AppError('bad_input', `${what}: part ${index + 1} is an empty or invalid range`, { retryable: false });
    }
  });
}

/** An MD5 as the servers answer it for a part (quoted, RGW unquoted, any case) in one form. */
export function normalizedPartMd5(etag: string | undefined): string {
  return (etag ?? '').replace(/"/g, '').toLowerCase();
}

/** A copied part whose bytes are not the ones the plan expected: the same request would copy them again. */
export function partMd5Mismatch(what: string, partNumber: number, expectedMd5Hex: string, actualMd5Hex: string): AppError {
  return new AppError('integrity', `${what}: part ${partNumber} has MD5 ${actualMd5Hex || '(none)'}, expected ${expectedMd5Hex}`, {
    retryable: false,
    details: { partNumber, expectedMd5: expectedMd5Hex, actualMd5: actualMd5Hex },
  });
}
