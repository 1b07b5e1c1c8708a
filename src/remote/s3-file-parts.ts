import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { AppError, asAppError } from '../errors.js';
import { retryInUpload } from './part-retry.js';
import { CANCEL_GRACE_MS, type FileBody, type PutOptions } from './store.js';

/**
 * Multipart upload of a local file for S3RemoteStore. lib-storage takes a stream and copies it
 * into a fresh buffer per part, which for a GB-sized file costs a copy of every byte and keeps
 * the garbage collector busy. A file can be read at any offset instead: each part is read into
 * one of `partsInFlight` buffers that are reused for the whole file.
 */

export interface S3FilePartsContext {
  client: S3Client;
  bucket: string;
  partsInFlight: number;
  /** Send If-None-Match: * on completion (where the server honours it). */
  ifNoneMatch: boolean;
}

/** Returns the ETag the completion answered with ('' or undefined from servers that give none). */
export async function uploadFileInParts(context: S3FilePartsContext, fullKey: string, body: FileBody, partSizeBytes: number, options: PutOptions): Promise<string | undefined> {
  const { client, bucket } = context;
  if (options.signal?.aborted === true) throw new AppError('cancelled', `upload ${fullKey}: aborted`);
  // Not cancellable: cut short, the server may still create the upload, and without its id it
  // could never be aborted. A cancellation meanwhile is seen once it exists, and it is aborted.
  const created = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: fullKey, Metadata: options.metadata }));
  const uploadId = created.UploadId;
  if (uploadId === undefined) throw new AppError('remote_unavailable', `upload ${fullKey}: no UploadId in the answer`);
  const upload = new PartsInFlight(context, fullKey, uploadId, body, partSizeBytes, options);
  try {
    const parts = await upload.sendAll();
    // The request is not cancellable: cut short, the server might complete it anyway without
    // memsync knowing. A completion lost in transit and sent again finds the upload gone (the
    // caller starts over and finds its own object) or the key taken (a conflict it resolves).
    const answer = await retryInUpload(
      () =>
        client.send(
          new CompleteMultipartUploadCommand({ Bucket: bucket, Key: fullKey, UploadId: uploadId, MultipartUpload: { Parts: parts }, IfNoneMatch: context.ifNoneMatch ? '*' : undefined }),
        ),
      `upload ${fullKey}: complete`,
      options.partRetry,
      options.signal,
    );
    return answer.ETag;
  } catch (error) {
    // Sent parts are stored (and billed) until the upload is aborted: always abort, without the signal.
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: fullKey, UploadId: uploadId })).catch(() => undefined);
    throw upload.cancelled ? new AppError('cancelled', `upload ${fullKey}: aborted`, { cause: error }) : error;
  } finally {
    upload.dispose();
  }
}

/**
 * The parts of one upload: read in order (so `onPart` sees the file front to back), sent up to
 * `partsInFlight` at a time. A part that fails in transit is sent again in place (part-retry.ts)
 * while its slot waits: no more buffers than slots. A failure for good or a cancellation stops
 * new parts and the waits of parts being retried; parts already on the wire are let finish,
 * since S3 may store a part whose request was cut after the abort (they are cut after
 * CANCEL_GRACE_MS when cancelled, so a shutdown is not held up by a slow link).
 */
class PartsInFlight {
  cancelled = false;
  private failure: unknown;
  private nextIndex = 0;
  private sentBytes = 0;
  /** Each part's read waits for the one before it. */
  private reading: Promise<unknown> = Promise.resolve();
  private readonly partCount: number;
  private readonly requests = new AbortController();
  /** Aborted on a cancellation or a failure for good: parts waiting to be sent again give up. */
  private readonly stopping = new AbortController();
  private graceTimer: NodeJS.Timeout | undefined;
  private readonly onCancel = (): void => {
    this.cancelled = true;
    this.stopping.abort();
    this.graceTimer = setTimeout(() => this.requests.abort(), CANCEL_GRACE_MS);
  };

