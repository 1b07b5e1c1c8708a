import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { ContainerClient } from '@azure/storage-blob';
import { AppError, asAppError } from '../errors.js';
import { multipartEtag } from '../snapshot/digest.js';
import { translateAzureError } from './azure-errors.js';
import { blockIdsFor, toAzureMetadata } from './azure-metadata.js';
import { retryInUpload } from './part-retry.js';
import { CANCEL_GRACE_MS, type FileBody, type PutOptions } from './store.js';

/**
 * A large blob written as staged blocks (Put Block, each with its Content-MD5, which the service
 * checks) committed by one Put Block List. Blocks are read into `partsInFlight` buffers reused
 * for the whole file, so memory stays at the blocks in flight. Returns the S3 multipart ETag of
 * the blocks, which the commit records (see azure-metadata.ts).
 *
 * A block that fails in transit is staged again in place, under the same block id, as S3 parts
 * are (part-retry.ts): the blocks already staged stay, and no second set piles up.
 *
 * Nothing is left to abort on failure: uncommitted blocks are invisible, discarded by the next
 * commit of the same name, and otherwise by the service after a week.
 */

export interface BlockUploadContext {
  container: ContainerClient;
  partsInFlight: number;
  /** Commit only if the name is free (If-None-Match: *). */
  ifNoneMatch: boolean;
}

/** A body read at increasing offsets: a local file, or a stream cut into blocks. */
interface BlockReader {
  read(target: Buffer, position: number): Promise<void>;
  /** Throws when the body holds more bytes than were read. */
  finish(): Promise<void>;
}

export async function uploadInBlocks(context: BlockUploadContext, blobName: string, body: FileBody | Readable, partSizeBytes: number, options: PutOptions): Promise<string> {
  const what = `upload ${blobName}`;
  if (options.signal?.aborted === true) throw new AppError('cancelled', `${what}: aborted`);
  const reader: BlockReader = 'kind' in body && body.kind === 'file' ? { read: (t, p) => body.read(t, p), finish: async () => undefined } : new StreamBlocks(body as Readable, what);
  const blocks = new BlocksInFlight(context, blobName, reader, partSizeBytes, options);
  try {
    const md5s = await blocks.stageAll();
    await reader.finish();
    const etag = multipartEtag(md5s);
    // Not cancellable: cut short, the service might commit anyway without memsync knowing.
    await context.container.getBlockBlobClient(blobName).commitBlockList(
      md5s.map((_, index) => blocks.blockId(index)),
      { conditions: context.ifNoneMatch ? { ifNoneMatch: '*' } : undefined, metadata: toAzureMetadata(options.metadata, what, { etag, sizeBytes: options.sizeBytes }) },
    );
    return etag;
  } catch (error) {
    throw blocks.cancelled ? new AppError('cancelled', `${what}: aborted`, { cause: error }) : error;
  } finally {
    blocks.dispose();
  }
}

/**
 * The blocks of one upload: read in order (so `onPart` sees the file front to back), staged up
 * to `partsInFlight` at a time, each retried in place while its slot waits. A failure for good or
 * a cancellation stops new blocks and the waits of blocks being retried; blocks on the wire are
 * let finish, or cut after CANCEL_GRACE_MS when cancelled.
 */
class BlocksInFlight {
  cancelled = false;
  readonly blockId = blockIdsFor();
  private failure: unknown;
  private nextIndex = 0;
  private sentBytes = 0;
  private reading: Promise<unknown> = Promise.resolve();
  private readonly blockCount: number;
  private readonly requests = new AbortController();
  /** Aborted on a cancellation or a failure for good: blocks waiting to be staged again give up. */
  private readonly stopping = new AbortController();
  private graceTimer: NodeJS.Timeout | undefined;
  private readonly onCancel = (): void => {
    this.cancelled = true;
    this.stopping.abort();
    this.graceTimer ??= setTimeout(() => this.requests.abort(), CANCEL_GRACE_MS);
  };

  constructor(
    private readonly context: BlockUploadContext,
    private readonly blobName: string,
    private readonly reader: BlockReader,
    private readonly partSizeBytes: number,
    private readonly options: PutOptions,
  ) {
    this.blockCount = Math.ceil(options.sizeBytes / partSizeBytes);
    if (options.signal?.aborted === true) this.onCancel();
    else options.signal?.addEventListener('abort', this.onCancel, { once: true });
  }

