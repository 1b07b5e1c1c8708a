import { AppError } from '../errors.js';

/**
 * Translation of AWS SDK failures into AppError kinds, at the edge. Some servers (Ceph RGW)
 * answer with an empty <Message>, so the code and status are what identify an error.
 */

interface SdkLikeError {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

function asSdkError(error: unknown): SdkLikeError {
  return typeof error === 'object' && error !== null ? (error as SdkLikeError) : {};
}

export function httpStatusOf(error: unknown): number | undefined {
  return asSdkError(error).$metadata?.httpStatusCode;
}

export function errorCodeOf(error: unknown): string {
  const e = asSdkError(error);
  return e.Code ?? e.code ?? e.name ?? 'UnknownError';
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'TimeoutError', 'RequestTimeout', 'RequestTimeTooSkewed']);
const THROTTLE_CODES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'TooManyRequests', 'RequestLimitExceeded']);

export function isNotFound(error: unknown): boolean {
  const status = httpStatusOf(error);
  const code = errorCodeOf(error);
  return status === 404 || code === 'NotFound' || code === 'NoSuchKey';
}

export function isAbort(error: unknown): boolean {
  const name = asSdkError(error).name;
  return name === 'AbortError' || (error instanceof Error && error.message === 'Request aborted');
}

/** Maps an SDK error to the AppError kind the rest of memsync reasons about. */
export function translateS3Error(error: unknown, operation: string): AppError {
  if (error instanceof AppError) return error;
  const status = httpStatusOf(error);
  const code = errorCodeOf(error);
  const message = asSdkError(error).message;
  const detail = `${code}${status === undefined ? '' : ` (HTTP ${status})`}${message !== undefined && message !== '' && message !== code ? `: ${message}` : ''}`;
  const context = `${operation}: ${detail}`;

  if (isAbort(error)) return new AppError('cancelled', `${operation}: aborted`, { cause: error });
  if (isNotFound(error)) {
    if (code === 'NoSuchBucket') {
      return new AppError('remote_rejected', context, { cause: error, hint: 'create the bucket or fix CLOUD_SYNC_BUCKET' });
    }
    return new AppError('not_found', context, { cause: error });
  }
  if (status === 412 || status === 409) return new AppError('conflict', context, { cause: error });
  if (status === 400 && code === 'BadDigest') {
    // The bytes that arrived are not the bytes that were read: a changed file or a corrupting hop.
    return new AppError('integrity', context, { cause: error });
  }
  if (status === 403 || code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch' || code === 'AccessDenied') {
    return new AppError('remote_rejected', context, {
      cause: error,
      hint: 'check CLOUD_SYNC_ACCESS_KEY / CLOUD_SYNC_SECRET_KEY and the bucket policy',
    });
  }
  if (status === 501 || code === 'NotImplemented') return new AppError('remote_rejected', context, { cause: error, hint: 'the server does not implement this operation' });
  const networkCode = asSdkError(error).code;
  if (
    status === undefined ||
    status >= 500 ||
    status === 429 ||
    status === 408 ||
    THROTTLE_CODES.has(code) ||
    NETWORK_CODES.has(code) ||
    (networkCode !== undefined && NETWORK_CODES.has(networkCode))
  ) {
    return new AppError('remote_unavailable', context, { cause: error, hint: 'the store is unreachable or overloaded; memsync retries with backoff' });
  }
  return new AppError('remote_rejected', context, { cause: error });
}
