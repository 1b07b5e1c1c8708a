import { setTimeout as sleep } from 'node:timers/promises';
import { AppError, isAppError } from './errors.js';

export interface RetryPolicy {
  /** Tries in all, the first one included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/**
 * One store request (a HEAD, a listing, a small file's PUT, a manifest, a server-side copy):
 * 5 tries, waiting 0.25-0.5, 0.5-1, 1-2 and 2-4 s between them (3.75 to 7.5 s in all).
 */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 500, maxDelayMs: 30_000 };

/**
 * A part of a multipart upload gets this many tries more than a request: giving up on it costs
 * the whole file's bytes again, so it outlasts a longer outage. With DEFAULT_RETRY: 8 tries,
 * the last waits 4-8, 8-16 and 15-30 s, so 30.75 to 61.5 s of waiting in all.
 */
const PART_EXTRA_ATTEMPTS = 3;

/** The retries of one part, sent again in place within its multipart upload. */
export function partRetryPolicy(requestPolicy: RetryPolicy): RetryPolicy {
  return { ...requestPolicy, attempts: requestPolicy.attempts + PART_EXTRA_ATTEMPTS };
}

/**
 * Exponential backoff with equal jitter: a random delay in [ceiling / 2, ceiling], the ceiling
 * being min(max, base * 2^attempt). The jitter spreads retries of many parallel uploads so a
 * recovering server is not hit in step; the floor makes a budget of attempts last a known time.
 */
export function backoffDelayMs(attempt: number, policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.floor(ceiling / 2 + random() * (ceiling / 2));
}

export interface RetryOptions {
  policy: RetryPolicy;
  signal?: AbortSignal | undefined;
  onRetry?: (error: AppError, attempt: number, delayMs: number) => void;
  /** Which failures are tried again; default: those marked retryable. */
  retryIf?: (error: AppError) => boolean;
  random?: () => number;
}

/** Runs `operation` until it succeeds, fails with an error not to retry, or runs out of attempts. */
export async function withRetry<T>(operation: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const retryIf = options.retryIf ?? ((error: AppError) => error.retryable);
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await operation(attempt);
    } catch (error) {
      const appError = isAppError(error) ? error : new AppError('local_io', String(error), { cause: error, retryable: false });
      if (!retryIf(appError) || attempt + 1 >= options.policy.attempts || options.signal?.aborted === true) throw appError;
      const delayMs = backoffDelayMs(attempt, options.policy, options.random);
      options.onRetry?.(appError, attempt + 1, delayMs);
      try {
        await sleep(delayMs, undefined, { signal: options.signal });
      } catch {
        throw new AppError('cancelled', 'retry cancelled', { cause: appError });
      }
    }
  }
}
