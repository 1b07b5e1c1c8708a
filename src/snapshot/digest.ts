import { createHash, type Hash } from 'node:crypto';
import { AppError } from '../errors.js';
import { Md5Offload } from './md5-offload.js';
import { openLocalFile, type LocalFile, type OpenOptions } from './safe-open.js';

/**
 * Content digests of a file, computed in one streaming pass: SHA-256 for the manifest,
 * MD5 for Content-MD5, and the ETag S3 will report for the part size memsync uploads it
 * with, so what the server says it stored can be checked against what was read.
 */

const MIB = 1024 * 1024;
/** S3 allows at most 10,000 parts; parts below 5 MiB (except the last) are refused. */
const MAX_PARTS = 10_000;
const MIN_PART_BYTES = 8 * MIB;

export interface FileDigest {
  size: number;
  sha256: string;
  /**
   * MD5 of the whole file; '' when not computed: a multipart file hashed while it is sent
   * needs only its part MD5s (its ETag), and a whole-file MD5 would be a third pass of hashing.
   */
  md5: string;
  /** The ETag S3 computes: the MD5 for a single PUT, md5-of-part-md5s-N for multipart. */
  etag: string;
  partSizeBytes: number;
  multipart: boolean;
}

/** The part size memsync uses for a file: a pure function of its size, so ETags are predictable. */
export function partSizeFor(sizeBytes: number): number {
  const needed = Math.ceil(sizeBytes / MAX_PARTS);
  return Math.max(MIN_PART_BYTES, Math.ceil(needed / MIB) * MIB);
}

/**
 * Whether the file goes up as a multipart upload. lib-storage sends a body that fits in one
 * part (size <= part size) as a single PutObject whatever the threshold, and S3 then reports
 * the plain MD5 as its ETag: the prediction has to follow the same rule.
 */
export function usesMultipart(sizeBytes: number, thresholdBytes: number): boolean {
  return sizeBytes >= thresholdBytes && sizeBytes > partSizeFor(sizeBytes);
}

/**
 * Whether `digest` was taken for the part layout memsync uses for a file of `sizeBytes` under
 * `thresholdBytes`: only then is its ETag the one an upload of those bytes gets now.
 */
export function hasLayoutFor(digest: FileDigest, sizeBytes: number, thresholdBytes: number): boolean {
  return digest.partSizeBytes === partSizeFor(sizeBytes) && digest.multipart === usesMultipart(sizeBytes, thresholdBytes);
}

/** The multipart ETag from the parts' raw MD5 digests. */
export function multipartEtag(partMd5s: readonly Buffer[]): string {
  const outer = createHash('md5');
  for (const digest of partMd5s) outer.update(digest);
  return `${outer.digest('hex')}-${partMd5s.length}`;
}

/** Whether an object with `etag` holds the bytes `local` was computed from: its multipart ETag, or (where known) its plain MD5. */
export function producesEtag(local: FileDigest, etag: string): boolean {
  return etag !== '' && (etag === local.etag || etag === local.md5);
}

/** ETags come quoted from S3 and sometimes from proxies in other cases. */
export function normalizeEtag(etag: string | undefined): string {
  return (etag ?? '').replace(/^W\//, '').replace(/"/g, '').toLowerCase();
}

/**
 * Tracks MD5 per part while bytes stream past, splitting chunks on part boundaries exactly
 * as a multipart upload with `partSizeBytes` does.
 */
export class PartHasher {
  private readonly parts: Buffer[] = [];
  private current = createHash('md5');
  private inPart = 0;

  constructor(private readonly partSizeBytes: number) {}

  update(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(this.partSizeBytes - this.inPart, chunk.length - offset);
      this.current.update(chunk.subarray(offset, offset + take));
      this.inPart += take;
      offset += take;
      if (this.inPart === this.partSizeBytes) {
        this.parts.push(this.current.digest());
        this.current = createHash('md5');
        this.inPart = 0;
      }
    }
  }

  /**
   * One whole part (the last may be shorter), for callers that feed the stream part by part;
   * returns its raw MD5 (a multipart upload's Content-MD5 for that part).
   */
  addPart(part: Buffer): Buffer {
    if (this.inPart !== 0) throw new Error('PartHasher.addPart after a partial update');
    const digest = createHash('md5').update(part).digest();
    this.parts.push(digest);
    return digest;
  }

  /** The raw MD5 of every part, the last (shorter) one included; call after the last update. */
  partMd5s(): readonly Buffer[] {
    if (this.inPart > 0 || this.parts.length === 0) {
      this.parts.push(this.current.digest());
      this.inPart = 0;
      this.current = createHash('md5');
    }
    return this.parts;
  }

  etag(): string {
    return multipartEtag(this.partMd5s());
  }
}

