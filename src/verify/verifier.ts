import { isAppError } from '../errors.js';
import type { Keyring } from '../crypto/keys.js';
import type { Logger } from '../log.js';
import { plaintextOf } from '../restore/download-file.js';
import { consumeBody } from '../remote/body.js';
import type { RemoteStore } from '../remote/store.js';
import { planRemoteSnapshot, type ExpectedFile } from '../restore/remote-snapshot.js';
import { withRetry, type RetryPolicy } from '../retry.js';
import { fileKey } from '../snapshot/manifest.js';
import { checkObject, ObjectDigester } from '../snapshot/object-check.js';
import { judgeSnapshot, unreadableSnapshot, type FileResult, type SnapshotVerification } from './report.js';

/**
 * Re-reads what the bucket holds for a snapshot and checks every object against what it must
 * be (the manifest's size and SHA-256, or without a manifest the listed size and ETag). Bodies
 * are hashed as they stream and never kept, so memory does not grow with object size. A
 * mismatch is a result; a store that cannot be read is an error (nothing could be judged).
 */

export interface VerifierOptions {
  store: RemoteStore;
  retry: RetryPolicy;
  /** Objects read at once within a snapshot. */
  concurrency: number;
  log: Logger;
  now: () => number;
  /** The configured encryption key; without it encrypted snapshots fail with a clear error. */
  keyring?: Keyring;
}

export interface VerifyProgress {
  snapshot: string;
  totalBytes: number;
  checkedBytes: number;
}

export interface VerifyOptions {
  signal?: AbortSignal;
  onProgress?: (progress: VerifyProgress) => void;
}

export class RemoteVerifier {
  constructor(private readonly options: VerifierOptions) {}

  async verifySnapshot(name: string, { signal, onProgress }: VerifyOptions = {}): Promise<SnapshotVerification> {
    const startedMs = this.options.now();
    const log = this.options.log.child({ snapshot: name });
    let plan;
    try {
      plan = await this.retrying(() => planRemoteSnapshot(this.options.store, name, signal, this.options.keyring), `read remote snapshot ${name}`, signal);
    } catch (error) {
      // A manifest that contradicts the listing (a file missing, another size) fails the snapshot without reading a byte.
      if (!isAppError(error, 'integrity')) throw error;
      const file = typeof error.details?.file === 'string' ? error.details.file : undefined;
      log.warn('verification failed', { file, reason: error.message });
      return unreadableSnapshot(name, { path: file, reason: error.message }, this.options.now() - startedMs);
    }

    const progress: VerifyProgress = { snapshot: name, totalBytes: plan.totalBytes, checkedBytes: 0 };
    onProgress?.({ ...progress });
    const results = await mapLimited(plan.files, this.options.concurrency, (file) =>
      this.verifyFile(name, file, signal, (bytes) => {
        progress.checkedBytes += bytes;
        onProgress?.({ ...progress });
      }),
    );
    const verdict = judgeSnapshot({ name, manifest: plan.manifest !== undefined, bytes: plan.totalBytes, durationMs: this.options.now() - startedMs }, results);
    if (verdict.status === 'failed') log.warn('verification failed', { failures: verdict.failures });
    else log.info('snapshot verified', { status: verdict.status, files: verdict.files, bytes: verdict.bytes, verification: verdict.verification, durationMs: verdict.durationMs });
    return verdict;
  }

  private async verifyFile(name: string, file: ExpectedFile, signal: AbortSignal | undefined, onBytes: (bytes: number) => void): Promise<FileResult> {
    const key = fileKey(name, file.path);
    let counted = 0;
    try {
      return await this.retrying(
        async () => {
          // A retried read starts over: take back what the failed attempt counted.
          onBytes(-counted);
          counted = 0;
          const digester = new ObjectDigester(file);
          const body = plaintextOf(await this.options.store.get(key, signal), key, file, this.options.keyring);
          await consumeBody(body, key, (chunk) => {
            digester.update(chunk);
            counted += chunk.length;
            onBytes(chunk.length);
          });
          const check = checkObject(file, digester.digest());
          return check.ok ? { path: file.path, ok: true, verification: check.verification } : { path: file.path, ok: false, reason: check.reason };
        },
        `verify ${key}`,
        signal,
      );
    } catch (error) {
      // Listed a moment ago and gone now: what the snapshot says it holds is not there.
      if (isAppError(error, 'not_found')) return { path: file.path, ok: false, reason: 'object is missing (deleted since it was listed)' };
      // An encrypted object that fails authentication was altered or cut short: a finding, not a failure to read.
      if (isAppError(error, 'integrity')) return { path: file.path, ok: false, reason: error.message };
      throw error;
    }
  }

  private retrying<T>(operation: () => Promise<T>, what: string, signal: AbortSignal | undefined): Promise<T> {
    return withRetry(operation, {
      policy: this.options.retry,
      signal,
      onRetry: (error, attempt, delayMs) => this.options.log.warn('retrying', { operation: what, attempt, delayMs, error: error.message }),
    });
  }
}

/** Maps with at most `limit` calls in flight; the first failure stops new calls and is thrown once the running ones end. */
async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next;
      next += 1;
      try {
        results[index] = await fn(items[index] as T);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}
