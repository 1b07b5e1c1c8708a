import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { AppError, isAppError } from '../errors.js';
import { withRetry } from '../retry.js';
import { RangeDownloadThread } from './range-download-thread-client.js';
import { translateS3Error } from './s3-errors.js';
import { planRanges } from './byte-ranges.js';
import type { ByteRange, FileDownloadOptions } from './store.js';

/**
 * An S3 object written into a local file by a thread of its own (see s3-range-download-thread.ts).
 * This thread decides which bytes to ask for and signs each GET (a presigned URL, so the thread
 * needs neither the SDK nor the credentials); the thread fetches and writes. A range cut in
 * transit is asked for again from the first byte it had not written, within the retry policy.
 */

export interface S3RangeDownloadContext {
  client: S3Client;
  bucket: string;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
}

/**
 * A signed URL is only checked when its GET starts, and each attempt gets a fresh one: a few
 * minutes cover any clock skew the server allows, and credentials that rotate meanwhile.
 */
const URL_LIFETIME_S = 900;

export async function downloadS3RangesToFile(context: S3RangeDownloadContext, fullKey: string, options: FileDownloadOptions): Promise<void> {
  const ranges = planRanges(options.sizeBytes, options.rangeBytes, options.ranges);
  const lanes = Math.min(options.rangesInFlight, ranges.length);
  const thread = new RangeDownloadThread(
    { fd: options.fd, sockets: Math.max(1, lanes), connectTimeoutMs: context.connectTimeoutMs, idleTimeoutMs: context.idleTimeoutMs },
    (error, what) => translateS3Error(error, what),
  );
  const stop = new AbortController();
  // A cancelled restore, or a range failed for good: the thread stops at once, the rest is abandoned.
  const stopAll = (reason: unknown): void => {
    if (stop.signal.aborted) return;
    stop.abort(reason);
    void thread.close(isAppError(reason) ? reason : new AppError('cancelled', `download ${fullKey}: cancelled`, { cause: reason }));
  };
  const onCancel = (): void => stopAll(new AppError('cancelled', `download ${fullKey}: cancelled`, { cause: options.signal?.reason }));
  if (options.signal?.aborted === true) onCancel();
  options.signal?.addEventListener('abort', onCancel, { once: true });

  const sign = async (): Promise<string> => {
    try {
      return await getSignedUrl(context.client, new GetObjectCommand({ Bucket: context.bucket, Key: fullKey }), { expiresIn: URL_LIFETIME_S });
    } catch (error) {
      throw translateS3Error(error, `sign a download of ${fullKey}`);
    }
  };
  const fetchRange = async (range: ByteRange): Promise<void> => {
    let next = range.start;
    const what = `download ${fullKey} bytes ${range.start}-${range.end - 1}`;
    await withRetry(
      async () => {
        const url = await sign();
        await thread.fetch({ url, start: next, end: range.end }, what, (position, length) => {
          next = position + length;
          options.onWritten(position, length);
        });
      },
      {
        policy: options.rangeRetry.policy,
        signal: stop.signal,
        retryIf: (error) => error.kind === 'remote_unavailable' && error.retryable,
        onRetry: (error, attempt, delayMs) => options.rangeRetry.onRetry?.({ what, attempt, delayMs, error }),
      },
    );
  };

  let taken = 0;
  const lane = async (): Promise<void> => {
    while (taken < ranges.length && !stop.signal.aborted) {
      const range = ranges[taken] as ByteRange;
      taken += 1;
      await fetchRange(range);
    }
  };
  const started = Array.from({ length: lanes }, () =>
    lane().catch((error: unknown) => {
      stopAll(error);
      throw error;
    }),
  );
  try {
    await Promise.all(started);
    if (stop.signal.aborted) throw stop.signal.reason;
  } catch (error) {
    // The first failure is the one to report; the others are what stopping did to the rest.
    throw stop.signal.aborted && isAppError(stop.signal.reason) ? stop.signal.reason : error;
  } finally {
    options.signal?.removeEventListener('abort', onCancel);
    await Promise.allSettled(started);
    // The caller closes the file next: the thread must have stopped writing by then.
    await thread.close();
  }
}
