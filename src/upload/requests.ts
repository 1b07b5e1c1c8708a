import type { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RemoteStore } from '../remote/store.js';
import { withRetry, type RetryPolicy } from '../retry.js';
import { METADATA_AGENT } from './plan.js';

/** One store request of a snapshot upload, retried by the upload's policy; `what` names it in the retry log line. */
export type Retrying = <T>(operation: () => Promise<T>, what: string, signal: AbortSignal) => Promise<T>;

export function retryingWith(policy: RetryPolicy, log: Logger, onRetry: ((error: AppError) => void) | undefined): Retrying {
  return <T>(operation: () => Promise<T>, what: string, signal: AbortSignal): Promise<T> =>
    withRetry(operation, {
      policy,
      signal,
      onRetry: (error, attempt, delayMs) => {
        log.warn('retrying', { operation: what, attempt, delayMs, error: error.message });
        onRetry?.(error);
      },
    });
}

/** A small object of this agent's (claim, signatures, manifest) written only where the name is free: a taken one fails as a conflict. */
export function putIfAbsent(store: RemoteStore, key: string, bytes: Buffer, md5Hex: string | undefined, agentId: string, signal: AbortSignal): Promise<void> {
  return store.put(key, () => bytes, { sizeBytes: bytes.length, md5Hex, partSizeBytes: undefined, ifNoneMatch: true, metadata: { [METADATA_AGENT]: agentId }, signal, onProgress: undefined });
}
