import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { AppError, asAppError, isAppError } from '../errors.js';
import { checkComposeParts, composePartBytes, CopiedPartChecks, normalizedPartMd5 } from './compose-parts.js';
import { retryInUpload } from './part-retry.js';
import { copySource, quoted, withServerCode } from './s3-copy.js';
import { errorCodeOf } from './s3-errors.js';
import { CANCEL_GRACE_MS, type ComposeOptions, type ComposePartSpec } from './store.js';

/**
 * A new version of an object written as one multipart upload whose parts are ranges of the
 * previous version copied by the server (UploadPartCopy) or bytes of the local file sent
 * (UploadPart with Content-MD5). Only the changed bytes cross the network.
 */

export interface S3ComposeContext {
  client: S3Client;
  bucket: string;
  /** Parts (copied or sent) in flight at once; memory is at most this many sent parts. */
  partsInFlight: number;
}

/**
 * The abort after a failure is best effort: it is not left to hang a failed write. What it
 * misses, the agent's sweep of stale multipart uploads aborts later.
 */
const ABORT_UPLOAD_TIMEOUT_MS = 10_000;
/** HEAD of the source after a copied part came out wrong, to tell a replaced source from corruption. */
const SOURCE_HEAD_TIMEOUT_MS = 10_000;

/** Servers without ranged copies answer UploadPartCopy with these (400) as well as NotImplemented (501). */
const RANGED_COPY_REFUSALS = new Set(['NotImplemented', 'InvalidRequest', 'InvalidArgument']);

interface ComposeTarget {
  what: string;
  sourceFullKey: string;
  targetFullKey: string;
  uploadId: string;
}

export async function composeS3Object(context: S3ComposeContext, sourceFullKey: string, targetFullKey: string, options: ComposeOptions): Promise<void> {
  const what = `compose ${targetFullKey} from ${sourceFullKey}`;
  checkComposeParts(what, options.parts);
  if (options.signal?.aborted === true) throw new AppError('cancelled', `${what}: aborted`);
  const { client, bucket } = context;
  let uploadId: string | undefined;
  try {
    // Not cancellable: cut short, the server may still create the upload, and without its id it
    // could never be aborted. A cancellation meanwhile is seen once it exists, and it is aborted.
    uploadId = (await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: targetFullKey, Metadata: options.metadata }))).UploadId;
  } catch (error) {
    throw withServerCode(error, what);
  }
  if (uploadId === undefined) throw new AppError('remote_unavailable', `${what}: no UploadId in the answer`);
  const target: ComposeTarget = { what, sourceFullKey, targetFullKey, uploadId };
  const parts = new ComposeInFlight(context, target, options);
  try {
    const completed = await parts.runAll();
    try {
      // Not cancellable: cut short, the server might complete it anyway without memsync knowing.
      await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: targetFullKey, UploadId: uploadId, MultipartUpload: { Parts: completed } }));
    } catch (error) {
      throw withServerCode(error, `${what}: complete`);
    }
  } catch (error) {
    // Parts are stored (and billed) until the upload is aborted: always abort, without the signal.
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: targetFullKey, UploadId: uploadId }), { abortSignal: AbortSignal.timeout(ABORT_UPLOAD_TIMEOUT_MS) }).catch(() => undefined);
    if (parts.cancelled) throw new AppError('cancelled', `${what}: aborted`, { cause: error });
    throw parts.failedOnCopy ? await sourceReplacedOr(context, target, options.sourceEtag, asAppError(error, 'remote_unavailable', what)) : error;
  } finally {
    parts.dispose();
  }
}

/**
 * The parts of one composition, started in order, up to `partsInFlight` at a time. A part that
 * fails in transit is copied or sent again in place (part-retry.ts; a sent part is read from the
 * file again, into the same buffer, with the planned MD5). A failure for good or a cancellation
 * stops new parts and the waits of parts being retried; parts already on the wire are let
 * finish, since S3 may store a part whose request was cut after the abort (they are cut after
 * CANCEL_GRACE_MS, so a shutdown is not held up by a slow link).
 */
