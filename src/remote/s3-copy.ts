import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { AppError } from '../errors.js';
import { errorCodeOf, translateS3Error } from './s3-errors.js';
import type { CopyOptions } from './store.js';

/**
 * Server-side copies for S3RemoteStore: one CopyObject, or (for sources CopyObject cannot
 * take, above 5 GiB) a multipart upload whose parts are UploadPartCopy ranges of the source.
 * Either way the bytes never pass through memsync.
 */

export interface S3CopyContext {
  client: S3Client;
  bucket: string;
  /** Parts copied in parallel for a multipart copy. */
  partsInFlight: number;
}

export async function copyS3Object(context: S3CopyContext, sourceFullKey: string, targetFullKey: string, options: CopyOptions): Promise<void> {
  const what = `copy ${sourceFullKey} to ${targetFullKey}`;
  if (options.signal?.aborted === true) throw new AppError('cancelled', `${what}: aborted`);
  try {
    if (options.partSizeBytes === undefined) await copySingle(context, sourceFullKey, targetFullKey, options);
    else await copyInParts(context, sourceFullKey, targetFullKey, options.partSizeBytes, options);
  } catch (error) {
    throw withServerCode(error, what);
  }
}

/** The source as x-amz-copy-source wants it: bucket/key, URL-encoded per segment (slashes kept). */
export function copySource(bucket: string, fullKey: string): string {
  return `${bucket}/${fullKey.split('/').map(encodeURIComponent).join('/')}`;
}

async function copySingle(context: S3CopyContext, sourceFullKey: string, targetFullKey: string, options: CopyOptions): Promise<void> {
  await context.client.send(
    new CopyObjectCommand({
      Bucket: context.bucket,
      Key: targetFullKey,
      CopySource: copySource(context.bucket, sourceFullKey),
      CopySourceIfMatch: quoted(options.sourceEtag),
      // COPY (the default) would give the new object the source's memsync-agent and memsync-sha256.
      MetadataDirective: 'REPLACE',
      Metadata: options.metadata,
    }),
    { abortSignal: options.signal },
  );
}

async function copyInParts(context: S3CopyContext, sourceFullKey: string, targetFullKey: string, partSizeBytes: number, options: CopyOptions): Promise<void> {
  const { client, bucket } = context;
  const created = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: targetFullKey, Metadata: options.metadata }), { abortSignal: options.signal });
  const uploadId = created.UploadId;
  if (uploadId === undefined) throw new AppError('remote_unavailable', `copy to ${targetFullKey}: no UploadId in the answer`);
  try {
    const partCount = Math.max(1, Math.ceil(options.sizeBytes / partSizeBytes));
    const parts: CompletedPart[] = new Array<CompletedPart>(partCount);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < partCount) {
        const index = next;
        next += 1;
        const first = index * partSizeBytes;
        const last = Math.min(options.sizeBytes, first + partSizeBytes) - 1;
        const answer = await client.send(
          new UploadPartCopyCommand({
            Bucket: bucket,
            Key: targetFullKey,
            UploadId: uploadId,
            PartNumber: index + 1,
            CopySource: copySource(bucket, sourceFullKey),
            CopySourceRange: `bytes=${first}-${last}`,
            // Every part from the same version of the source, or the result would be a splice.
            CopySourceIfMatch: quoted(options.sourceEtag),
          }),
          { abortSignal: options.signal },
        );
        parts[index] = { PartNumber: index + 1, ETag: answer.CopyPartResult?.ETag };
      }
    };
    await Promise.all(Array.from({ length: Math.min(context.partsInFlight, partCount) }, worker));
    await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: targetFullKey, UploadId: uploadId, MultipartUpload: { Parts: parts } }), {
      abortSignal: options.signal,
    });
  } catch (error) {
    // Copied parts are billed until the upload is aborted; the abort is sent without the signal on purpose.
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: targetFullKey, UploadId: uploadId })).catch(() => undefined);
    throw error;
  }
}

export function quoted(etag: string): string {
  return etag.startsWith('"') ? etag : `"${etag}"`;
}

/** The usual translation, plus the server's error code so the caller can name why a copy was refused. */
export function withServerCode(error: unknown, what: string): AppError {
  const translated = translateS3Error(error, what);
  if (translated === error) return translated;
  return new AppError(translated.kind, translated.message, { cause: error, retryable: translated.retryable, hint: translated.hint, details: { code: errorCodeOf(error) } });
}
