import { describe, expect, it } from 'vitest';
import { AppError, isAppError, type ErrorKind } from '../../src/errors.js';
import { backoffDelayMs, withRetry, type RetryPolicy } from '../../src/retry.js';

const policy = { baseDelayMs: 100, maxDelayMs: 1000 };
const tiny: RetryPolicy = { attempts: 4, baseDelayMs: 1, maxDelayMs: 2 };

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('backoffDelayMs', () => {
  it.each([
    // attempt, random, expected: floor(ceiling / 2 + random * ceiling / 2), ceiling = min(max, base * 2^attempt)
    [0, 0, 50],
    [0, 0.999, 99],
    [1, 0.999, 199],
    [2, 0.5, 300],
    [3, 0.999, 799],
    [4, 0.999, 999],
    [4, 0, 500],
    [10, 0.999, 999],
    [30, 0.5, 750],
  ])('attempt %d with random %d -> %d ms', (attempt, random, expected) => {
    expect(backoffDelayMs(attempt, policy, () => random)).toBe(expected);
  });

  it('stays between half the ceiling and the ceiling with the default random source, so a budget of attempts lasts a known time', () => {
    for (let attempt = 0; attempt < 40; attempt += 1) {
      const delay = backoffDelayMs(attempt, policy);
      const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
      expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
      expect(delay).toBeLessThanOrEqual(ceiling);
      expect(Number.isInteger(delay)).toBe(true);
    }
  });
});

describe('withRetry', () => {
  function failing(kinds: readonly (ErrorKind | 'plain')[], result = 'ok'): { operation: (attempt: number) => Promise<string>; attempts: number[] } {
    const attempts: number[] = [];
    return {
      attempts,
      operation: async (attempt) => {
        attempts.push(attempt);
        const kind = kinds[attempts.length - 1];
        if (kind === undefined) return result;
        if (kind === 'plain') throw new Error('boom');
        throw new AppError(kind, `failure ${attempts.length}`);
      },
    };
  }

  it('returns the first success without retrying', async () => {
    const { operation, attempts } = failing([]);
    await expect(withRetry(operation, { policy: tiny })).resolves.toBe('ok');
    expect(attempts).toEqual([0]);
  });

  it.each<[string, (ErrorKind | 'plain')[], number[]]>([
    ['remote_unavailable then success', ['remote_unavailable'], [0, 1]],
    ['integrity twice then success', ['integrity', 'integrity'], [0, 1, 2]],
    ['three retryable failures then success on the last attempt', ['remote_unavailable', 'integrity', 'remote_unavailable'], [0, 1, 2, 3]],
  ])('retries %s', async (_label, kinds, expectedAttempts) => {
    const { operation, attempts } = failing(kinds);
    const retries: [ErrorKind, number][] = [];
    await expect(withRetry(operation, { policy: tiny, onRetry: (error, attempt) => retries.push([error.kind, attempt]) })).resolves.toBe('ok');
    expect(attempts).toEqual(expectedAttempts);
    expect(retries).toEqual(kinds.map((kind, i) => [kind, i + 1]));
  });

  it('gives up after policy.attempts with the last error', async () => {
    const { operation, attempts } = failing(['remote_unavailable', 'remote_unavailable', 'remote_unavailable', 'integrity', 'remote_unavailable']);
    const error = await rejection(withRetry(operation, { policy: tiny }));
    expect(attempts).toEqual([0, 1, 2, 3]);
    expect(isAppError(error, 'integrity')).toBe(true);
    expect(error instanceof Error && error.message).toBe('failure 4');
  });

  it.each<[number, number]>([
    [1, 1],
    [2, 2],
  ])('with attempts %d calls the operation %d times', async (count, calls) => {
    const { operation, attempts } = failing(['remote_unavailable', 'remote_unavailable', 'remote_unavailable']);
    await rejection(withRetry(operation, { policy: { ...tiny, attempts: count } }));
    expect(attempts).toHaveLength(calls);
  });

  it.each<ErrorKind>(['conflict', 'remote_rejected', 'not_found', 'local_io', 'snapshot_gone', 'cancelled', 'bad_input'])('stops at once on non-retryable %s', async (kind) => {
    const { operation, attempts } = failing([kind]);
    const error = await rejection(withRetry(operation, { policy: tiny }));
    expect(attempts).toEqual([0]);
    expect(isAppError(error, kind)).toBe(true);
  });

  it('honours an explicit retryable flag over the kind default', async () => {
    let calls = 0;
    const error = await rejection(
      withRetry(
        async () => {
          calls += 1;
          throw new AppError('remote_unavailable', 'not this time', { retryable: false });
        },
        { policy: tiny },
      ),
    );
    expect(calls).toBe(1);
    expect(isAppError(error, 'remote_unavailable')).toBe(true);
  });

  it('wraps a non-AppError as a non-retryable local_io error keeping the cause', async () => {
    const { operation, attempts } = failing(['plain']);
    const error = await rejection(withRetry(operation, { policy: tiny }));
    expect(attempts).toEqual([0]);
    expect(isAppError(error, 'local_io')).toBe(true);
    expect(error instanceof Error && error.cause instanceof Error && error.cause.message).toBe('boom');
  });

  it('does not retry once the signal is aborted', async () => {
    const controller = new AbortController();
    const attempts: number[] = [];
    const error = await rejection(
      withRetry(
        async (attempt) => {
          attempts.push(attempt);
          controller.abort();
          throw new AppError('remote_unavailable', 'down');
        },
        { policy: tiny, signal: controller.signal },
      ),
    );
    expect(attempts).toEqual([0]);
    expect(isAppError(error, 'remote_unavailable')).toBe(true);
  });

  it('stops waiting between attempts when the signal is aborted, as cancelled', async () => {
    const controller = new AbortController();
    let calls = 0;
    const started = Date.now();
    const pending = withRetry(
      async () => {
        calls += 1;
        throw new AppError('remote_unavailable', 'down');
      },
      { policy: { attempts: 5, baseDelayMs: 60_000, maxDelayMs: 60_000 }, signal: controller.signal, random: () => 0.5 },
    );
    setTimeout(() => controller.abort(), 20);
    const error = await rejection(pending);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(calls).toBe(1);
    expect(isAppError(error, 'cancelled')).toBe(true);
    expect(error instanceof Error && isAppError(error.cause, 'remote_unavailable')).toBe(true);
  });

  it('retries only what retryIf picks, whatever the kind says', async () => {
    const picky = failing(['integrity']);
    const error = await rejection(withRetry(picky.operation, { policy: tiny, retryIf: (e) => e.kind === 'remote_unavailable' }));
    expect(isAppError(error, 'integrity')).toBe(true);
    expect(picky.attempts).toEqual([0]);
    const chosen = failing(['remote_unavailable']);
    await expect(withRetry(chosen.operation, { policy: tiny, retryIf: (e) => e.kind === 'remote_unavailable' })).resolves.toBe('ok');
    expect(chosen.attempts).toEqual([0, 1]);
  });

  it('passes the backoff delay from the injected random source to onRetry', async () => {
    const { operation } = failing(['remote_unavailable', 'remote_unavailable']);
    const delays: number[] = [];
    await withRetry(operation, { policy: { attempts: 3, baseDelayMs: 4, maxDelayMs: 6 }, random: () => 0.999, onRetry: (_e, _a, delayMs) => delays.push(delayMs) });
    expect(delays).toEqual([3, 5]);
  });
});
