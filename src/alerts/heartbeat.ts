import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RetryPolicy } from '../retry.js';
import { sendRequest, type Fetch } from './http.js';
import { RateLimiter } from './rate-limit.js';

/**
 * A GET to a dead man's switch (healthchecks.io, Uptime Kuma push, Better Stack) after each
 * sweep whose uploads all succeeded: when memsync stops, hangs or keeps failing, the pings
 * stop and the monitoring service alerts. Fire-and-forget, like the webhook.
 */

export interface HeartbeatOptions {
  url: string;
  log: Logger;
  now?: () => number;
  timeoutMs?: number;
  retry?: RetryPolicy;
  fetch?: Fetch;
}

const WARN_INTERVAL_MS = 300_000;

export class Heartbeat {
  private readonly warnings: RateLimiter;
  private readonly abort = new AbortController();
  private sending: Promise<void> | undefined;

  constructor(private readonly options: HeartbeatOptions) {
    this.warnings = new RateLimiter(WARN_INTERVAL_MS, options.now ?? Date.now);
  }

  ping(): void {
    // One ping in flight is enough: the point is that one arrives.
    if (this.abort.signal.aborted || this.sending !== undefined) return;
    this.sending = this.send().finally(() => {
      this.sending = undefined;
    });
  }

  async stop(deadlineMs = 2000): Promise<void> {
    if (this.sending !== undefined) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.sending, new Promise<void>((resolve) => (timer = setTimeout(resolve, deadlineMs)))]);
      clearTimeout(timer);
    }
    this.abort.abort();
  }

  private async send(): Promise<void> {
    try {
      await sendRequest({
        url: this.options.url,
        method: 'GET',
        timeoutMs: this.options.timeoutMs ?? 5000,
        retry: this.options.retry ?? { attempts: 2, baseDelayMs: 1000, maxDelayMs: 2000 },
        signal: this.abort.signal,
        ...(this.options.fetch === undefined ? {} : { fetch: this.options.fetch }),
      });
      this.options.log.debug('heartbeat sent');
    } catch (error) {
      const heldBack = this.warnings.take('heartbeat');
      if (heldBack === undefined) this.options.log.debug('heartbeat failed', { error: describeError(error) });
      else this.options.log.warn('heartbeat failed; syncing is not affected', { error: describeError(error), similarWarningsHeldBack: heldBack });
    }
  }
}
