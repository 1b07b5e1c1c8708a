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

/**
 * A copied part's MD5 as the local file holds it, in lower case, once known. Rejects with the
 * promise's own error, or with cancelled when `stop` aborts first (the composition is cancelled
 * or failed elsewhere), so no check waits on an MD5 nobody needs any more.
 */
export function localPartMd5(md5Hex: string | Promise<string>, stop: AbortSignal | undefined, what: string): Promise<string> {
  if (typeof md5Hex === 'string') return Promise.resolve(md5Hex.toLowerCase());
  return new Promise<string>((resolve, reject) => {
    const stopped = (): void => reject(new AppError('cancelled', `${what}: stopped before the local MD5 was known`));
    if (stop?.aborted === true) return stopped();
    stop?.addEventListener('abort', stopped, { once: true });
    md5Hex.then(
      (known) => {
        stop?.removeEventListener('abort', stopped);
        resolve(known.toLowerCase());
      },
      (error: unknown) => {
        stop?.removeEventListener('abort', stopped);
        reject(error);
      },
    );
  });
}

/**
 * The checks of a composition's copied parts against their local MD5s, which may still be being
 * computed: each starts once its part is copied and runs beside the parts after it, so the
 * server's copies never wait for the local reads. Every check is settled before the composition
 * may complete.
 */
export class CopiedPartChecks {
  private readonly results: Promise<unknown>[] = [];

  constructor(
    private readonly what: string,
    private readonly stop: AbortSignal | undefined,
  ) {}

  /** Checks copied part `partNumber`, which came out with `copiedMd5Hex`; resolves to its failure, or undefined. Never rejects. */
  add(partNumber: number, localMd5Hex: string | Promise<string>, copiedMd5Hex: string): Promise<unknown> {
    const result = localPartMd5(localMd5Hex, this.stop, `${this.what}: part ${partNumber}`).then(
      (expected) => (expected === normalizedPartMd5(copiedMd5Hex) ? undefined : partMd5Mismatch(this.what, partNumber, expected, copiedMd5Hex)),
      (error: unknown) => error,
    );
    this.results.push(result);
    return result;
  }

  /** Once every check started so far is done: the first failure among them, in the order they started, or undefined. */
  async firstFailure(): Promise<unknown> {
    for (const result of this.results) {
      const failure = await result;
      if (failure !== undefined) return failure;
    }
    return undefined;
  }
}
