import type { Readable } from 'node:stream';
import type { AppError } from '../errors.js';
import type { RetryPolicy } from '../retry.js';

/**
 * The one interface between memsync and object storage. Keys are relative to the
 * configured prefix; implementations add it. Every failure surfaces as an AppError:
 * 'not_found', 'conflict' (a conditional write found the key taken), 'remote_unavailable'
 * (worth retrying) or 'remote_rejected' (credentials, bucket, permissions).
 */

export interface RemoteObject {
  key: string;
  size: number;
  etag: string;
  lastModifiedMs: number;
}

export interface RemoteHead {
  size: number;
  etag: string;
  /** User metadata, lower-case keys without the x-amz-meta- prefix. */
  metadata: Record<string, string>;
  /**
   * When the object was last written, by the store's own clock (S3: Last-Modified, whole
   * seconds). Undefined when the store does not say.
   */
  lastModifiedMs?: number;
  /**
   * The store's own clock when it answered this request (S3: the Date header, whole seconds).
   * With lastModifiedMs it gives the object's age without trusting this host's clock (see
   * upload/claim-lease.ts). Undefined when the store does not say; a store that has no clock of
   * its own (a directory) leaves both undefined rather than report this host's.
   */
  storeTimeMs?: number;
}

export interface PutOptions {
  sizeBytes: number;
  /** Hex MD5 of the body, sent as Content-MD5 on single-request uploads. */
  md5Hex: string | undefined;
  /** Upload in parts of this size (the caller decides, so it can predict the ETag); undefined: one request. */
  partSizeBytes: number | undefined;
  /** Refuse to replace an existing key (If-None-Match: *), where the server honours it. */
  ifNoneMatch: boolean;
  /**
   * Replace the object only while it still has this ETag (If-Match), given as this store's
   * head(), listObjects() or onStored reported it. The check and the write are one atomic step:
   * of two writers conditional on the same ETag, at most one succeeds. When the object has
   * another ETag, or no longer exists, nothing is written and the put fails with AppError
   * 'conflict'. Only for single-request writes (partSizeBytes undefined) and never together
   * with ifNoneMatch. A store that cannot check it atomically fails with 'remote_rejected'
   * (details.code 'NotImplemented') and never writes unconditionally; memsync finds out at
   * run time (probeConditionalReplace in conditional-writes.ts) and then does without.
   * Undefined: no such condition.
   */
  ifMatchEtag?: string;
  metadata: Record<string, string>;
  signal: AbortSignal | undefined;
  onProgress: ((loadedBytes: number) => void) | undefined;
  /**
   * Told the ETag the server answered the write with (PutObject or CompleteMultipartUpload),
   * when it gave one: its own account of what it stored, so no HEAD is needed to check it.
   */
  onStored?: (etag: string | undefined) => void;
  /**
   * Multipart uploads of a FileBody: shown each part's bytes in order, before it is sent (a digest
   * of the whole file is taken on the way). It may return the part's raw MD5, which is then sent
   * as Content-MD5, so the server checks every part as it arrives.
   */
  onPart?: (part: Buffer) => Buffer | undefined;
  /** Retries of a multipart upload's parts, in place; default: partRetryPolicy(DEFAULT_RETRY), unreported. */
  partRetry?: PartRetryOptions;
}

/**
 * A part of a multipart upload (or its completion) that failed in transit is sent again within
 * the same upload, up to `policy.attempts` tries; `onRetry` is told before each wait.
 */
export interface PartRetryOptions {
  policy: RetryPolicy;
  onRetry?: (retry: { what: string; attempt: number; delayMs: number; error: AppError }) => void;
}

