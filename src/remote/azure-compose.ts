import { createHash } from 'node:crypto';
import { AppError, asAppError, isAppError } from '../errors.js';
import { multipartEtag, normalizeEtag } from '../snapshot/digest.js';
import { readBody } from './body.js';
import type { AzureContainer } from './azure-client.js';
import { translateAzureError } from './azure-errors.js';
import { blockIdsFor, md5HexOf, reportedEtag, toAzureMetadata } from './azure-metadata.js';
import { CopiedPartChecks, localPartMd5, MIN_COMPOSE_PART_BYTES, partMd5Mismatch } from './compose-parts.js';
import { retryInUpload } from './part-retry.js';
import { CANCEL_GRACE_MS, type FileBody, type PartRetryOptions } from './store.js';

/**
 * A blob written from ranges of another blob copied by the service (Put Block From URL) and
 * bytes of the local file sent (Put Block), committed by one Put Block List: a delta upload, or
 * a copy in parts. Each copied range is checked by the service against its planned MD5 where one
 * is known (x-ms-source-content-md5), else the MD5 the service reports for it is used, compared
 * with the planned one once that is known; each sent range against its Content-MD5. The commit
 * records the S3 multipart ETag of the blocks.
 *
 * Put Block From URL takes no condition on its source, so the source is pinned by its Azure
 * ETag: read before the first block and again before the commit. Azure never gives two versions
 * one ETag, so an unchanged ETag means every range was read from the version the plan was made
 * against; a changed one fails the composition as a conflict, and nothing is committed.
 */

export type StagedPart =
  /** md5Hex: known, still being computed (the copy does not wait for it), or none (the service's is taken). */
  | { kind: 'copy'; sourceStart: number; /** Exclusive. */ sourceEnd: number; md5Hex: string | Promise<string> | undefined }
  | { kind: 'send'; targetStart: number; length: number; md5Hex: string };

export interface StagedComposition {
  what: string;
  sourceName: string;
  targetName: string;
  /** The source's ETag as the store reports it (S3-style); else conflict. */
  sourceEtag: string;
  parts: readonly StagedPart[];
  /** Where sent parts are read from, at their target offsets. */
  body: FileBody | undefined;
  metadata: Record<string, string>;
  signal: AbortSignal | undefined;
  onPartDone?: (part: { index: number; bytes: number; kind: 'copy' | 'send' }) => void;
  /** Blocks that fail in transit are staged again in place (part-retry.ts); default DEFAULT_PART_RETRY. */
  partRetry?: PartRetryOptions;
}

export interface AzureComposeContext {
  container: AzureContainer;
  partsInFlight: number;
}

/** The largest copied range whose bytes are read back to name its actual MD5 in a failure. */
const MAX_DIAGNOSTIC_READ_BYTES = 256 * 1024 * 1024;

/** Returns the S3 multipart ETag recorded on the new blob. */
export async function composeAzureBlob(context: AzureComposeContext, job: StagedComposition): Promise<string> {
  const { what } = job;
  if (job.signal?.aborted === true) throw new AppError('cancelled', `${what}: aborted`);
  // One plan any backend takes: S3 refuses parts under 5 MiB but the last, and so does this store.
  const small = job.parts.slice(0, -1).findIndex((part) => stagedPartBytes(part) < MIN_COMPOSE_PART_BYTES);
  if (small >= 0) {
    throw new AppError('object_refused', `${what}: part ${small + 1} is under 5 MiB and not the last: EntityTooSmall`, { retryable: false, details: { code: 'EntityTooSmall' } });
  }
  const pinned = await sourceVersion(context, job);
  const blocks = new StagedInFlight(context, job);
  let md5s: Buffer[];
  try {
    md5s = await blocks.stageAll();
  } catch (error) {
    if (blocks.cancelled) throw new AppError('cancelled', `${what}: aborted`, { cause: error });
    const failed = blocks.failedOn;
    if (failed?.part.kind !== 'copy') throw error;
    throw await explainCopyFailure(context, job, pinned, failed.index, failed.part, asAppError(error, 'remote_unavailable', what));
  } finally {
    blocks.dispose();
  }
  if ((await currentVersion(context, job)) !== pinned) throw sourceChanged(job);
  const etag = multipartEtag(md5s);
  try {
    // Not cancellable: cut short, the service might commit anyway without memsync knowing. Not
    // create-only either, as on S3: the target was free when planned or holds this agent's own
    // unfinished object, and a retry after an answer lost in transit must replace what it wrote.
    await context.container.client.getBlockBlobClient(job.targetName).commitBlockList(
      md5s.map((_, index) => blocks.blockId(index)),
      { metadata: toAzureMetadata(job.metadata, what, { etag, sizeBytes: job.parts.reduce((total, part) => total + stagedPartBytes(part), 0) }) },
    );
  } catch (error) {
    throw translateAzureError(error, `${what}: commit`);
  }
  return etag;
}