class ComposeInFlight {
  cancelled = false;
  /** The first failure came from a copied part: the source may have been replaced. */
  failedOnCopy = false;
  private failure: unknown;
  private nextIndex = 0;
  private readonly requests = new AbortController();
  /** Aborted on a cancellation or a failure for good: parts waiting to be sent again give up. */
  private readonly stopping = new AbortController();
  private graceTimer: NodeJS.Timeout | undefined;
  private readonly checks: CopiedPartChecks;
  private readonly onCancel = (): void => {
    this.cancelled = true;
    this.windDown();
  };

  constructor(
    private readonly context: S3ComposeContext,
    private readonly target: ComposeTarget,
    private readonly options: ComposeOptions,
  ) {
    this.checks = new CopiedPartChecks(target.what, this.stopping.signal);
    // Aborted while the upload was being created: no event will come.
    if (options.signal?.aborted === true) this.onCancel();
    else options.signal?.addEventListener('abort', this.onCancel, { once: true });
  }

  async runAll(): Promise<CompletedPart[]> {
    const completed = new Array<CompletedPart>(this.options.parts.length);
    const workers = Math.max(1, Math.min(this.context.partsInFlight, this.options.parts.length));
    await Promise.all(Array.from({ length: workers }, () => this.work(completed)));
    // Completing needs every copied part checked against its local MD5, which may come after the copy.
    await this.checks.firstFailure();
    if (this.cancelled) throw new AppError('cancelled', `${this.target.what}: aborted`);
    if (this.failure !== undefined) throw this.failure;
    return completed;
  }

  dispose(): void {
    clearTimeout(this.graceTimer);
    this.options.signal?.removeEventListener('abort', this.onCancel);
  }

  private stopped(): boolean {
    return this.cancelled || this.failure !== undefined;
  }

  /** The first failure for good stops the composition; those after it are its consequences. */
  private failWith(error: unknown, onCopy: boolean): void {
    if (this.failure === undefined) {
      this.failure = error;
      this.failedOnCopy = onCopy;
    }
    this.windDown();
  }

  private windDown(): void {
    this.stopping.abort();
    this.graceTimer ??= setTimeout(() => this.requests.abort(), CANCEL_GRACE_MS);
  }

  /** One worker's loop. Its buffer for sent parts is reused, grown only for a longer part. */
  private async work(completed: CompletedPart[]): Promise<void> {
    let buffer = Buffer.alloc(0);
    while (this.nextIndex < this.options.parts.length && !this.stopped()) {
      const index = this.nextIndex;
      this.nextIndex += 1;
      const part = this.options.parts[index] as ComposePartSpec;
      try {
        if (part.kind === 'send' && buffer.length < part.length) buffer = Buffer.allocUnsafe(part.length);
        const data = buffer;
        const what = `${this.target.what}: part ${index + 1} of ${this.options.parts.length}`;
        completed[index] = await retryInUpload(
          () => (part.kind === 'copy' ? this.copyPart(index + 1, part) : this.sendPart(index + 1, part, data.subarray(0, part.length))),
          what,
          this.options.partRetry,
          this.stopping.signal,
        );
        if (part.kind === 'copy') {
          const copiedMd5 = normalizedPartMd5(completed[index]?.ETag);
          void this.checks.add(index + 1, part.md5Hex, copiedMd5).then((failure) => failure !== undefined && this.failWith(failure, true));
        }
      } catch (error) {
        this.failWith(error, part.kind === 'copy');
        return;
      }
      this.options.onPartDone?.({ index, bytes: composePartBytes(part), kind: part.kind });
    }
  }