/**
 * Every digest of a byte stream memsync needs, updated as the bytes pass: SHA-256 (optional),
 * MD5, and the multipart ETag for `partSizeBytes` when the object goes up in parts.
 */
export class DigestAccumulator {
  private readonly sha256: Hash | undefined;
  private readonly md5: Hash | undefined;
  private readonly parts: PartHasher | undefined;
  private bytes = 0;

  constructor(
    private readonly partSizeBytes: number,
    private readonly multipart: boolean,
    withSha256 = true,
    /** Without it a multipart stream's `md5` is '' (a single PUT always needs it: it is that object's ETag). */
    withWholeMd5 = true,
  ) {
    this.sha256 = withSha256 ? createHash('sha256') : undefined;
    this.md5 = withWholeMd5 || !multipart ? createHash('md5') : undefined;
    this.parts = multipart ? new PartHasher(partSizeBytes) : undefined;
  }

  get size(): number {
    return this.bytes;
  }

  update(chunk: Buffer): void {
    this.sha256?.update(chunk);
    this.md5?.update(chunk);
    this.parts?.update(chunk);
    this.bytes += chunk.length;
  }

  /** One whole part of the upload's layout; returns its raw MD5 when the upload is multipart. */
  addPart(part: Buffer): Buffer | undefined {
    this.sha256?.update(part);
    this.md5?.update(part);
    this.bytes += part.length;
    return this.parts?.addPart(part);
  }

  /** The raw MD5s of the multipart layout's parts (undefined for a single PUT); after the last chunk. */
  partMd5s(): readonly Buffer[] | undefined {
    return this.parts?.partMd5s();
  }

  /** Call once, after the last chunk. `sha256` is '' when it was not asked for. */
  digest(): FileDigest {
    const md5 = this.md5?.digest('hex') ?? '';
    return { size: this.bytes, sha256: this.sha256?.digest('hex') ?? '', md5, etag: this.parts?.etag() ?? md5, partSizeBytes: this.partSizeBytes, multipart: this.multipart };
  }
}

/** The digests of a file of `sizeBytes` uploaded with memsync's part layout, as they accumulate. */
export function fileDigestAccumulator(sizeBytes: number, multipartThresholdBytes: number, options: { wholeMd5: boolean } = { wholeMd5: true }): DigestAccumulator {
  return new DigestAccumulator(partSizeFor(sizeBytes), usesMultipart(sizeBytes, multipartThresholdBytes), true, options.wholeMd5);
}

/** Files from this size on are digested with their MD5s on a second thread (see md5-offload.ts). */
export const MD5_OFFLOAD_MIN_BYTES = 32 * MIB;
/** Blocks read ahead of the MD5 thread, and their size: large enough that handing one over costs nothing next to hashing it. */
const OFFLOAD_SLOTS = 4;
const OFFLOAD_SLOT_BYTES = 4 * MIB;

/**
 * Reads a file once and returns every digest memsync needs for it. `expectedSizeBytes` comes
 * from the stat that settled the snapshot; a file that reads to another length changed
 * underneath and is reported as such, never digested as if it were whole.
 */
export interface DigestFileOptions {
  /** What the opened file must be (the scan's identity of it), and the deadline of each operation. */
  opening?: OpenOptions;
  /** Shown every block of the file in order, in the same read (chunking for delta uploads). */
  observe?: (bytes: Buffer) => void;
  /** From this size on, MD5s are taken on other threads; default MD5_OFFLOAD_MIN_BYTES. */
  offloadFromBytes?: number;
  /**
   * Shown the raw MD5 of every part of a multipart file's layout (digest.partSizeBytes), which
   * the ETag only sums up: a composed upload checks the parts it copies against them.
   */
  onPartMd5s?: (partMd5s: readonly Buffer[]) => void;
}

export async function digestFile(absolutePath: string, expectedSizeBytes: number, multipartThresholdBytes: number, options: DigestFileOptions = {}): Promise<FileDigest> {
  const { opening = {}, offloadFromBytes = MD5_OFFLOAD_MIN_BYTES } = options;
  const file = await openLocalFile(absolutePath, opening);
  try {
    return expectedSizeBytes >= offloadFromBytes
      ? await digestWithMd5Thread(file, absolutePath, expectedSizeBytes, multipartThresholdBytes, options)
      : await digestInline(file, absolutePath, expectedSizeBytes, multipartThresholdBytes, options);
  } finally {
    await file.close();
  }
}

