import { setTimeout as sleep } from 'node:timers/promises';
import { AppError, isAppError } from './errors.js';

export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 500, maxDelayMs: 30_000 };

/**
 * Exponential backoff with full jitter: a random delay in [0, min(max, base * 2^attempt)].
 * Jitter spreads retries of many parallel uploads so a recovering server is not hit in step.
 */
export function backoffDelayMs(attempt: number, policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.floor(random() * ceiling);
}

export interface RetryOptions {
  policy: RetryPolicy;
  signal?: AbortSignal | undefined;
  onRetry?: (error: AppError, attempt: number, delayMs: number) => void;
  random?: () => number;
}

/** Runs `operation` until it succeeds, fails with a non-retryable AppError, or runs out of attempts. */
export async function withRetry<T>(operation: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await operation(attempt);
    } catch (error) {
      const appError = isAppError(error) ? error : new AppError('local_io', String(error), { cause: error, retryable: false });
      if (!appError.retryable || attempt + 1 >= options.policy.attempts || options.signal?.aborted === true) throw appError;
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
