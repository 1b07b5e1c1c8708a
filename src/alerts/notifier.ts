import { hostname } from 'node:os';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RetryPolicy } from '../retry.js';
import { describeTarget, sendRequest, type Fetch } from './http.js';
import { RateLimiter } from './rate-limit.js';

/**
 * Alerts to an operator's webhook: a generic JSON POST that also carries `text` (Slack,
 * Mattermost, Google Chat) and `content` (Discord), so chat receivers show a line without
 * a translation service. Sending is fire-and-forget: syncing never waits for, or fails
 * because of, a webhook.
 */

export type AlertEvent = 'upload_failed' | 'conflict' | 'restore' | 'recovered';

export interface Alert {
  event: AlertEvent;
  snapshot: string | undefined;
  message: string;
  details?: Record<string, unknown>;
}

/** What the rest of memsync calls; a no-op when no webhook is configured. */
export interface Notifier {
  notify(alert: Alert): void;
}

export const silentNotifier: Notifier = { notify: () => undefined };

export interface WebhookPayload extends Record<string, unknown> {
  event: AlertEvent;
  snapshot: string | null;
  message: string;
  at: string;
  host: string;
  /** Same-type alerts held back by the rate limit since the previous one of this type. */
  suppressed: number;
  text: string;
  content: string;
}

/** The JSON body of one alert. Pure. */
export function buildPayload(alert: Alert, context: { atMs: number; host: string; suppressed: number }): WebhookPayload {
  const subject = alert.snapshot === undefined ? '' : ` ${alert.snapshot}`;
  const more = context.suppressed > 0 ? ` (+${context.suppressed} more ${alert.event} held back by the rate limit)` : '';
  const line = `memsync on ${context.host}: ${alert.event}${subject}: ${alert.message}${more}`;
  return {
    ...alert.details,
    event: alert.event,
    snapshot: alert.snapshot ?? null,
    message: alert.message,
    at: new Date(context.atMs).toISOString(),
    host: context.host,
    suppressed: context.suppressed,
    text: line,
    // Discord refuses content over 2,000 characters.
    content: line.length > 2000 ? `${line.slice(0, 1997)}...` : line,
  };
}

export interface WebhookNotifierOptions {
  url: string;
  log: Logger;
  now?: () => number;
  host?: string;
  /** At most one alert per event type per interval. Default 5 minutes. */
  intervalMs?: number;
  /** Per attempt. Default 5 s. */
  timeoutMs?: number;
  /** Default 3 attempts, 1-4 s apart. */
  retry?: RetryPolicy;
  fetch?: Fetch;
}

const FIVE_MINUTES_MS = 300_000;
const DEFAULT_RETRY: RetryPolicy = { attempts: 3, baseDelayMs: 1000, maxDelayMs: 4000 };

export class WebhookNotifier implements Notifier {
  private readonly now: () => number;
  private readonly host: string;
  private readonly limiter: RateLimiter;
  /** Warnings about the webhook itself are limited too: a dead endpoint must not flood the log. */
  private readonly warnings: RateLimiter;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly abort = new AbortController();

  constructor(private readonly options: WebhookNotifierOptions) {
    this.now = options.now ?? Date.now;
    this.host = options.host ?? hostname();
    const intervalMs = options.intervalMs ?? FIVE_MINUTES_MS;
    this.limiter = new RateLimiter(intervalMs, this.now);
    this.warnings = new RateLimiter(intervalMs, this.now);
  }

  notify(alert: Alert): void {
    if (this.abort.signal.aborted) return;
    const suppressed = this.limiter.take(alert.event);
    if (suppressed === undefined) {
      this.options.log.debug('alert held back by the rate limit', { event: alert.event, snapshot: alert.snapshot });
      return;
    }
    const payload = buildPayload(alert, { atMs: this.now(), host: this.host, suppressed });
    const sending = this.send(payload).finally(() => this.inFlight.delete(sending));
    this.inFlight.add(sending);
  }

  /** Idempotent; gives alerts in flight up to `deadlineMs`, then aborts them. */
  async stop(deadlineMs = 2000): Promise<void> {
    if (this.inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, deadlineMs);
      });
      await Promise.race([Promise.allSettled([...this.inFlight]), deadline]);
      clearTimeout(timer);
    }
    this.abort.abort();
  }

  private async send(payload: WebhookPayload): Promise<void> {
    try {
      await sendRequest({
        url: this.options.url,
        method: 'POST',
        json: payload,
        timeoutMs: this.options.timeoutMs ?? 5000,
        retry: this.options.retry ?? DEFAULT_RETRY,
        signal: this.abort.signal,
        ...(this.options.fetch === undefined ? {} : { fetch: this.options.fetch }),
      });
      this.options.log.debug('alert sent', { event: payload.event, snapshot: payload.snapshot ?? undefined, target: describeTarget(this.options.url) });
    } catch (error) {
      const fields = { event: payload.event, snapshot: payload.snapshot ?? undefined, error: describeError(error) };
      const heldBack = this.warnings.take('webhook');
      if (heldBack === undefined) this.options.log.debug('cannot send alert', fields);
      else this.options.log.warn('cannot send alert to the webhook; syncing is not affected', { ...fields, similarWarningsHeldBack: heldBack });
    }
  }
}