export interface CopyOptions {
  /** Size of the source object, as the caller expects it. */
  sizeBytes: number;
  /**
   * Copy in parts of this size (UploadPartCopy), so the copy's ETag is the multipart ETag the
   * caller predicts; undefined: one CopyObject request, which S3 allows up to 5 GiB.
   */
  partSizeBytes: number | undefined;
  /** Copy only while the source still has this ETag (x-amz-copy-source-if-match); else AppError conflict. */
  sourceEtag: string;
  /** Replaces the source's metadata on the new object (MetadataDirective REPLACE). */
  metadata: Record<string, string>;
  signal: AbortSignal | undefined;
}

/**
 * One part of an object composed server-side, in target order: a byte range of the source object
 * copied by the server (UploadPartCopy), or bytes of the local file sent. `md5Hex` is the MD5 of
 * the part's bytes as the local file holds them: a copied part whose server-side MD5 differs, or
 * a sent part the server received differently, fails the composition.
 *
 * A copied part's MD5 may still be being computed (a promise): the server's copy does not wait
 * for it, only the check of the server's answer does, and every check is done before the
 * composition completes. A promise that rejects fails the composition with its error; the caller
 * handles its rejections, since a composition that fails first never awaits it.
 */
export type ComposePartSpec =
  | { kind: 'copy'; sourceStart: number; /** Exclusive. */ sourceEnd: number; md5Hex: string | Promise<string> }
  | { kind: 'send'; targetStart: number; length: number; md5Hex: string };

export interface ComposeOptions {
  sourceKey: string;
  /** Copy only while the source still has this ETag (x-amz-copy-source-if-match); else AppError conflict. */
  sourceEtag: string;
  parts: readonly ComposePartSpec[];
  /** The local file the sent parts are read from, at their target offsets. */
  body: FileBody;
  metadata: Record<string, string>;
  signal: AbortSignal | undefined;
  /** Told each finished part, with its size and kind, for progress. */
  onPartDone?: (part: { index: number; bytes: number; kind: 'copy' | 'send' }) => void;
  /** Retries of the parts, in place; default: partRetryPolicy(DEFAULT_RETRY), unreported. */
  partRetry?: PartRetryOptions;
}

/** Bytes [start, end) of an object (end exclusive). */
export interface ByteRange {
  start: number;
  end: number;
}

/** A ranged download straight into a local file (RemoteStore.downloadRangesToFile). */
export interface FileDownloadOptions {
  /** An open descriptor of the file, written at the object's offsets; the caller closes it once the download has settled. */
  fd: number;
  sizeBytes: number;
  /** Only these parts of the object, in order and apart (the rest of the file is written by the caller); default all of it. */
  ranges?: readonly ByteRange[];
  rangeBytes: number;
  rangesInFlight: number;
  signal: AbortSignal | undefined;
  /** Told once [position, position + length) of the file is written (not yet synced). */
  onWritten: (position: number, length: number) => void;
  /** Retries of a range cut in transit; each asks only for the bytes it had not received. */
  rangeRetry: PartRetryOptions;
}

export interface MultipartUpload {
  key: string;
  uploadId: string;
  initiatedMs: number;
}

/**
 * A local file as an upload body, read at any offset. A multipart upload then reads each part
 * straight into a buffer it reuses for the whole file: memory stays at the parts in flight, and
 * no byte is copied into part buffers or left for the garbage collector. `read` fills `target`
 * from `position` on, or throws (a file that ends early changed under the upload).
 */
export interface FileBody {
  readonly kind: 'file';
  read(target: Buffer, position: number): Promise<void>;
}

export type BodySource = () => Readable | Buffer | FileBody;

export function isFileBody(body: Readable | Buffer | FileBody): body is FileBody {
  return !Buffer.isBuffer(body) && (body as Partial<FileBody>).kind === 'file';
}

/**
 * How long a cancelled upload may take to wind down (parts in flight, then the abort request)
 * before the store cuts it short. Shutdown waits a little longer than this for cancelled uploads.
 */
export const CANCEL_GRACE_MS = 2500;