  private async copyPart(partNumber: number, part: Extract<ComposePartSpec, { kind: 'copy' }>): Promise<CompletedPart> {
    const { client, bucket } = this.context;
    const { what, sourceFullKey, targetFullKey, uploadId } = this.target;
    const range = `bytes=${part.sourceStart}-${part.sourceEnd - 1}`;
    let answer;
    try {
      answer = await client.send(
        new UploadPartCopyCommand({
          Bucket: bucket,
          Key: targetFullKey,
          UploadId: uploadId,
          PartNumber: partNumber,
          CopySource: copySource(bucket, sourceFullKey),
          CopySourceRange: range,
          // Every part from the version the plan was made against, or the result would be a splice.
          CopySourceIfMatch: quoted(this.options.sourceEtag),
        }),
        { abortSignal: this.requests.signal },
      );
    } catch (error) {
      throw rangedCopyFailure(error, `${what}: part ${partNumber} (copy ${range})`);
    }
    // Checked against the local MD5 by the caller, once that is known (see CopiedPartChecks).
    return { PartNumber: partNumber, ETag: quoted(normalizedPartMd5(answer.CopyPartResult?.ETag)) };
  }

  private async sendPart(partNumber: number, part: Extract<ComposePartSpec, { kind: 'send' }>, data: Buffer): Promise<CompletedPart> {
    const { what, targetFullKey, uploadId } = this.target;
    try {
      await this.options.body.read(data, part.targetStart);
    } catch (error) {
      throw asAppError(error, 'local_io', `${what}: read part ${partNumber} at ${part.targetStart}`);
    }
    try {
      const answer = await this.context.client.send(
        new UploadPartCommand({
          Bucket: this.context.bucket,
          Key: targetFullKey,
          UploadId: uploadId,
          PartNumber: partNumber,
          Body: data,
          ContentLength: data.length,
          // The server refuses the part (BadDigest) when what arrived is not what was planned.
          ContentMD5: Buffer.from(part.md5Hex, 'hex').toString('base64'),
        }),
        { abortSignal: this.requests.signal },
      );
      // The server checked the part against its MD5, which is then its ETag where it names none.
      return { PartNumber: partNumber, ETag: answer.ETag !== undefined && answer.ETag !== '' ? answer.ETag : quoted(part.md5Hex) };
    } catch (error) {
      throw withServerCode(error, `${what}: part ${partNumber} (send ${part.length} bytes at ${part.targetStart})`);
    }
  }
}

/**
 * A server that cannot copy ranges is told apart from one refusing this request, so the caller
 * can fall back to sending the whole file; everything else keeps its usual translation.
 */
function rangedCopyFailure(error: unknown, what: string): AppError {
  const translated = withServerCode(error, what);
  const code = errorCodeOf(error);
  if (!isAppError(translated, 'object_refused') || !RANGED_COPY_REFUSALS.has(code)) return translated;
  return new AppError('remote_rejected', translated.message, {
    cause: error,
    retryable: false,
    hint: 'the server does not copy byte ranges of objects (UploadPartCopy with x-amz-copy-source-range)',
    details: { code },
  });
}

/**
 * Some servers ignore x-amz-copy-source-if-match (Ceph RGW 16): a replaced source is then copied
 * as it is now, and only the part's MD5 shows it. Asking the source's ETag tells that conflict
 * apart from corruption; a failure to ask leaves the error as it was.
 */
async function sourceReplacedOr(context: S3ComposeContext, target: ComposeTarget, sourceEtag: string, error: AppError): Promise<AppError> {
  if (!isAppError(error, 'integrity') && !isAppError(error, 'object_refused')) return error;
  try {
    const head = await context.client.send(new HeadObjectCommand({ Bucket: context.bucket, Key: target.sourceFullKey }), { abortSignal: AbortSignal.timeout(SOURCE_HEAD_TIMEOUT_MS) });
    const currentEtag = normalizedPartMd5(head.ETag);
    if (currentEtag === '' || currentEtag === normalizedPartMd5(sourceEtag)) return error;
    return new AppError('conflict', `${target.what}: the source ${target.sourceFullKey} changed (ETag ${currentEtag}, planned against ${normalizedPartMd5(sourceEtag)})`, {
      cause: error,
      details: { sourceEtag: normalizedPartMd5(sourceEtag), currentEtag },
    });
  } catch {
    return error;
  }
}
