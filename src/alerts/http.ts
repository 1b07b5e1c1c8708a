import { AppError, describeError } from '../errors.js';
import { withRetry, type RetryPolicy } from '../retry.js';

/**
 * One outgoing request to an operator's endpoint (webhook, heartbeat), with a timeout per
 * attempt and a few retries. Failures are AppErrors: 'remote_unavailable' (network, timeout,
 * 5xx, 429; retried) or 'remote_rejected' (other statuses; not retried). Messages never carry
 * the URL: webhook URLs embed tokens.
 */

export type Fetch = typeof globalThis.fetch;

export interface OutgoingRequest {
  url: string;
  method: 'GET' | 'POST';
  json?: unknown;
  timeoutMs: number;
  retry: RetryPolicy;
  /** Aborts the request and any wait between retries (shutdown). */
  signal: AbortSignal;
  fetch?: Fetch;
}

/** Where a request goes, for log lines: the host only, never the path or query holding a token. */
export function describeTarget(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '(invalid URL)';
  }
}

export async function sendRequest(request: OutgoingRequest): Promise<void> {
  const doFetch = request.fetch ?? globalThis.fetch;
  const target = describeTarget(request.url);
  await withRetry(
    async () => {
      let response: Response;
      try {
        response = await doFetch(request.url, {
          method: request.method,
          headers: request.json === undefined ? {} : { 'content-type': 'application/json' },
          body: request.json === undefined ? undefined : JSON.stringify(request.json),
          signal: AbortSignal.any([request.signal, AbortSignal.timeout(request.timeoutMs)]),
        });
      } catch (error) {
        if (request.signal.aborted) throw new AppError('cancelled', `${request.method} ${target}: stopped`, { cause: error });
        throw new AppError('remote_unavailable', `${request.method} ${target}: ${describeError(error)}`, { cause: error });
      }
      // The body is not needed; reading it frees the connection for reuse.
      await response.arrayBuffer().catch(() => undefined);
      if (response.ok) return;
      const retryable = response.status >= 500 || response.status === 429 || response.status === 408;
      throw new AppError(retryable ? 'remote_unavailable' : 'remote_rejected', `${request.method} ${target}: HTTP ${response.status}`, { retryable });
    },
    { policy: request.retry, signal: request.signal },
  );
}
