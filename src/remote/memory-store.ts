import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { AppError, asAppError } from '../errors.js';
import { multipartEtag, PartHasher } from '../snapshot/digest.js';
import { checkComposeParts, CopiedPartChecks, MIN_COMPOSE_PART_BYTES } from './compose-parts.js';
import { isFileBody, type BodySource, type ComposeOptions, type ComposePartSpec, type CopyOptions, type FileBody, type MultipartUpload, type PutOptions, type RemoteHead, type RemoteObject, type RemoteStore } from './store.js';

interface StoredObject {
  bytes: Buffer;
  etag: string;
  metadata: Record<string, string>;
  lastModifiedMs: number;
}

export interface MemoryStoreOptions {
  /** Behave like servers that ignore If-None-Match (s3rver, older MinIO). */
  honourIfNoneMatch?: boolean;
  /** Behave like servers that refuse any request carrying If-None-Match (501 NotImplemented). */
  refuseIfNoneMatch?: boolean;
  /** How a PUT with ifMatchEtag is treated: checked (S3, Ceph RGW), ignored (written anyway) or refused (501). Default 'honour'. */
  ifMatch?: 'honour' | 'ignore' | 'refuse';
  /** The store's own clock: Last-Modified of what it writes and the time head() reports. Default Date.now. */
  now?: () => number;
  pageSize?: number;
  /** Fault injection for tests of paths a real server cannot produce on demand. */
  transformStoredBytes?: (key: string, bytes: Buffer) => Buffer;
  /** Refuse every copy with this server error code (e.g. NotImplemented, AccessDenied); changeable later through `refuseCopies`. */
  refuseCopies?: string;
  /**
   * The ETag a single-request copy gets: 'source' keeps the source's (Ceph RGW keeps a multipart
   * ETag), 'md5' is the MD5 of the whole object (AWS S3). Default 'source'.
   */
  copyEtag?: 'source' | 'md5';
  /** Copies byte ranges (UploadPartCopy with a range), so compose works; false: compose with a copied part fails with NotImplemented. Default true. */
  rangedCopy?: boolean;
}

/** An in-memory RemoteStore with S3's semantics (ETags, conditional writes, pagination), for unit tests. */
export class MemoryRemoteStore implements RemoteStore {
  readonly location = 'memory://';
  readonly objects = new Map<string, StoredObject>();
  readonly multipartUploads: MultipartUpload[] = [];
  /** Every successful write, in order, so tests can assert what was (not) sent. */
  readonly putLog: string[] = [];

  /** Every successful copy as `source -> target`, in order. */
  readonly copyLog: string[] = [];
  /** Every successful compose as `source -> target`, in order. */
  readonly composeLog: string[] = [];
  /** See MemoryStoreOptions.refuseCopies. */
  refuseCopies: string | undefined;

  private conditionalWrites = true;

  constructor(private readonly options: MemoryStoreOptions = {}) {
    this.refuseCopies = options.refuseCopies;
  }

  async checkAccess(): Promise<void> {}

  useConditionalWrites(enabled: boolean): void {
    this.conditionalWrites = enabled;
  }

  async *listObjects(keyPrefix: string): AsyncIterable<RemoteObject[]> {
    const keys = [...this.objects.keys()].filter((key) => key.startsWith(keyPrefix)).sort();
    const pageSize = this.options.pageSize ?? 1000;
    for (let i = 0; i < keys.length || i === 0; i += pageSize) {
      yield keys.slice(i, i + pageSize).map((key) => {
        const stored = this.objects.get(key) as StoredObject;
        return { key, size: stored.bytes.length, etag: `"${stored.etag}"`, lastModifiedMs: stored.lastModifiedMs };
      });
      if (keys.length === 0) break;
    }
  }

