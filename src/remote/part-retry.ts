import { AppError, isAppError } from '../errors.js';
import { DEFAULT_RETRY, partRetryPolicy, withRetry } from '../retry.js';
import { errorCodeOf, translateS3Error } from './s3-errors.js';
import type { PartRetryOptions } from './store.js';

/**
 * Retries of one multipart upload's requests (its parts, its completion) in place, within the
 * same upload: a connection cut late in a large file then costs the parts it cut, not the file.
 */

/**
 * What a failed request of a multipart upload leads to:
 * - retry-part: the connection or the server failed (reset, timeout, 5xx, throttling): the same
 *   request, sent again, can succeed;
 * - restart-upload: the upload itself is gone (aborted by a sweep, expired): only a new one helps;
 * - abort-upload: anything else (a refusal, a wrong digest, a cancellation): the upload is
 *   aborted and the failure goes to the caller as it is.
 */
export type PartFailureAction = 'retry-part' | 'restart-upload' | 'abort-upload';

export function partFailureAction(error: AppError): PartFailureAction {
  if (serverCodeOf(error) === 'NoSuchUpload') return 'restart-upload';
  return error.kind === 'remote_unavailable' && error.retryable ? 'retry-part' : 'abort-upload';
}

/** The server's error code behind an AppError: recorded in its details, or its cause's own. */
function serverCodeOf(error: AppError): string {
  const recorded = error.details?.code;
  return typeof recorded === 'string' ? recorded : errorCodeOf(error.cause);
}

export const DEFAULT_PART_RETRY: PartRetryOptions = { policy: partRetryPolicy(DEFAULT_RETRY) };

/** Turns what a store's SDK threw into an AppError, naming the request with `what`. */
export type TranslateFailure = (error: unknown, what: string) => AppError;

/**
 * Runs `send` (one request of a multipart upload; `attempt` 0 is the first) until it succeeds or
 * `partFailureAction` says stop. The waits between tries end when `stop` aborts (the upload is
 * cancelled or another of its parts failed for good). SDK errors are translated with `what` by
 * `translate`, the S3 translation unless another store's is given.
 *
 * A failure that used up the budget is marked not retryable: the retries an outage deserved are
 * spent, and a caller retrying the whole upload would send the file again only to meet the same
 * outage; the snapshot's own retry takes over. A gone upload stays retryable: starting over is
 * the one thing that helps.
 */
export async function retryInUpload<T>(
  send: (attempt: number) => Promise<T>,
  what: string,
  retry: PartRetryOptions | undefined,
  stop: AbortSignal | undefined,
  translate: TranslateFailure = translateS3Error,
): Promise<T> {
  const { policy, onRetry } = retry ?? DEFAULT_PART_RETRY;
  try {
    return await withRetry(
      async (attempt) => {
        try {
          return await send(attempt);
        } catch (error) {
          throw translate(error, what);
        }
      },
      {
        policy,
        signal: stop,
        retryIf: (error) => partFailureAction(error) === 'retry-part',
        onRetry: (error, attempt, delayMs) => onRetry?.({ what, attempt, delayMs, error }),
      },
    );
  } catch (error) {
    if (!isAppError(error) || error.kind === 'cancelled') throw error;
    const action = partFailureAction(error);
    if (action === 'restart-upload') {
      throw new AppError('remote_unavailable', `${what}: the multipart upload is gone (NoSuchUpload); it is started again`, { cause: error, retryable: true });
    }
    if (action === 'abort-upload') throw error;
    if (stop?.aborted === true) throw new AppError('cancelled', `${what}: stopped`, { cause: error });
    throw new AppError('remote_unavailable', `${what}: failed ${policy.attempts} times: ${error.message}`, {
      cause: error,
      retryable: false,
      hint: 'the store stayed unreachable for the whole part retry budget; the snapshot is retried later',
      details: { attempts: policy.attempts },
    });
  }
}
