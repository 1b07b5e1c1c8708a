import type { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import type { PartRetryOptions, RemoteStore } from '../remote/store.js';
import { partRetryPolicy, withRetry, type RetryPolicy } from '../retry.js';
import { METADATA_AGENT } from './plan.js';

/** One store request of a snapshot upload, retried by the upload's policy; `what` names it in the retry log line. */
export interface Retrying {
  <T>(operation: () => Promise<T>, what: string, signal: AbortSignal): Promise<T>;
  /**
   * For a multipart upload, whose parts the store retries in place: the part budget (the
   * request policy with a few more tries) and the same log line and health report per retry.
   */
  readonly inParts: PartRetryOptions;
}

export function retryingWith(policy: RetryPolicy, log: Logger, onRetry: ((error: AppError) => void) | undefined): Retrying {
  const report = (what: string, error: AppError, attempt: number, delayMs: number): void => {
    log.warn('retrying', { operation: what, attempt, delayMs, error: error.message });
    onRetry?.(error);
  };
  const retrying = <T>(operation: () => Promise<T>, what: string, signal: AbortSignal): Promise<T> =>
    withRetry(operation, { policy, signal, onRetry: (error, attempt, delayMs) => report(what, error, attempt, delayMs) });
  const inParts: PartRetryOptions = { policy: partRetryPolicy(policy), onRetry: (retry) => report(retry.what, retry.error, retry.attempt, retry.delayMs) };
  return Object.assign(retrying, { inParts });
}

/** A small object of this agent's (claim, signatures, manifest) written only where the name is free: a taken one fails as a conflict. */
export function putIfAbsent(store: RemoteStore, key: string, bytes: Buffer, md5Hex: string | undefined, agentId: string, signal: AbortSignal): Promise<void> {
  return store.put(key, () => bytes, { sizeBytes: bytes.length, md5Hex, partSizeBytes: undefined, ifNoneMatch: true, metadata: { [METADATA_AGENT]: agentId }, signal, onProgress: undefined });
}