  async head(key: string): Promise<RemoteHead | undefined> {
    const stored = this.objects.get(key);
    if (stored === undefined) return undefined;
    return { size: stored.bytes.length, etag: `"${stored.etag}"`, metadata: { ...stored.metadata }, lastModifiedMs: stored.lastModifiedMs, storeTimeMs: this.now() };
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
    if (options.signal?.aborted === true) throw new AppError('cancelled', `upload ${key}: aborted`);
    const ifNoneMatch = options.ifNoneMatch && this.conditionalWrites;
    if (ifNoneMatch && this.options.refuseIfNoneMatch === true) throw new AppError('remote_rejected', `upload ${key}: NotImplemented (HTTP 501)`);
    if (ifNoneMatch && this.options.honourIfNoneMatch !== false && this.objects.has(key)) {
      throw new AppError('conflict', `upload ${key}: PreconditionFailed (HTTP 412)`);
    }
    if (options.ifMatchEtag !== undefined && this.options.ifMatch === 'refuse') throw new AppError('remote_rejected', `upload ${key}: NotImplemented (HTTP 501)`, { details: { code: 'NotImplemented' } });
    const source = body();
    const received = Buffer.isBuffer(source) ? source : isFileBody(source) ? await readFileBody(key, source, options) : await collect(source);
    if (options.md5Hex !== undefined && createHash('md5').update(received).digest('hex') !== options.md5Hex) {
      throw new AppError('integrity', `upload ${key}: BadDigest (HTTP 400)`);
    }
    const bytes = this.options.transformStoredBytes?.(key, received) ?? received;
    let etag: string;
    // As lib-storage does, a body that fits in one part is a single PUT with the plain MD5 as ETag.
    if (options.partSizeBytes === undefined || bytes.length <= options.partSizeBytes) {
      etag = createHash('md5').update(bytes).digest('hex');
    } else {
      const parts = new PartHasher(options.partSizeBytes);
      parts.update(bytes);
      etag = parts.etag();
    }
    // S3 keeps user metadata keys lower-case.
    const metadata = Object.fromEntries(Object.entries(options.metadata).map(([name, value]) => [name.toLowerCase(), value]));
    // Checked with the write, no await between them: as atomic as the server's check.
    if (options.ifMatchEtag !== undefined && this.options.ifMatch !== 'ignore' && this.objects.get(key)?.etag !== options.ifMatchEtag.replace(/"/g, '')) {
      throw new AppError('conflict', `upload ${key}: PreconditionFailed (HTTP 412)`);
    }
    this.objects.set(key, { bytes, etag, metadata, lastModifiedMs: this.now() });
    this.putLog.push(key);
    options.onProgress?.(bytes.length);
    options.onStored?.(`"${etag}"`);
  }

  async copy(sourceKey: string, targetKey: string, options: CopyOptions): Promise<void> {
    if (options.signal?.aborted === true) throw new AppError('cancelled', `copy ${sourceKey}: aborted`);
    const what = `copy ${sourceKey} to ${targetKey}`;
    if (this.refuseCopies !== undefined) {
      const status = this.refuseCopies === 'NotImplemented' ? 501 : 403;
      throw new AppError('remote_rejected', `${what}: ${this.refuseCopies} (HTTP ${status})`, { details: { code: this.refuseCopies } });
    }
    const source = this.objects.get(sourceKey);
    if (source === undefined) throw new AppError('not_found', `${what}: NoSuchKey (HTTP 404)`, { details: { code: 'NoSuchKey' } });
    if (source.etag !== options.sourceEtag.replace(/"/g, '')) throw new AppError('conflict', `${what}: PreconditionFailed (HTTP 412)`, { details: { code: 'PreconditionFailed' } });
    let etag: string;
    if (options.partSizeBytes !== undefined) {
      const parts = new PartHasher(options.partSizeBytes);
      parts.update(source.bytes);
      etag = parts.etag();
    } else {
      etag = this.options.copyEtag === 'md5' ? createHash('md5').update(source.bytes).digest('hex') : source.etag;
    }
    const metadata = Object.fromEntries(Object.entries(options.metadata).map(([name, value]) => [name.toLowerCase(), value]));
    this.objects.set(targetKey, { bytes: source.bytes, etag, metadata, lastModifiedMs: Date.now() });
    this.copyLog.push(`${sourceKey} -> ${targetKey}`);
  }

  /** As S3 does it: a multipart upload, open while its parts are made, and aborted on any failure. */
  async compose(targetKey: string, options: ComposeOptions): Promise<void> {
    const what = `compose ${targetKey} from ${options.sourceKey}`;
    checkComposeParts(what, options.parts);
    // A function, not a narrowed property: onPartDone may abort the signal.
    const cancelled = (): boolean => options.signal?.aborted === true;
    if (cancelled()) throw new AppError('cancelled', `${what}: aborted`);
    const upload: MultipartUpload = { key: targetKey, uploadId: randomBytes(8).toString('hex'), initiatedMs: Date.now() };
    this.multipartUploads.push(upload);
    try {
      const partBytes: Buffer[] = [];
      // As S3 does: a copy is made without waiting for its local MD5; the check of it waits.
      const checks = new CopiedPartChecks(what, options.signal);
      for (const [index, part] of options.parts.entries()) {
        if (cancelled()) throw new AppError('cancelled', `${what}: aborted`);
        const bytes = part.kind === 'copy' ? this.copiedPart(what, index + 1, part, options) : await sentPart(what, part, options);
        const md5Hex = createHash('md5').update(bytes).digest('hex');
        if (part.kind === 'copy') void checks.add(index + 1, part.md5Hex, md5Hex);
        else if (md5Hex !== part.md5Hex.toLowerCase()) throw new AppError('integrity', `${what}: part ${index + 1}: BadDigest (HTTP 400)`, { details: { code: 'BadDigest' } });
        partBytes.push(bytes);
        options.onPartDone?.({ index, bytes: bytes.length, kind: part.kind });
      }
      const failure = await checks.firstFailure();
      if (failure !== undefined) throw failure;
      if (cancelled()) throw new AppError('cancelled', `${what}: aborted`);
      if (partBytes.slice(0, -1).some((bytes) => bytes.length < MIN_COMPOSE_PART_BYTES)) {
        throw new AppError('object_refused', `${what}: complete: EntityTooSmall (HTTP 400)`, { retryable: false, details: { code: 'EntityTooSmall' } });
      }
      const whole = Buffer.concat(partBytes);
      const etag = multipartEtag(partBytes.map((bytes) => createHash('md5').update(bytes).digest()));
      const metadata = Object.fromEntries(Object.entries(options.metadata).map(([name, value]) => [name.toLowerCase(), value]));
      this.objects.set(targetKey, { bytes: this.options.transformStoredBytes?.(targetKey, whole) ?? whole, etag, metadata, lastModifiedMs: Date.now() });
      this.composeLog.push(`${options.sourceKey} -> ${targetKey}`);
    } finally {
      await this.abortMultipartUpload(upload);
    }
  }

  private copiedPart(what: string, partNumber: number, part: Extract<ComposePartSpec, { kind: 'copy' }>, options: ComposeOptions): Buffer {
    const context = `${what}: part ${partNumber} (copy bytes=${part.sourceStart}-${part.sourceEnd - 1})`;
    const refusal = this.options.rangedCopy === false ? 'NotImplemented' : this.refuseCopies;
    if (refusal !== undefined) {
      const status = refusal === 'NotImplemented' ? 501 : 403;
      throw new AppError('remote_rejected', `${context}: ${refusal} (HTTP ${status})`, { details: { code: refusal } });
    }
    const source = this.objects.get(options.sourceKey);
    if (source === undefined) throw new AppError('not_found', `${context}: NoSuchKey (HTTP 404)`, { details: { code: 'NoSuchKey' } });
    if (source.etag !== options.sourceEtag.replace(/"/g, '')) throw new AppError('conflict', `${context}: PreconditionFailed (HTTP 412)`, { details: { code: 'PreconditionFailed' } });
    if (part.sourceEnd > source.bytes.length) throw new AppError('object_refused', `${context}: InvalidRange (HTTP 416)`, { retryable: false, details: { code: 'InvalidRange' } });
    return Buffer.from(source.bytes.subarray(part.sourceStart, part.sourceEnd));
  }

  async get(key: string): Promise<Readable> {
    const stored = this.objects.get(key);
    if (stored === undefined) throw new AppError('not_found', `download ${key}: NoSuchKey (HTTP 404)`);
    return Readable.from([stored.bytes]);
  }

  async getRange(key: string, start: number, endInclusive: number): Promise<Readable> {
    const stored = this.objects.get(key);
    if (stored === undefined) throw new AppError('not_found', `download ${key}: NoSuchKey (HTTP 404)`);
    return Readable.from([stored.bytes.subarray(start, endInclusive + 1)]);
  }

  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }

  async listMultipartUploads(keyPrefix: string): Promise<MultipartUpload[]> {
    return this.multipartUploads.filter((upload) => upload.key.startsWith(keyPrefix));
  }

  async abortMultipartUpload(upload: MultipartUpload): Promise<void> {
    const index = this.multipartUploads.findIndex((u) => u.uploadId === upload.uploadId);
    if (index >= 0) this.multipartUploads.splice(index, 1);
  }

  close(): void {}
}

/** As the S3 store reads a file: part by part, each shown to onPart and checked against the MD5 it returns. */
async function readFileBody(key: string, body: FileBody, options: PutOptions): Promise<Buffer> {
  const bytes = Buffer.alloc(options.sizeBytes);
  const partSize = options.partSizeBytes ?? Math.max(1, options.sizeBytes);
  for (let offset = 0; offset < options.sizeBytes; offset += partSize) {
    const part = bytes.subarray(offset, Math.min(options.sizeBytes, offset + partSize));
    if (options.signal?.aborted === true) throw new AppError('cancelled', `upload ${key}: aborted`);
    await body.read(part, offset);
    const md5 = options.partSizeBytes === undefined ? undefined : options.onPart?.(part);
    if (md5 !== undefined && !md5.equals(createHash('md5').update(part).digest())) throw new AppError('integrity', `upload ${key}: BadDigest (HTTP 400)`);
  }
  return bytes;
}

async function sentPart(what: string, part: Extract<ComposePartSpec, { kind: 'send' }>, options: ComposeOptions): Promise<Buffer> {
  const bytes = Buffer.alloc(part.length);
  try {
    await options.body.read(bytes, part.targetStart);
  } catch (error) {
    throw asAppError(error, 'local_io', `${what}: read part at ${part.targetStart}`);
  }
  return bytes;
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}