type Observers = Pick<DigestFileOptions, 'observe' | 'onPartMd5s'>;

async function digestInline(file: LocalFile, absolutePath: string, expectedSizeBytes: number, multipartThresholdBytes: number, { observe, onPartMd5s }: Observers): Promise<FileDigest> {
  const digests = fileDigestAccumulator(expectedSizeBytes, multipartThresholdBytes);
  // One buffer for the whole file: the hashes copy what they need from it. No larger than the
  // file (+1, so a file that grew still reads past its expected end): thousands of small files
  // would otherwise each take a MiB, which Node 24 collects with costly full GCs.
  const buffer = Buffer.allocUnsafe(Math.min(MIB, expectedSizeBytes + 1));
  for (let position = 0; ; ) {
    const bytesRead = await file.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) break;
    digests.update(buffer.subarray(0, bytesRead));
    observe?.(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  requireExpectedSize(absolutePath, expectedSizeBytes, digests.size);
  const digest = digests.digest();
  const partMd5s = digests.partMd5s();
  if (partMd5s !== undefined) onPartMd5s?.(partMd5s);
  return digest;
}

/** The same digests, with the MD5s (whole and per part) taken on a second thread from the same reads. */
async function digestWithMd5Thread(file: LocalFile, absolutePath: string, expectedSizeBytes: number, multipartThresholdBytes: number, { observe, onPartMd5s }: Observers): Promise<FileDigest> {
  const partSizeBytes = partSizeFor(expectedSizeBytes);
  const multipart = usesMultipart(expectedSizeBytes, multipartThresholdBytes);
  const md5s = new Md5Offload({ partSizeBytes: multipart ? partSizeBytes : 0, wholeMd5: true, slotBytes: OFFLOAD_SLOT_BYTES, slotCount: OFFLOAD_SLOTS });
  try {
    const sha256 = createHash('sha256');
    let size = 0;
    for (;;) {
      const slot = await md5s.slot();
      const bytesRead = await file.read(slot.buffer, 0, slot.buffer.length, size);
      if (bytesRead === 0) {
        md5s.release(slot.index);
        break;
      }
      const bytes = slot.buffer.subarray(0, bytesRead);
      md5s.submit(slot.index, bytesRead);
      sha256.update(bytes);
      observe?.(bytes);
      size += bytesRead;
    }
    requireExpectedSize(absolutePath, expectedSizeBytes, size);
    const { md5, partMd5s } = await md5s.finish();
    if (multipart) onPartMd5s?.(partMd5s);
    return { size, sha256: sha256.digest('hex'), md5, etag: multipart ? multipartEtag(partMd5s) : md5, partSizeBytes, multipart };
  } finally {
    await md5s.close();
  }
}

/** Reads of a SHA-256-only pass: hashing one takes a few milliseconds of the main thread. */
const SHA256_READ_BYTES = 4 * MIB;

/**
 * The SHA-256 of a file alone, opened under the same rules as digestFile: enough to prove the
 * file holds the bytes of a version already digested, for a fraction of the CPU of every digest
 * (MD5, whole and per part, is the slower hash). The next block is read while one is hashed.
 */
export async function sha256OfFile(absolutePath: string, expectedSizeBytes: number, opening: OpenOptions = {}): Promise<string> {
  const file = await openLocalFile(absolutePath, opening);
  try {
    const blockBytes = Math.min(SHA256_READ_BYTES, expectedSizeBytes + 1);
    const blocks = [Buffer.allocUnsafe(blockBytes), Buffer.allocUnsafe(blockBytes)];
    const sha256 = createHash('sha256');
    let size = 0;
    let next = 0;
    let reading = file.read(blocks[next]!, 0, blockBytes, 0);
    for (;;) {
      const bytesRead = await reading;
      if (bytesRead === 0) break;
      const block = blocks[next]!;
      size += bytesRead;
      next = 1 - next;
      reading = file.read(blocks[next]!, 0, blockBytes, size);
      sha256.update(block.subarray(0, bytesRead));
    }
    requireExpectedSize(absolutePath, expectedSizeBytes, size);
    return sha256.digest('hex');
  } finally {
    await file.close();
  }
}

function requireExpectedSize(absolutePath: string, expectedSizeBytes: number, actualBytes: number): void {
  if (actualBytes !== expectedSizeBytes) {
    throw new AppError('snapshot_gone', `${absolutePath} changed size while being read (${expectedSizeBytes} -> ${actualBytes} bytes)`);
  }
}