  /** The raw MD5 of every block, in order, once all are staged. */
  async stageAll(): Promise<Buffer[]> {
    const md5s = new Array<Buffer>(this.blockCount);
    const slots = Array.from({ length: Math.min(this.context.partsInFlight, this.blockCount) }, () => Buffer.allocUnsafe(this.partSizeBytes));
    await Promise.all(slots.map((slot) => this.stageWith(slot, md5s)));
    if (this.cancelled) throw new AppError('cancelled', `upload ${this.blobName}: aborted`);
    if (this.failure !== undefined) throw this.failure;
    return md5s;
  }

  dispose(): void {
    clearTimeout(this.graceTimer);
    this.options.signal?.removeEventListener('abort', this.onCancel);
  }

  private stopped(): boolean {
    return this.cancelled || this.failure !== undefined;
  }

  /** One slot's loop: take the next block, read it into the slot, stage it, repeat. */
  private async stageWith(slot: Buffer, md5s: Buffer[]): Promise<void> {
    while (this.nextIndex < this.blockCount && !this.stopped()) {
      const index = this.nextIndex;
      this.nextIndex += 1;
      const offset = index * this.partSizeBytes;
      const data = slot.subarray(0, Math.min(this.partSizeBytes, this.options.sizeBytes - offset));
      try {
        const read = this.reading.then(async () => {
          if (this.stopped()) return undefined;
          await this.reader.read(data, offset).catch((error: unknown) => {
            throw asAppError(error, 'local_io', `upload ${this.blobName}: read block ${index + 1} at ${offset}`);
          });
          // The caller's MD5 (taken as it digests the file) is the one the service checks the block against.
          return this.options.onPart?.(data) ?? createHash('md5').update(data).digest();
        });
        this.reading = read.catch(() => undefined);
        const md5 = await read;
        if (md5 === undefined) return;
        await this.stage(index, data, md5);
        md5s[index] = md5;
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
   * Stages block `index` from `data`, and again in place when it fails in transit: the slot still
   * holds the bytes, sent with the MD5 of their first read, so the service checks them again.
   */
  private async stage(index: number, data: Buffer, md5: Buffer): Promise<void> {
    const blob = this.context.container.getBlockBlobClient(this.blobName);
    await retryInUpload(
      () => blob.stageBlock(this.blockId(index), data, data.length, { transactionalContentMD5: md5, abortSignal: this.requests.signal }),
      `upload ${this.blobName}: block ${index + 1} of ${this.blockCount}`,
      this.options.partRetry,
      this.stopping.signal,
      (error, what) => translateAzureError(error, what, this.requests.signal.aborted ? this.requests.signal : undefined),
    );
  }
}

/** A stream (an encrypted body) read block by block, in order, into the caller's buffers. */
class StreamBlocks implements BlockReader {
  private readonly chunks: AsyncIterator<Buffer>;
  private pending: Buffer = Buffer.alloc(0);
  private position = 0;

  constructor(stream: Readable, private readonly what: string) {
    this.chunks = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  async read(target: Buffer, position: number): Promise<void> {
    if (position !== this.position) throw new AppError('local_io', `${this.what}: stream read out of order (at ${position}, stream at ${this.position})`);
    let filled = 0;
    while (filled < target.length) {
      if (this.pending.length === 0) {
        const next = await this.chunks.next();
        if (next.done === true) throw new AppError('local_io', `${this.what}: the body ended at ${this.position + filled} bytes, before its size`);
        this.pending = Buffer.from(next.value);
      }
      const take = Math.min(this.pending.length, target.length - filled);
      this.pending.copy(target, filled, 0, take);
      this.pending = this.pending.subarray(take);
      filled += take;
    }
    this.position += target.length;
  }

  async finish(): Promise<void> {
    while (this.pending.length === 0) {
      const next = await this.chunks.next();
      if (next.done === true) return;
      this.pending = Buffer.from(next.value);
    }
    throw new AppError('local_io', `${this.what}: the body is longer than its size (${this.position} bytes)`);
  }
}
