import type { BlobClient } from '@azure/storage-blob';
import { AppError } from '../errors.js';
import { normalizeEtag } from '../snapshot/digest.js';
import type { AzureContainer } from './azure-client.js';
import { composeAzureBlob, type StagedPart } from './azure-compose.js';
import { translateAzureError } from './azure-errors.js';
import { reportedEtag, storedS3Etag, toAzureMetadata } from './azure-metadata.js';
import type { CopyOptions } from './store.js';

/**
 * Server-side copies for AzureRemoteStore: one Copy Blob, or (when the caller wants the ETag of
 * a copy in parts) staged ranges of the source, so the bytes never pass through memsync. A copy
 * replaces its target, as on S3: the uploader copies only to a key that was free when planned or
 * holds its own unfinished object, and a copy sent again after its answer was lost must succeed.
 */

export interface AzureCopyContext {
  container: AzureContainer;
  partsInFlight: number;
}

/** How often a copy the service has not finished at once is asked about. */
const COPY_POLL_INTERVAL_MS = 1_000;

export async function copyAzureBlob(context: AzureCopyContext, sourceName: string, targetName: string, options: CopyOptions): Promise<void> {
  const what = `copy ${sourceName} to ${targetName}`;
  if (options.signal?.aborted === true) throw new AppError('cancelled', `${what}: aborted`);
  if (options.partSizeBytes !== undefined) {
    await composeAzureBlob(context, { what, sourceName, targetName, sourceEtag: options.sourceEtag, parts: rangesOf(options.sizeBytes, options.partSizeBytes), body: undefined, metadata: options.metadata, signal: options.signal });
    return;
  }
  try {
    await copyWhole(context, sourceName, targetName, options, what);
  } catch (error) {
    throw translateAzureError(error, what, options.signal);
  }
}

function rangesOf(sizeBytes: number, partSizeBytes: number): StagedPart[] {
  const parts: StagedPart[] = [];
  for (let start = 0; start < sizeBytes || parts.length === 0; start += partSizeBytes) {
    parts.push({ kind: 'copy', sourceStart: start, sourceEnd: Math.min(sizeBytes, start + partSizeBytes), md5Hex: undefined });
    if (sizeBytes === 0) break;
  }
  return parts;
}

/**
 * Copy Blob carries the source's Content-MD5 over; the S3 ETag a committed block list recorded
 * is carried over here with the new metadata. The copy is conditional on the Azure ETag the
 * source had when its reported ETag was checked, so a source replaced in between is a conflict.
 *
 * A copy that is cancelled or ends without success leaves its target at zero bytes with the new
 * metadata (the service's rule for Copy Blob), so the target is deleted: the key was free, or
 * held this agent's own unfinished object, before the copy (see upload/server-side-copy.ts).
 */
async function copyWhole(context: AzureCopyContext, sourceName: string, targetName: string, options: CopyOptions, what: string): Promise<void> {
  const client = context.container.client;
  const source = await client.getBlobClient(sourceName).getProperties({ abortSignal: options.signal });
  const current = normalizeEtag(reportedEtag(source));
  if (current !== normalizeEtag(options.sourceEtag)) {
    throw new AppError('conflict', `${what}: the source has ETag ${current || '(none)'}, not ${normalizeEtag(options.sourceEtag)}`, {
      details: { code: 'SourceConditionNotMet', sourceEtag: normalizeEtag(options.sourceEtag), currentEtag: current },
    });
  }
  const target = client.getBlobClient(targetName);
  try {
    const poller = await target.beginCopyFromURL(client.getBlobClient(sourceName).url, {
      sourceConditions: { ifMatch: source.etag },
      metadata: toAzureMetadata(options.metadata, what, storedS3Etag(source)),
      abortSignal: options.signal,
      intervalInMs: COPY_POLL_INTERVAL_MS,
    });
    const onCancel = (): void => {
      void poller.cancelOperation().catch(() => undefined);
    };
    options.signal?.addEventListener('abort', onCancel, { once: true });
    try {
      const result = await poller.pollUntilDone();
      if (result.copyStatus !== undefined && result.copyStatus !== 'success') {
        throw new AppError('remote_unavailable', `${what}: the copy ended ${result.copyStatus}`, { details: { code: `Copy${result.copyStatus}` } });
      }
    } finally {
      options.signal?.removeEventListener('abort', onCancel);
    }
  } catch (error) {
    const translated = translateAzureError(error, what, options.signal);
    if (!copyMayHaveStarted(translated)) throw translated;
    throw await withTargetRemoved(target, translated);
  }
}

/**
 * Whether a failed copy may have written its target: a refusal of the request (a changed source,
 * no permission, a bad name) wrote nothing, and a key memsync does not own stays as it was.
 */
function copyMayHaveStarted(error: AppError): boolean {
  return error.kind === 'cancelled' || error.kind === 'remote_unavailable';
}

/** Deletes the target a failed copy may have left; a failure to delete is told with the copy's own. */
async function withTargetRemoved(target: BlobClient, failure: AppError): Promise<AppError> {
  try {
    await target.deleteIfExists();
    return failure;
  } catch (error) {
    const reason = translateAzureError(error, 'delete').message;
    return new AppError(failure.kind, `${failure.message}; the target it may have left (zero bytes, never reported with the source's ETag) was not deleted: ${reason}`, {
      cause: failure,
      retryable: failure.retryable,
      hint: failure.hint,
      details: failure.details,
    });
  }
}
