import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { BuildMiddleware, MetadataBearer } from '@aws-sdk/types';
import { AppError } from '../errors.js';
import { composeS3Object } from './s3-compose.js';
import { copyS3Object } from './s3-copy.js';
import { httpStatusOf, isNotFound, translateS3BucketError, translateS3Error } from './s3-errors.js';
import { uploadFileInParts } from './s3-file-parts.js';
import { listS3Objects } from './s3-listing.js';
import { downloadS3RangesToFile } from './s3-range-download.js';
import { IfMatchForm } from './s3-if-match.js';
import { keepServerDate } from './s3-server-clock.js';
import { bandwidthLimiters, type BandwidthLimit } from './bandwidth-limit.js';
import { askForAtRest, withAtRestHint, type S3AtRest } from './s3-storage-settings.js';
import { limitBandwidth } from './throttle-middleware.js';
import { isLockedKey, retainUntil, type ObjectLockSettings } from './object-lock.js';
import { bucketKeepsVersions, checkObjectLockEnabled, contentMd5OnEveryWrite, lockIfUnlocked, objectLockParameters, purgeS3Key, type PurgeOutcome } from './s3-lock.js';
import type { CreateOnlyHeader } from './s3-profile.js';
import { applyCreateOnlyHeader } from './s3-profile-requests.js';
import { CANCEL_GRACE_MS, isFileBody, type BodySource, type ComposeOptions, type FileBody, type FileDownloadOptions, type CopyOptions, type MultipartUpload, type PutOptions, type RemoteHead, type RemoteObject, type RemoteStore } from './store.js';

export interface S3StoreOptions {
  bucket: string;
  /** '' or ending in '/'. */
  prefix: string;
  endpoint: string | undefined;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
  forcePathStyle: boolean;
  /** Parts of one multipart file uploaded in parallel. Memory use is partSize x this, per file. */
  partsInFlight: number;
  /** A request with no byte either way for this long fails (retryable); default IDLE_SOCKET_TIMEOUT_MS. */
  idleTimeoutMs?: number;
  /** Bytes per second each way, shared by every request of this store; undefined: no limit. */
  bandwidthLimit?: BandwidthLimit;
  /** Storage class and server-side encryption asked for on every object created; undefined: the bucket's defaults. */
  atRest?: S3AtRest;
  /** Lock every snapshot object for this long (CLOUD_SYNC_OBJECT_LOCK_*); undefined: no lock of memsync's own (a bucket default still applies). */
  objectLock?: ObjectLockSettings | undefined;
  /** How a create-only write is stated (the S3 profile's); default S3's If-None-Match: *. */
  createOnlyHeader?: CreateOnlyHeader;
}

const CONNECT_TIMEOUT_MS = 10_000;

/** No byte either way for this long: the request failed (retryable). S3 answers or sends keep-alive whitespace well within it. */
const IDLE_SOCKET_TIMEOUT_MS = 30_000;

/** Writes whose bodies memsync checks itself; see unsignedPayload. */
const SELF_CHECKED_WRITES = new Set(['PutObjectCommand', 'UploadPartCommand']);

/**
 * Over plain HTTP the SDK signs a SHA-256 of every in-memory body (each multipart part is one),
 * a hash pass over every byte uploaded that costs as much CPU as memsync's own SHA-256. memsync
 * checks those writes itself (Content-MD5 on single PUTs, the ETag of the parts' MD5s after a
 * multipart upload, the manifest's SHA-256 on restore), so the body goes unsigned, as streamed
 * bodies already do. The headers stay signed.
 */
const unsignedPayload: BuildMiddleware<object, MetadataBearer> = (next, context) => async (args) => {
  const request = args.request as { headers?: Record<string, string> };
  if (SELF_CHECKED_WRITES.has(context.commandName ?? '') && request.headers !== undefined) request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
  return next(args);
};

export class S3RemoteStore implements RemoteStore {
  readonly location: string;
  private readonly client: S3Client;
  private conditionalWrites = true;
  private readonly ifMatchForm = new IfMatchForm();

