/**
 * Retries of a failed sweep. A sweep that fails (the store unreachable at start, say) would
 * otherwise leave what it missed until the next cron sweep, up to a day later. One timer at most:
 * each failure doubles the wait up to a ceiling, a success resets it.
 */
export interface SweepRetryDelays {
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_SWEEP_RETRY: SweepRetryDelays = { baseDelayMs: 5_000, maxDelayMs: 300_000 };

/** The wait before retry number `attempt` (1 for the first): pure, for tests and for the log line. */
export function sweepRetryDelayMs(attempt: number, delays: SweepRetryDelays = DEFAULT_SWEEP_RETRY): number {
  return Math.min(delays.maxDelayMs, delays.baseDelayMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
}

export class SweepRetry {
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;

  constructor(
    private readonly run: () => void,
    private readonly delays: SweepRetryDelays = DEFAULT_SWEEP_RETRY,
  ) {}

  /** A sweep failed: schedules the next try (unless one is already scheduled) and returns its delay. */
  failed(): number | undefined {
    if (this.stopped) return undefined;
    this.failures += 1;
    const delayMs = sweepRetryDelayMs(this.failures, this.delays);
    if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.run();
      }, delayMs);
      // A pending retry must not keep a stopping process alive.
      this.timer.unref();
    }
    return delayMs;
  }

  succeeded(): void {
    this.failures = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
