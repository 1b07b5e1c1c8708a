import { AppError, isAppError } from '../errors.js';

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

// RequestTimeout and IncompleteBody come as 400 but mean the connection, not the request, failed.
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'TimeoutError', 'RequestTimeout', 'IncompleteBody', 'RequestTimeTooSkewed']);
const THROTTLE_CODES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'TooManyRequests', 'RequestLimitExceeded']);
/**
 * Refusals of memsync itself rather than of one request: every request would get them, so the
 * store is unusable until the operator acts. Some of them come as 400 (a wrong region, an expired token).
 */
const CREDENTIAL_CODES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AuthorizationHeaderMalformed',
  'AuthorizationQueryParametersError',
  'IncompleteSignature',
  'MissingSecurityHeader',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
]);
/** S3 keys are at most 1,024 bytes; servers say so in their own words, proxies with 414. */
const KEY_TOO_LONG_CODES = new Set(['InvalidObjectName', 'KeyTooLongError']);

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
  // The SDK's placeholder when the server sent no <Message> (Ceph RGW) says nothing more than the code.
  const saysMore = message !== undefined && message !== '' && message !== code && message !== 'UnknownError';
  // A HEAD answer has no body, so no code either: the status is then all there is to say.
  const namesNothing = code === 'Unknown' || code === 'UnknownError';
  const head = status === undefined ? code : namesNothing ? `HTTP ${status}` : `${code} (HTTP ${status})`;
  const detail = `${head}${saysMore ? `: ${message}` : ''}`;
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
  if (status === 401 || status === 403 || CREDENTIAL_CODES.has(code)) {
    return new AppError('remote_rejected', context, {
      cause: error,
      hint: 'check CLOUD_SYNC_ACCESS_KEY / CLOUD_SYNC_SECRET_KEY, CLOUD_SYNC_REGION and the bucket policy',
    });
  }
  if (code === 'InvalidBucketName') return new AppError('remote_rejected', context, { cause: error, hint: 'fix CLOUD_SYNC_BUCKET' });
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
    return new AppError('remote_unavailable', context, { cause: error, hint: 'check CLOUD_SYNC_ENDPOINT, the network, and that the store is running and not overloaded' });
  }
  if (status >= 400 && status < 500) return objectRefused(code, status, context, error);
  return new AppError('remote_rejected', context, { cause: error });
}

/**
 * For requests about the bucket itself (HeadBucket, listings): they carry no object's key or
 * body, so a refusal is the store refusing memsync's configuration (a wrong region answers a
 * HEAD with a bare 400), and counts against the store like any other.
 */
export function translateS3BucketError(error: unknown, operation: string): AppError {
  const translated = translateS3Error(error, operation);
  if (!isAppError(translated, 'object_refused')) return translated;
  return new AppError('remote_rejected', translated.message, {
    cause: error,
    hint: 'check CLOUD_SYNC_ENDPOINT, CLOUD_SYNC_REGION, CLOUD_SYNC_BUCKET and CLOUD_SYNC_PREFIX',
    details: translated.details,
  });
}

/**
 * A working store refusing this one request for what it carries (its key, size or arguments):
 * the snapshot it belongs to fails, the same request would fail again, and the store's health
 * is not in question, so one odd file cannot mark the whole store unavailable.
 */
function objectRefused(code: string, status: number, context: string, cause: unknown): AppError {
  const hint =
    KEY_TOO_LONG_CODES.has(code) || status === 414
      ? 'object keys are limited to 1,024 bytes (prefix, snapshot name and path together): shorten the path or CLOUD_SYNC_PREFIX'
      : 'the store refuses this request for what it carries; retrying will not help';
  return new AppError('object_refused', context, { cause, retryable: false, hint, details: { code } });
}