  constructor(private readonly options: S3StoreOptions) {
    this.location = `s3://${options.bucket}/${options.prefix}${options.endpoint === undefined ? '' : ` at ${options.endpoint}`}`;
    this.client = new S3Client({
      region: options.region,
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle,
      credentials: options.credentials,
      // memsync verifies every object itself (size, MD5/ETag, SHA-256 in the manifest). The
      // SDK's default flexible checksums send streamed bodies with aws-chunked framing, which
      // several S3-compatible servers reject (411) or even store verbatim as content.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // Retries are memsync's own (they re-open the file); the SDK's cannot replay a stream.
      maxAttempts: 2,
      // Without these the SDK waits forever on a connection that never answers (a half-open
      // TCP connection, a hung server): uploads, restores and even the start would hang. Idle
      // time, not total time: a large part keeps the socket busy for as long as it takes.
      requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, socketTimeout: options.idleTimeoutMs ?? IDLE_SOCKET_TIMEOUT_MS },
    });
    this.client.middlewareStack.add(unsignedPayload, { step: 'build', name: 'memsyncUnsignedPayload' });
    askForAtRest(this.client, options.atRest);
    limitBandwidth(this.client, bandwidthLimiters(options.bandwidthLimit));
    this.client.middlewareStack.add(contentMd5OnEveryWrite, { step: 'build', name: 'memsyncContentMd5' });
    if (options.objectLock !== undefined) this.client.middlewareStack.add(objectLockParameters(this.client, options.objectLock, options.prefix), { step: 'initialize', name: 'memsyncObjectLock' });
    applyCreateOnlyHeader(this.client, options.createOnlyHeader ?? 'if-none-match');
  }

  useConditionalWrites(enabled: boolean): void {
    this.conditionalWrites = enabled;
  }

  private fullKey(key: string): string {
    return `${this.options.prefix}${key}`;
  }

  private relativeKey(fullKey: string): string {
    return fullKey.startsWith(this.options.prefix) ? fullKey.slice(this.options.prefix.length) : fullKey;
  }

  async checkAccess(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.options.bucket }));
    } catch (error) {
      const translated = translateS3BucketError(error, `open bucket ${this.options.bucket}`);
      if (translated.kind === 'not_found') {
        throw new AppError('remote_rejected', `bucket ${this.options.bucket} does not exist`, { cause: error, hint: 'create the bucket or fix CLOUD_SYNC_BUCKET' });
      }
      throw translated;
    }
    if (this.options.objectLock !== undefined) await checkObjectLockEnabled(this.client, this.options.bucket, this.options.objectLock);
  }

  async *listObjects(keyPrefix: string): AsyncIterable<RemoteObject[]> {
    const pages = listS3Objects({ client: this.client, bucket: this.options.bucket, prefix: this.fullKey(keyPrefix), reader: 'memsync' });
    for await (const objects of pages) {
      for (const object of objects) object.key = this.relativeKey(object.key);
      yield objects;
    }
  }

  async head(key: string): Promise<RemoteHead | undefined> {
    try {
      const command = new HeadObjectCommand({ Bucket: this.options.bucket, Key: this.fullKey(key) });
      const answeredAt = keepServerDate(command);
      const answer = await this.client.send(command);
      return {
        size: answer.ContentLength ?? 0,
        etag: answer.ETag ?? '',
        metadata: lowerCaseKeys(answer.Metadata ?? {}),
        lastModifiedMs: answer.LastModified?.getTime(),
        storeTimeMs: answeredAt(),
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw translateS3Error(error, `head ${this.fullKey(key)}`);
    }
  }

  async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
    const fullKey = this.fullKey(key);
    try {
      if (options.ifMatchEtag !== undefined) await this.putReplacing(fullKey, body, options, options.ifMatchEtag);
      else if (options.partSizeBytes === undefined) await this.putSingle(fullKey, body, options, undefined);
      else await this.putMultipart(fullKey, body, options.partSizeBytes, options);
    } catch (error) {
      const translated = withAtRestHint(translateS3Error(error, `upload ${fullKey}`), this.options.atRest);
      // AWS S3 answers an If-Match PUT on a missing key with 404: for the caller, the ETag it expected is gone.
      if (options.ifMatchEtag !== undefined && translated.kind === 'not_found') throw new AppError('conflict', translated.message, { cause: error });
      throw translated;
    }
  }

  /** A single PUT conditional on the object's ETag (If-Match). */
  private async putReplacing(fullKey: string, body: BodySource, options: PutOptions, etag: string): Promise<void> {
    if (options.partSizeBytes !== undefined) throw new AppError('remote_rejected', `upload ${fullKey}: a conditional replace is one request, not a multipart upload`);
    await this.ifMatchForm.send(etag, (ifMatch) => this.putSingle(fullKey, body, options, ifMatch));
  }

  private async putSingle(fullKey: string, body: BodySource, options: PutOptions, ifMatch: string | undefined): Promise<void> {
    const source = body();
    // Single PUTs are at most the multipart threshold: a file given as a FileBody, or a stream, is
    // read whole, so every PUT carries a Content-MD5 (which buckets with Object Lock require).
    const payload = isFileBody(source) ? await readWhole(source, options.sizeBytes) : source instanceof Readable ? await readStream(source, options.sizeBytes) : source;
    const answer = await this.client.send(
      new PutObjectCommand({
        Bucket: this.options.bucket,
        Key: fullKey,
        Body: payload,
        ContentLength: options.sizeBytes,
        ContentMD5: options.md5Hex === undefined ? undefined : Buffer.from(options.md5Hex, 'hex').toString('base64'),
        IfNoneMatch: options.ifNoneMatch && this.conditionalWrites && ifMatch === undefined ? '*' : undefined,
        IfMatch: ifMatch,
        Metadata: options.metadata,
      }),
      { abortSignal: options.signal },
    );
    options.onProgress?.(options.sizeBytes);
    options.onStored?.(answer.ETag);
  }

  private async putMultipart(fullKey: string, body: BodySource, partSizeBytes: number, options: PutOptions): Promise<void> {
    if (options.signal?.aborted === true) throw new AppError('cancelled', `upload ${fullKey}: aborted`);
    const source = body();
    if (isFileBody(source)) {
      const context = { client: this.client, bucket: this.options.bucket, partsInFlight: this.options.partsInFlight, ifNoneMatch: options.ifNoneMatch && this.conditionalWrites };
      const etag = await uploadFileInParts(context, fullKey, source, partSizeBytes, options);
      // Some servers (Ceph RGW) complete without an ETag: the caller then asks with HEAD.
      options.onStored?.(etag === undefined || etag === '' ? undefined : etag);
      return;
    }
    await this.putStreamInParts(fullKey, source, partSizeBytes, options);
  }

  /**
   * A stream (an encrypted body) through lib-storage.
   *
   * Cancelling a multipart upload has to end with AbortMultipartUpload sent, or its parts stay
   * billed on the server. lib-storage's own abort makes done() reject at once and sends that
   * request later in the background, which a process on its way out never gets to. So memsync
   * cancels by failing the body stream instead: lib-storage then stops reading, lets the parts
   * in flight finish, aborts the upload and only then rejects. Parts in flight over a slow link
   * could hold that up, so after a grace period the upload is cut short and aborted here.
   */
  private async putStreamInParts(fullKey: string, source: Readable | Buffer, partSizeBytes: number, options: PutOptions): Promise<void> {
    const abortController = new AbortController();
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.options.bucket,
        Key: fullKey,
        Body: source,
        // lib-storage checks the part count against this; a stream alone may not tell it.
        ContentLength: options.sizeBytes,
        // Servers that honour it refuse to complete over an existing key; others are covered by the caller's HEAD check.
        IfNoneMatch: options.ifNoneMatch && this.conditionalWrites ? '*' : undefined,
        Metadata: options.metadata,
      },
      partSize: partSizeBytes,
      queueSize: this.options.partsInFlight,
      // On failure lib-storage aborts the multipart upload, so no parts are left billed.
      leavePartsOnError: false,
      abortController,
    });
    let graceTimer: NodeJS.Timeout | undefined;
    let cancelled = false;
    const onCancel = (): void => {
      cancelled = true;
      if (source instanceof Readable) source.destroy(new AppError('cancelled', `upload ${fullKey}: aborted`));
      graceTimer = setTimeout(() => abortController.abort(), source instanceof Readable ? CANCEL_GRACE_MS : 0);
    };
    options.signal?.addEventListener('abort', onCancel, { once: true });
    if (options.onProgress !== undefined) {
      const onProgress = options.onProgress;
      upload.on('httpUploadProgress', (progress) => onProgress(progress.loaded ?? 0));
    }
    try {
      const answer = await upload.done();
      // Some servers (Ceph RGW) complete without an ETag in lib-storage's answer: the caller then asks with HEAD.
      options.onStored?.('ETag' in answer && answer.ETag !== '' ? answer.ETag : undefined);
    } catch (error) {
      if (!cancelled) throw error;
      // Cut short after the grace period: lib-storage has not sent the abort yet; do it now.
      if (abortController.signal.aborted && upload.uploadId !== undefined) {
        await this.abortMultipartUpload({ key: this.relativeKey(fullKey), uploadId: upload.uploadId, initiatedMs: 0 }).catch(() => undefined);
      }
      throw new AppError('cancelled', `upload ${fullKey}: aborted`, { cause: error });
    } finally {
      clearTimeout(graceTimer);
      options.signal?.removeEventListener('abort', onCancel);
    }
  }

  copy(sourceKey: string, targetKey: string, options: CopyOptions): Promise<void> {
    return copyS3Object({ client: this.client, bucket: this.options.bucket, partsInFlight: this.options.partsInFlight }, this.fullKey(sourceKey), this.fullKey(targetKey), options);
  }

  compose(targetKey: string, options: ComposeOptions): Promise<void> {
    return composeS3Object({ client: this.client, bucket: this.options.bucket, partsInFlight: this.options.partsInFlight }, this.fullKey(options.sourceKey), this.fullKey(targetKey), options);
  }

  get(key: string, signal?: AbortSignal): Promise<Readable> {
    return this.getObject(key, undefined, signal);
  }

  getRange(key: string, start: number, endInclusive: number, signal?: AbortSignal): Promise<Readable> {
    return this.getObject(key, `bytes=${start}-${endInclusive}`, signal);
  }

  downloadRangesToFile(key: string, options: FileDownloadOptions): Promise<void> | undefined {
    // The download limit is applied by this client's HTTP layer, on this thread: limited downloads read through getRange.
    if (this.options.bandwidthLimit?.downBytesPerSecond !== undefined) return undefined;
    const context = { client: this.client, bucket: this.options.bucket, connectTimeoutMs: CONNECT_TIMEOUT_MS, idleTimeoutMs: this.options.idleTimeoutMs ?? IDLE_SOCKET_TIMEOUT_MS };
    return downloadS3RangesToFile(context, this.fullKey(key), options);
  }

  private async getObject(key: string, range: string | undefined, signal: AbortSignal | undefined): Promise<Readable> {
    const fullKey = this.fullKey(key);
    try {
      const answer = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: fullKey, Range: range }), { abortSignal: signal });
      if (!(answer.Body instanceof Readable)) throw new AppError('remote_unavailable', `download ${fullKey}: no body in the answer`);
      return answer.Body;
    } catch (error) {
      throw translateS3Error(error, `download ${fullKey}`);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: this.fullKey(key) }));
    } catch (error) {
      throw deleteDenied(error, this.fullKey(key)) ?? translateS3Error(error, `delete ${this.fullKey(key)}`);
    }
  }

  purge(key: string): Promise<PurgeOutcome> {
    return purgeS3Key(this.client, this.options.bucket, this.fullKey(key));
  }

  keepsVersions(): Promise<boolean> {
    return bucketKeepsVersions(this.client, this.options.bucket);
  }

  async ensureLocked(key: string): Promise<void> {
    const settings = this.options.objectLock;
    if (settings === undefined || !isLockedKey(key)) return;
    await lockIfUnlocked(this.client, this.options.bucket, this.fullKey(key), undefined, settings, retainUntil(settings, Date.now()));
  }

  async listMultipartUploads(keyPrefix: string): Promise<MultipartUpload[]> {
    const uploads: MultipartUpload[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (let page = 0; page < 1000; page += 1) {
      let answer;
      try {
        answer = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.options.bucket, Prefix: this.fullKey(keyPrefix), KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        );
      } catch (error) {
        throw translateS3BucketError(error, `list multipart uploads under ${this.fullKey(keyPrefix)}`);
      }
      for (const item of answer.Uploads ?? []) {
        if (item.Key === undefined || item.UploadId === undefined) continue;
        uploads.push({ key: this.relativeKey(item.Key), uploadId: item.UploadId, initiatedMs: item.Initiated?.getTime() ?? 0 });
      }
      if (answer.IsTruncated !== true) break;
      keyMarker = answer.NextKeyMarker;
      uploadIdMarker = answer.NextUploadIdMarker;
    }
    return uploads;
  }

  async abortMultipartUpload(upload: MultipartUpload): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.options.bucket, Key: this.fullKey(upload.key), UploadId: upload.uploadId }));
    } catch (error) {
      if (isNotFound(error)) return;
      throw translateS3Error(error, `abort multipart upload of ${this.fullKey(upload.key)}`);
    }
  }

  close(): void {
    this.client.destroy();
  }
}

/** A refused DELETE named by the permission it lacks: the operator's policy says which actions it allows. */
function deleteDenied(error: unknown, fullKey: string): AppError | undefined {
  if (httpStatusOf(error) !== 403) return undefined;
  return new AppError('remote_rejected', `s3:DeleteObject denied on ${fullKey}`, { cause: error, hint: 'see the README on the policies memsync needs', details: { code: 'AccessDenied', permission: 's3:DeleteObject' } });
}

async function readStream(stream: Readable, sizeBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  const bytes = Buffer.concat(chunks);
  if (bytes.length !== sizeBytes) throw new AppError('local_io', `the body came to ${bytes.length} bytes, not the ${sizeBytes} announced`);
  return bytes;
}

async function readWhole(body: FileBody, sizeBytes: number): Promise<Buffer> {
  const bytes = Buffer.allocUnsafe(sizeBytes);
  await body.read(bytes, 0);
  return bytes;
}

function lowerCaseKeys(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).map(([key, value]) => [key.toLowerCase(), value]));
}