  constructor(
    private readonly context: S3FilePartsContext,
    private readonly fullKey: string,
    private readonly uploadId: string,
    private readonly body: FileBody,
    private readonly partSizeBytes: number,
    private readonly options: PutOptions,
  ) {
    this.partCount = Math.ceil(options.sizeBytes / partSizeBytes);
    // Aborted while the upload was being created: no event will come.
    if (options.signal?.aborted === true) this.onCancel();
    else options.signal?.addEventListener('abort', this.onCancel, { once: true });
  }

  async sendAll(): Promise<CompletedPart[]> {
    const parts = new Array<CompletedPart>(this.partCount);
    const slots = Array.from({ length: Math.min(this.context.partsInFlight, this.partCount) }, () => Buffer.allocUnsafe(this.partSizeBytes));
    await Promise.all(slots.map((slot) => this.sendWith(slot, parts)));
    if (this.cancelled) throw new AppError('cancelled', `upload ${this.fullKey}: aborted`);
    if (this.failure !== undefined) throw this.failure;
    return parts;
  }

  private stopped(): boolean {
    return this.cancelled || this.failure !== undefined;
  }

  /** One slot's loop: take the next part, read it into the slot, send it, repeat. */
  private async sendWith(slot: Buffer, parts: CompletedPart[]): Promise<void> {
    while (this.nextIndex < this.partCount && !this.stopped()) {
      const index = this.nextIndex;
      this.nextIndex += 1;
      const offset = index * this.partSizeBytes;
      const data = slot.subarray(0, Math.min(this.partSizeBytes, this.options.sizeBytes - offset));
      try {
        const read = this.reading.then(async () => {
          if (this.stopped()) return undefined;
          await this.readPart(data, offset, index);
          return { md5: this.options.onPart?.(data) };
        });
        this.reading = read.catch(() => undefined);
        const prepared = await read;
        if (prepared === undefined) return;
        const etag = await this.sendPart(index, data, prepared.md5);
        parts[index] = { PartNumber: index + 1, ETag: etag };
        this.sentBytes += data.length;
        this.options.onProgress?.(this.sentBytes);
      } catch (error) {
        this.failure ??= error;
        this.stopping.abort();
        return;
      }
    }
  }

  /**
   * Sends part `index` from `data`, and again in place when it fails in transit. A retry reads
   * the part from the file again and sends the Content-MD5 of the first read: a file changed
   * meanwhile is refused by the server (BadDigest) instead of stored under the first digest.
   */
  private async sendPart(index: number, data: Buffer, md5: Buffer | undefined): Promise<string | undefined> {
    const what = `upload ${this.fullKey}: part ${index + 1} of ${this.partCount}`;
    const answer = await retryInUpload(
      async (attempt) => {
        if (attempt > 0) await this.readPart(data, index * this.partSizeBytes, index);
        return this.context.client.send(
          new UploadPartCommand({
            Bucket: this.context.bucket,
            Key: this.fullKey,
            UploadId: this.uploadId,
            PartNumber: index + 1,
            Body: data,
            ContentLength: data.length,
            ContentMD5: md5?.toString('base64'),
          }),
          { abortSignal: this.requests.signal },
        );
      },
      what,
      this.options.partRetry,
      this.stopping.signal,
    );
    return answer.ETag;
  }

  /** A failed read of the local file is the file's problem, never one to send again for. */
  private async readPart(data: Buffer, offset: number, index: number): Promise<void> {
    try {
      await this.body.read(data, offset);
    } catch (error) {
      throw asAppError(error, 'local_io', `upload ${this.fullKey}: read part ${index + 1} at ${offset}`);
    }
  }

  dispose(): void {
    clearTimeout(this.graceTimer);
    this.options.signal?.removeEventListener('abort', this.onCancel);
  }
}
