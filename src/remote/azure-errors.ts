import { AppError, isAppError } from '../errors.js';

/**
 * Translation of Azure SDK failures (RestError, aborts, socket errors) into AppError kinds, at
 * the edge. The service's error code (x-ms-error-code) identifies an error better than its status.
 */

interface AzureLikeError {
  name?: string;
  code?: string;
  statusCode?: number;
  message?: string;
  details?: { errorCode?: string };
}

function asAzureError(error: unknown): AzureLikeError {
  return typeof error === 'object' && error !== null ? (error as AzureLikeError) : {};
}

export function azureStatusOf(error: unknown): number | undefined {
  return asAzureError(error).statusCode;
}

export function azureCodeOf(error: unknown): string {
  const e = asAzureError(error);
  return e.details?.errorCode ?? e.code ?? e.name ?? 'UnknownError';
}

/** Credentials or permissions: every request would be refused until the operator acts. */
const CREDENTIAL_CODES = new Set([
  'AuthenticationFailed',
  'AuthorizationFailure',
  'AuthorizationPermissionMismatch',
  'AuthorizationResourceTypeMismatch',
  'AuthorizationServiceMismatch',
  'AuthorizationProtocolMismatch',
  'AuthorizationSourceIPMismatch',
  'InsufficientAccountPermissions',
  'AccountIsDisabled',
  'KeyBasedAuthenticationNotPermitted',
]);
/** No response, or one cut short: the connection failed, not the request. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'REQUEST_SEND_ERROR']);
/** The service is busy or timed out on its side (503 ServerBusy, 500 OperationTimedOut). */
const BUSY_CODES = new Set(['ServerBusy', 'OperationTimedOut', 'InternalError']);
const CONFLICT_CODES = new Set(['BlobAlreadyExists', 'ConditionNotMet', 'SourceConditionNotMet', 'TargetConditionNotMet']);
/** The bytes that arrived are not the bytes whose MD5 was sent: a changed file or a corrupting hop. */
const DIGEST_CODES = new Set(['Md5Mismatch', 'InvalidMd5']);
/** Blocks staged for a commit were discarded meanwhile (another writer committed the same name): a new attempt stages them again. */
const STALE_BLOCK_CODES = new Set(['InvalidBlockList', 'BlockListTooLong']);

export const AZURE_CREDENTIALS_HINT =
  'check CLOUD_SYNC_ACCESS_KEY (account name) / CLOUD_SYNC_SECRET_KEY (account key) or AZURE_STORAGE_CONNECTION_STRING, and that they grant Storage Blob Data Contributor on the container';
export const AZURE_CONTAINER_HINT = 'create the container or fix CLOUD_SYNC_BUCKET';
/** Said where memsync's own retries may not follow (a command run by hand): what to check. */
const UNREACHABLE_HINT = 'check CLOUD_SYNC_ENDPOINT (or the endpoint in AZURE_STORAGE_CONNECTION_STRING), the network, and that the store is running and not overloaded';

function isAbort(error: unknown): boolean {
  return asAzureError(error).name === 'AbortError';
}

/**
 * Maps an Azure SDK error to the AppError kind the rest of memsync reasons about. `signal` is the
 * caller's: an abort it did not ask for is the SDK's own per-try timeout, which is worth retrying.
 */
export function translateAzureError(error: unknown, operation: string, signal?: AbortSignal): AppError {
  if (error instanceof AppError) return error;
  const status = azureStatusOf(error);
  const code = azureCodeOf(error);
  const message = (asAzureError(error).message ?? '').split('\n')[0] ?? '';
  const detail = `${code}${status === undefined ? '' : ` (HTTP ${status})`}${message !== '' && message !== code ? `: ${message}` : ''}`;
  const context = `${operation}: ${detail}`;
  const options = { cause: error, details: { code } };

  if (isAbort(error)) {
    if (signal?.aborted === true) return new AppError('cancelled', `${operation}: aborted`, { cause: error });
    return new AppError('remote_unavailable', `${operation}: timed out`, { ...options, hint: `the store did not answer in time; ${UNREACHABLE_HINT}` });
  }
  if (code === 'ContainerNotFound') return new AppError('remote_rejected', context, { ...options, hint: AZURE_CONTAINER_HINT });
  if (status === 404) return new AppError('not_found', context, options);
  if (CONFLICT_CODES.has(code) || status === 412) return new AppError('conflict', context, options);
  if (DIGEST_CODES.has(code)) return new AppError('integrity', context, options);
  if (STALE_BLOCK_CODES.has(code)) return new AppError('remote_unavailable', context, { ...options, hint: 'staged blocks were discarded before the commit; memsync uploads them again' });
  if (status === 401 || CREDENTIAL_CODES.has(code)) return new AppError('remote_rejected', context, { ...options, hint: AZURE_CREDENTIALS_HINT });
  if (code === 'InvalidResourceName' || code === 'ContainerBeingDeleted' || code === 'ContainerDisabled') {
    return new AppError('remote_rejected', context, { ...options, hint: AZURE_CONTAINER_HINT });
  }
  if (status === 501) return new AppError('remote_rejected', context, { ...options, hint: 'the service does not implement this operation' });
  if (status === undefined || status >= 500 || status === 408 || status === 429 || BUSY_CODES.has(code) || NETWORK_CODES.has(code)) {
    return new AppError('remote_unavailable', context, { ...options, hint: UNREACHABLE_HINT });
  }
  // 403 that is not about credentials: a copy source the service could not read (CannotVerifyCopySource), a feature refused.
  if (status === 403) return new AppError('remote_rejected', context, { ...options, hint: AZURE_CREDENTIALS_HINT });
  if (status >= 400 && status < 500) {
    return new AppError('object_refused', context, { ...options, retryable: false, hint: 'the store refuses this request for what it carries; retrying will not help' });
  }
  return new AppError('remote_rejected', context, options);
}

/**
 * For requests about the container itself (listings, the access check): they carry no blob's
 * name or body, so a refusal is the store refusing memsync's configuration.
 */
export function translateAzureContainerError(error: unknown, operation: string, signal?: AbortSignal): AppError {
  const translated = translateAzureError(error, operation, signal);
  if (!isAppError(translated, 'object_refused') && !isAppError(translated, 'not_found')) return translated;
  return new AppError('remote_rejected', translated.message, {
    cause: error,
    hint: 'check CLOUD_SYNC_ENDPOINT, CLOUD_SYNC_BUCKET and CLOUD_SYNC_PREFIX',
    details: translated.details,
  });
}