export interface RemoteStore {
  /** Human-readable location, e.g. s3://bucket/prefix at endpoint. */
  readonly location: string;
  /** Fails with remote_rejected/remote_unavailable when the bucket cannot be used. */
  checkAccess(): Promise<void>;
  /** Every object under `keyPrefix`, page by page, in key order. */
  listObjects(keyPrefix: string): AsyncIterable<RemoteObject[]>;
  head(key: string): Promise<RemoteHead | undefined>;
  /** `body` is called once per attempt, so a retry re-opens the source. */
  put(key: string, body: BodySource, options: PutOptions): Promise<void>;
  /**
   * Whether `ifNoneMatch` is sent at all. On by default; turned off for servers that refuse
   * requests carrying If-None-Match (see conditional-writes.ts), where the HEAD check remains.
   */
  useConditionalWrites(enabled: boolean): void;
  /**
   * Server-side copy of `sourceKey` to `targetKey`, no bytes through memsync. Fails with
   * not_found when the source is gone, conflict when it no longer has `sourceEtag`, and
   * remote_rejected when the server refuses copies (`details.code`: the server's error code,
   * e.g. NotImplemented or AccessDenied), so the caller can fall back to an upload.
   */
  copy(sourceKey: string, targetKey: string, options: CopyOptions): Promise<void>;
  /**
   * Writes `targetKey` as one multipart upload of `options.parts`: ranges of `sourceKey` copied by
   * the server and bytes sent from the local file. Every part is checked against its MD5 as it
   * completes; on any failure the multipart upload is aborted, so no object and no open upload
   * is left. Fails with conflict when the source no longer has `sourceEtag`, integrity when a
   * part's MD5 differs, and remote_rejected (`details.code`) when the server refuses ranged copies.
   */
  compose(targetKey: string, options: ComposeOptions): Promise<void>;
  get(key: string, signal?: AbortSignal): Promise<Readable>;
  /** Bytes `start` to `endInclusive` of the object (a ranged GET). */
  getRange(key: string, start: number, endInclusive: number, signal?: AbortSignal): Promise<Readable>;
  /**
   * Writes the object at `key` into a local file as parallel ranged reads on a thread of its own,
   * for stores whose reads cost the main thread much CPU. Resolves once every byte is written;
   * by the time it settles, the thread has stopped writing. Returns undefined when the store
   * cannot do it now (an S3 store with a download bandwidth limit, which its client applies on
   * this thread), so the caller reads with getRange. Left out by stores without it.
   */
  downloadRangesToFile?(key: string, options: FileDownloadOptions): Promise<void> | undefined;
  delete(key: string): Promise<void>;
  /**
   * Deletes `key` for good: in a store that keeps versions (an S3 bucket with versioning, which
   * Object Lock implies), every version, where delete() would only hide it behind a delete
   * marker. A version still under Object Lock fails it with remote_rejected, details.code
   * 'ObjectLocked' and details.lockedUntilMs (null: a legal hold). Says 'current-only' when the
   * store could not list versions and deleted as delete() does. Stores without versions leave it out.
   */
  purge?(key: string): Promise<'every-version' | 'current-only'>;
  /** Whether the store keeps versions of overwritten and deleted objects (S3: versioning on or suspended); left out by stores that never do. */
  keepsVersions?(): Promise<boolean>;
  /**
   * With Object Lock configured: makes sure the object at `key` is locked, locking it now when it
   * is not (a server that dropped the lock of a copy or a multipart upload, and a failed attempt
   * to lock it afterwards, leave such an object for a later attempt to find). Fails with
   * remote_rejected when it cannot be locked. Resolves at once where memsync locks nothing.
   */
  ensureLocked?(key: string, signal?: AbortSignal): Promise<void>;
  /** Unfinished multipart uploads under `keyPrefix`; throws remote_rejected when the server cannot list them. */
  listMultipartUploads(keyPrefix: string): Promise<MultipartUpload[]>;
  abortMultipartUpload(upload: MultipartUpload): Promise<void>;
  close(): void;
}
