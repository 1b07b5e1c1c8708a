/**
 * A token bucket for one direction of traffic, shared by every transfer of the process. Pure
 * arithmetic on a clock reading given by the caller, so it is tested without waiting.
 *
 * A reservation always succeeds and may leave the bucket in debt: the caller then waits until
 * the debt is paid back at the refill rate. Reservations thus queue in the order they were made
 * (no transfer starves), and a slice larger than the burst is still sent, just later.
 */
export class TokenBucket {
  private tokens: number;
  private atMs: number;

  constructor(
    readonly rateBytesPerSecond: number,
    readonly burstBytes: number,
    nowMs: number,
  ) {
    if (!(rateBytesPerSecond > 0) || !(burstBytes > 0)) throw new RangeError('a token bucket needs a positive rate and burst');
    this.tokens = burstBytes;
    this.atMs = nowMs;
  }

  /** Takes `bytes` tokens; returns how many milliseconds from `nowMs` the caller must wait before sending them. */
  reserve(bytes: number, nowMs: number): number {
    this.refill(nowMs);
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.rateBytesPerSecond;
  }

  /** Gives back tokens reserved for bytes that were never sent (a cancelled transfer). */
  refund(bytes: number, nowMs: number): void {
    this.refill(nowMs);
    this.tokens = Math.min(this.burstBytes, this.tokens + bytes);
  }

  /** Tokens available at `nowMs` (negative: in debt). */
  available(nowMs: number): number {
    this.refill(nowMs);
    return this.tokens;
  }

  private refill(nowMs: number): void {
    // A clock that went backwards (NTP step) refills nothing rather than draining the bucket.
    const elapsedMs = Math.max(0, nowMs - this.atMs);
    this.tokens = Math.min(this.burstBytes, this.tokens + (elapsedMs * this.rateBytesPerSecond) / 1000);
    this.atMs = Math.max(this.atMs, nowMs);
  }
}

export interface LimiterClock {
  nowMs(): number;
  /** Resolves after `ms`, or rejects as soon as `signal` aborts. */
  sleep(ms: number, signal: AbortSignal | undefined): Promise<void>;
}

export const systemClock: LimiterClock = {
  nowMs: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(abortReason(signal));
        return;
      }
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(abortReason(signal));
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

function abortReason(signal: AbortSignal | undefined): unknown {
  return signal?.reason ?? new DOMException('aborted', 'AbortError');
}

/**
 * The largest piece of a body sent (or handed on) on one reservation. Small, so that many
 * transfers sharing a low limit each move every few seconds: a request with no byte either way
 * for the store's idle timeout (30 s) fails.
 */
export const THROTTLE_SLICE_BYTES = 16 * 1024;

/** What a burst may be: a tenth of a second at the rate, at least one slice. */
function burstFor(rateBytesPerSecond: number): number {
  return Math.max(THROTTLE_SLICE_BYTES, Math.floor(rateBytesPerSecond / 10));
}

/** One direction's limit: waits for tokens; a wait cut short by its signal gives its tokens back. */
export class BandwidthLimiter {
  private readonly bucket: TokenBucket;

  constructor(
    rateBytesPerSecond: number,
    private readonly clock: LimiterClock = systemClock,
    burstBytes: number = burstFor(rateBytesPerSecond),
  ) {
    this.bucket = new TokenBucket(rateBytesPerSecond, burstBytes, clock.nowMs());
  }

  get rateBytesPerSecond(): number {
    return this.bucket.rateBytesPerSecond;
  }

  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted === true) throw abortReason(signal);
    const waitMs = this.bucket.reserve(bytes, this.clock.nowMs());
    if (waitMs <= 0) return;
    try {
      await this.clock.sleep(waitMs, signal);
    } catch (error) {
      this.bucket.refund(bytes, this.clock.nowMs());
      throw error;
    }
  }
}

/** The limits of both directions; undefined for a direction without one. */
export interface BandwidthLimiters {
  up: BandwidthLimiter | undefined;
  down: BandwidthLimiter | undefined;
}
