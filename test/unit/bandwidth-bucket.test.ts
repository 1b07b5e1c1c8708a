import { describe, expect, it } from 'vitest';
import { BandwidthLimiter, TokenBucket, type LimiterClock } from '../../src/remote/bandwidth-bucket.js';

const KIB = 1024;

describe('TokenBucket', () => {
  it('lets a full burst through at once, then makes the next bytes wait for the refill', () => {
    const bucket = new TokenBucket(100 * KIB, 50 * KIB, 0);
    expect(bucket.reserve(50 * KIB, 0)).toBe(0);
    // 10 KiB more at 100 KiB/s: 100 ms.
    expect(bucket.reserve(10 * KIB, 0)).toBeCloseTo(100, 6);
  });

  it('refills at the rate, never above the burst', () => {
    const bucket = new TokenBucket(100 * KIB, 50 * KIB, 0);
    bucket.reserve(50 * KIB, 0);
    expect(bucket.available(250)).toBeCloseTo(25 * KIB, 6);
    expect(bucket.available(10_000)).toBe(50 * KIB);
  });

  it('queues reservations: two consumers sharing the bucket each wait behind the other', () => {
    const bucket = new TokenBucket(100 * KIB, 10 * KIB, 0);
    const first = bucket.reserve(10 * KIB, 0);
    const second = bucket.reserve(10 * KIB, 0);
    const third = bucket.reserve(10 * KIB, 0);
    expect([first, second, third].map((ms) => Math.round(ms))).toEqual([0, 100, 200]);
    // Together they got 30 KiB in 200 ms after a 10 KiB burst: the shared rate, not twice it.
  });

  it('gives back refunded tokens, at most up to the burst', () => {
    const bucket = new TokenBucket(100 * KIB, 10 * KIB, 0);
    bucket.reserve(30 * KIB, 0);
    bucket.refund(20 * KIB, 0);
    expect(bucket.available(0)).toBe(0);
    bucket.refund(50 * KIB, 0);
    expect(bucket.available(0)).toBe(10 * KIB);
  });

  it('refills nothing when the clock steps back', () => {
    const bucket = new TokenBucket(100 * KIB, 10 * KIB, 1_000);
    bucket.reserve(10 * KIB, 1_000);
    expect(bucket.available(500)).toBe(0);
  });
});

/** A clock that moves only when the test says; sleepers wake when their time comes. */
function manualClock(): LimiterClock & { advance(ms: number): Promise<void>; sleepers(): number } {
  let now = 0;
  let waiting: { until: number; resolve: () => void }[] = [];
  return {
    nowMs: () => now,
    sleep: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        const entry = { until: now + ms, resolve };
        waiting.push(entry);
        signal?.addEventListener('abort', () => {
          waiting = waiting.filter((other) => other !== entry);
          reject(new Error('aborted'));
        }, { once: true });
      }),
    async advance(ms) {
      now += ms;
      const due = waiting.filter((entry) => entry.until <= now);
      waiting = waiting.filter((entry) => entry.until > now);
      for (const entry of due) entry.resolve();
      await Promise.resolve();
    },
    sleepers: () => waiting.length,
  };
}

describe('BandwidthLimiter', () => {
  it('returns at once within the burst and makes the caller wait beyond it', async () => {
    const clock = manualClock();
    const limiter = new BandwidthLimiter(100 * KIB, clock, 10 * KIB);
    await limiter.take(10 * KIB);
    let done = false;
    const waiting = limiter.take(10 * KIB).then(() => (done = true));
    await clock.advance(99);
    expect(done).toBe(false);
    await clock.advance(1);
    await waiting;
    expect(done).toBe(true);
  });

  it('stops waiting as soon as the transfer is cancelled, and gives its tokens back to the others', async () => {
    const clock = manualClock();
    const limiter = new BandwidthLimiter(100 * KIB, clock, 10 * KIB);
    await limiter.take(10 * KIB);
    const cancel = new AbortController();
    const cancelled = limiter.take(100 * KIB, cancel.signal);
    cancel.abort();
    await expect(cancelled).rejects.toThrow('aborted');
    expect(clock.sleepers()).toBe(0);
    // Without the refund the next 10 KiB would wait behind 100 KiB never sent (1.1 s).
    const next = limiter.take(10 * KIB);
    await clock.advance(100);
    await next;
  });

  it('refuses at once a take whose signal is already aborted, without taking tokens', async () => {
    const clock = manualClock();
    const limiter = new BandwidthLimiter(100 * KIB, clock, 10 * KIB);
    await expect(limiter.take(10 * KIB, AbortSignal.abort())).rejects.toBeDefined();
    await limiter.take(10 * KIB);
    expect(clock.sleepers()).toBe(0);
  });
});