function stagedPartBytes(part: StagedPart): number {
  return part.kind === 'copy' ? part.sourceEnd - part.sourceStart : part.length;
}

/** The source's Azure ETag, once its reported ETag is checked against the plan's. */
async function sourceVersion(context: AzureComposeContext, job: StagedComposition): Promise<string> {
  let properties;
  try {
    properties = await context.container.client.getBlobClient(job.sourceName).getProperties({ abortSignal: job.signal });
  } catch (error) {
    throw translateAzureError(error, `${job.what}: read the source ${job.sourceName}`, job.signal);
  }
  const current = normalizeEtag(reportedEtag(properties));
  if (current !== normalizeEtag(job.sourceEtag)) throw sourceChanged(job, current);
  return properties.etag ?? '';
}

async function currentVersion(context: AzureComposeContext, job: StagedComposition): Promise<string | undefined> {
  try {
    return (await context.container.client.getBlobClient(job.sourceName).getProperties()).etag;
  } catch (error) {
    const translated = translateAzureError(error, `${job.what}: read the source ${job.sourceName}`);
    if (isAppError(translated, 'not_found')) return undefined;
    throw translated;
  }
}

function sourceChanged(job: StagedComposition, currentEtag?: string): AppError {
  const now = currentEtag === undefined ? 'it changed' : `it has ETag ${currentEtag || '(none)'}`;
  return new AppError('conflict', `${job.what}: the source ${job.sourceName} is not the version planned against (ETag ${normalizeEtag(job.sourceEtag)}); ${now}`, {
    details: { sourceEtag: normalizeEtag(job.sourceEtag), ...(currentEtag === undefined ? {} : { currentEtag }) },
  });
}

/**
 * A copied range refused or missing: a replaced source is a conflict; a range whose bytes are
 * not the planned ones (the service compared its MD5) is integrity, named with both MD5s.
 */
async function explainCopyFailure(
  context: AzureComposeContext,
  job: StagedComposition,
  pinned: string,
  index: number,
  part: Extract<StagedPart, { kind: 'copy' }>,
  error: AppError,
): Promise<AppError> {
  if (!isAppError(error, 'integrity') && !isAppError(error, 'not_found') && !isAppError(error, 'conflict')) return error;
  const version = await currentVersion(context, job).catch(() => pinned);
  if (version !== pinned) return sourceChanged(job);
  if (!isAppError(error, 'integrity') || typeof part.md5Hex !== 'string') return error;
  let actual = '';
  const bytes = part.sourceEnd - part.sourceStart;
  if (bytes <= MAX_DIAGNOSTIC_READ_BYTES) {
    try {
      const download = await context.container.client.getBlobClient(job.sourceName).download(part.sourceStart, bytes);
      if (download.readableStreamBody !== undefined) actual = createHash('md5').update(await readBody(download.readableStreamBody, job.sourceName, bytes)).digest('hex');
    } catch {
      // Only for the message: the failure stands without the actual MD5.
    }
  }
  return partMd5Mismatch(job.what, index + 1, part.md5Hex, actual);
}

/**
 * The blocks of one composition, started in order, up to `partsInFlight` at a time, each staged
 * again in place (same block id) when it fails in transit, while its worker waits.
 */
class StagedInFlight {
  cancelled = false;
  /** The part whose failure stopped the composition. */
  failedOn: { index: number; part: StagedPart } | undefined;
  readonly blockId = blockIdsFor();
  private failure: unknown;
  private nextIndex = 0;
  private readonly requests = new AbortController();
  /** Aborted on a cancellation or a failure for good: blocks waiting to be staged again give up. */
  private readonly stopping = new AbortController();
  private graceTimer: NodeJS.Timeout | undefined;
  private readonly checks: CopiedPartChecks;
  private readonly onCancel = (): void => {
    this.cancelled = true;
    this.stopping.abort();
    this.windDown();
  };

  constructor(
    private readonly context: AzureComposeContext,
    private readonly job: StagedComposition,
  ) {
    this.checks = new CopiedPartChecks(job.what, this.stopping.signal);
    if (job.signal?.aborted === true) this.onCancel();
    else job.signal?.addEventListener('abort', this.onCancel, { once: true });
  }

  async stageAll(): Promise<Buffer[]> {
    const md5s = new Array<Buffer>(this.job.parts.length);
    const workers = Math.max(1, Math.min(this.context.partsInFlight, this.job.parts.length));
    await Promise.all(Array.from({ length: workers }, () => this.work(md5s)));
    // The commit needs every copied block checked against its local MD5, which may come after the copy.
    await this.checks.firstFailure();
    if (this.cancelled) throw new AppError('cancelled', `${this.job.what}: aborted`);
    if (this.failure !== undefined) throw this.failure;
    return md5s;
  }

  dispose(): void {
    clearTimeout(this.graceTimer);
    this.job.signal?.removeEventListener('abort', this.onCancel);
  }

  private failWith(error: unknown, index: number, part: StagedPart): void {
    if (this.failure === undefined) {
      this.failure = error;
      this.failedOn = { index, part };
    }
    this.stopping.abort();
    this.windDown();
  }

  private windDown(): void {
    this.graceTimer ??= setTimeout(() => this.requests.abort(), CANCEL_GRACE_MS);
  }

  /** One worker's loop. Its buffer for sent parts is reused, grown only for a longer part. */
  private async work(md5s: Buffer[]): Promise<void> {
    let buffer = Buffer.alloc(0);
    while (this.nextIndex < this.job.parts.length && !this.cancelled && this.failure === undefined) {
      const index = this.nextIndex;
      this.nextIndex += 1;
      const part = this.job.parts[index] as StagedPart;
      try {
        if (part.kind === 'copy') {
          md5s[index] = await this.copyPart(index, part);
        } else {
          if (buffer.length < part.length) buffer = Buffer.allocUnsafe(part.length);
          md5s[index] = await this.sendPart(index, part, buffer.subarray(0, part.length));
        }
      } catch (error) {
        this.failWith(error, index, part);
        return;
      }
      this.job.onPartDone?.({ index, bytes: stagedPartBytes(part), kind: part.kind });
    }
  }

  private async copyPart(index: number, part: Extract<StagedPart, { kind: 'copy' }>): Promise<Buffer> {
    const { what } = this.job;
    const reported = md5HexOf((await this.stageCopy(index, part, typeof part.md5Hex === 'string' ? part.md5Hex : undefined)).contentMD5);
    if (typeof part.md5Hex === 'string') {
      if (reported !== '' && reported !== part.md5Hex.toLowerCase()) throw partMd5Mismatch(what, index + 1, part.md5Hex, reported);
      return Buffer.from(part.md5Hex, 'hex');
    }
    if (part.md5Hex !== undefined) {
      if (reported !== '') {
        void this.checks.add(index + 1, part.md5Hex, reported).then((failure) => failure !== undefined && this.failWith(failure, index, part));
        return Buffer.from(reported, 'hex');
      }
      // A service that names no MD5 for the range is given the local one and checks it itself.
      const local = await localPartMd5(part.md5Hex, this.stopping.signal, `${what}: part ${index + 1}`);
      await this.stageCopy(index, part, local);
      return Buffer.from(local, 'hex');
    }
    if (reported === '') {
      throw new AppError('remote_rejected', `${what}: part ${index + 1} (copy bytes=${part.sourceStart}-${part.sourceEnd - 1}): the service reported no MD5 for the copied range, so its ETag cannot be known`, {
        retryable: false,
        details: { code: 'NoRangeMd5' },
      });
    }
    return Buffer.from(reported, 'hex');
  }

  /** Stages a copied range, checked by the service against `md5Hex` when one is given. */
  private stageCopy(index: number, part: Extract<StagedPart, { kind: 'copy' }>, md5Hex: string | undefined): Promise<{ contentMD5?: Uint8Array }> {
    const { what, sourceName, targetName } = this.job;
    const context = `${what}: part ${index + 1} (copy bytes=${part.sourceStart}-${part.sourceEnd - 1})`;
    return this.inPlace(context, () =>
      this.context.container.client.getBlockBlobClient(targetName).stageBlockFromURL(this.blockId(index), this.context.container.sourceUrl(sourceName), part.sourceStart, part.sourceEnd - part.sourceStart, {
        sourceContentMD5: md5Hex === undefined ? undefined : Buffer.from(md5Hex, 'hex'),
        abortSignal: this.requests.signal,
      }),
    );
  }

  private async sendPart(index: number, part: Extract<StagedPart, { kind: 'send' }>, data: Buffer): Promise<Buffer> {
    const { what, targetName, body } = this.job;
    const context = `${what}: part ${index + 1} (send ${part.length} bytes at ${part.targetStart})`;
    if (body === undefined) throw new AppError('bad_input', `${context}: no local file to send from`, { retryable: false });
    try {
      await body.read(data, part.targetStart);
    } catch (error) {
      throw asAppError(error, 'local_io', `${context}: read`);
    }
    const md5 = Buffer.from(part.md5Hex, 'hex');
    // The service refuses the block (Md5Mismatch) when what arrived is not what was planned.
    await this.inPlace(context, () =>
      this.context.container.client.getBlockBlobClient(targetName).stageBlock(this.blockId(index), data, data.length, { transactionalContentMD5: md5, abortSignal: this.requests.signal }),
    );
    return md5;
  }

  /** One staging request, sent again in place while it fails in transit (part-retry.ts). */
  private inPlace<T>(what: string, send: () => Promise<T>): Promise<T> {
    return retryInUpload(send, what, this.job.partRetry, this.stopping.signal, (error, context) =>
      translateAzureError(error, context, this.requests.signal.aborted ? this.requests.signal : undefined),
    );
  }
}
