import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { Chunker, type Chunk } from '../delta/chunker.js';
import { DEFAULT_CHUNKER_PARAMS } from '../delta/chunker-params.js';
import { digestFile, hasLayoutFor, MD5_OFFLOAD_MIN_BYTES, sha256OfFile, type FileDigest } from '../snapshot/digest.js';
import { openLocalFile, DEFAULT_FILE_DEADLINE_MS, type LocalFile, type OpenOptions } from '../snapshot/safe-open.js';
import { sameFingerprint, statSnapshot, type FileStat, type SnapshotStat } from '../snapshot/scan.js';
import { digestsOfOtherSnapshots, digestsOfOtherVersions, lookupDigest, storeDigest, type HashCacheDocument } from '../state/hash-cache.js';
import type { PersistedJson } from '../state/persisted.js';
import type { DeltaTransfer } from './delta-transfer.js';

/**
 * The local side of a snapshot upload: where its files are, how they are opened, their digests
 * (cached), and the checks that they are still the files that were settled.
 */

export interface SnapshotFilesOptions {
  backupDir: string;
  hashCache: PersistedJson<HashCacheDocument>;
  multipartThresholdBytes: number;
  log: Logger;
  /** See UploaderOptions.localFileDeadlineMs. */
  localFileDeadlineMs: number | undefined;
  refuseHardlinks: boolean | undefined;
  /** Delta uploads, when on: files a later version may be composed from are chunked while digested. */
  delta: Pick<DeltaTransfer, 'considers' | 'keep' | 'keeps' | 'guideFor'> | undefined;
  /** How files are read for their digests; default digest.ts's digestFile and sha256OfFile. */
  passes?: DigestPasses;
}

export interface DigestPasses {
  /** Every digest (and the chunks, when observed) in one read. */
  full: typeof digestFile;
  /** The SHA-256 alone. */
  sha256: typeof sha256OfFile;
}

/**
 * From this size on, a file of the same path and size as one digested in another snapshot has its
 * SHA-256 taken first, to reuse that digest if the bytes are the same. The memory service copies
 * its whole store into every backup, so most large files are unchanged copies. Below this size the
 * MD5s saved are worth little, while a changed file is read twice and the digest cache is scanned
 * (see digestsOfOtherVersions) once per file: thousands of small files would add that up.
 */
const REUSE_CHECK_MIN_BYTES = MD5_OFFLOAD_MIN_BYTES;

const DEFAULT_PASSES: DigestPasses = { full: digestFile, sha256: sha256OfFile };

export class SnapshotFiles {
  constructor(private readonly options: SnapshotFilesOptions) {}

  async digest(stat: SnapshotStat, file: FileStat): Promise<FileDigest> {
    const { hashCache, multipartThresholdBytes } = this.options;
    const cached = lookupDigest(hashCache.current, stat.name, file, multipartThresholdBytes);
    if (cached !== undefined) return cached;
    const digest = (await this.digestOfIdenticalVersion(stat, file)) ?? (await this.digestInFull(stat, file));
    this.remember(stat, file, digest);
    return digest;
  }

  /**
   * The cached digest of another version of this file (same path and size) whose bytes it holds,
   * proved by a SHA-256-only pass: equal SHA-256 and size mean equal content, so the MD5s and part
   * ETags (for the same part layout) and the chunk signature kept under that SHA-256 are this
   * file's too. Undefined when there is none; the full pass then reads the file again, mostly
   * from the page cache this pass has just filled.
   */
  private async digestOfIdenticalVersion(stat: SnapshotStat, file: FileStat): Promise<FileDigest | undefined> {
    const { hashCache, multipartThresholdBytes, delta } = this.options;
    if (file.size < REUSE_CHECK_MIN_BYTES) return undefined;
    const candidates = digestsOfOtherVersions(hashCache.current, file, multipartThresholdBytes).filter((digest) => hasLayoutFor(digest, file.size, multipartThresholdBytes));
    if (candidates.length === 0) return undefined;
    const sha256 = await this.passes.sha256(this.absolutePath(stat, file), file.size, this.opening(stat, file));
    const identical = candidates.find((digest) => digest.sha256 === sha256);
    if (identical === undefined) return undefined;
    // A version digested while delta uploads were off (or for a higher minimum) was never chunked.
    if (delta?.considers(file.size) === true && !(await delta.keeps(identical))) return undefined;
    this.options.log.debug('file identical to a version digested before; its digests reused', { snapshot: stat.name, file: file.path, sizeBytes: file.size });
    return { ...identical };
  }

  private async digestInFull(stat: SnapshotStat, file: FileStat): Promise<FileDigest> {
    const { multipartThresholdBytes, delta, log } = this.options;
    // A file a later version may be composed from is chunked in the same read (see delta-transfer.ts),
    // guided by an earlier version's chunks where one is kept.
    const chunker = delta?.considers(file.size) === true ? new Chunker(DEFAULT_CHUNKER_PARAMS, await delta.guideFor(this.earlierVersions(stat, file))) : undefined;
    const chunks: Chunk[] = [];
    const observe = chunker === undefined ? undefined : (bytes: Buffer): void => void chunks.push(...chunker.push(bytes));
    // Its plain part MD5s too: a composition checks the parts it copies on that layout against them.
    let partMd5s: readonly Buffer[] | undefined;
    const onPartMd5s = chunker === undefined ? undefined : (md5s: readonly Buffer[]): void => void (partMd5s = md5s);
    const digest = await this.passes.full(this.absolutePath(stat, file), file.size, multipartThresholdBytes, { opening: this.opening(stat, file), observe, onPartMd5s });
    if (chunker !== undefined) {
      chunks.push(...chunker.finish());
      log.debug('file chunked', { snapshot: stat.name, file: file.path, ...chunker.stats });
      await delta?.keep(chunks, digest, partMd5s === undefined ? undefined : { partSizeBytes: digest.partSizeBytes, md5s: partMd5s });
    }
    return digest;
  }

  /** The file's digests in other snapshots, newest first. */
  private earlierVersions(stat: SnapshotStat, file: FileStat): FileDigest[] {
    return digestsOfOtherSnapshots(this.options.hashCache.current, stat.name, file.path);
  }

  private get passes(): DigestPasses {
    return this.options.passes ?? DEFAULT_PASSES;
  }

  /** Caches a file's digest, so the next look at an unchanged file does not read it again. */
  remember(stat: SnapshotStat, file: FileStat, digest: FileDigest): void {
    const { hashCache, multipartThresholdBytes } = this.options;
    hashCache.update((doc) => storeDigest(doc, stat.name, file, multipartThresholdBytes, digest));
  }

  /** Whether the hash cache holds this file's digest (no I/O). */
  cached(stat: SnapshotStat, file: FileStat): boolean {
    return lookupDigest(this.options.hashCache.current, stat.name, file, this.options.multipartThresholdBytes) !== undefined;
  }

  absolutePath(stat: SnapshotStat, file: FileStat): string {
    return stat.kind === 'file' ? path.join(this.options.backupDir, stat.name) : path.join(this.options.backupDir, stat.name, ...file.path.split('/'));
  }

  /** Opens a file of this snapshot: refused unless it is still the regular file that was scanned (see safe-open.ts). */
  open(stat: SnapshotStat, file: FileStat): Promise<LocalFile> {
    return openLocalFile(this.absolutePath(stat, file), this.opening(stat, file));
  }

  /** How a file of this snapshot is opened: it must be the one the scan saw, each operation under the deadline. */
  private opening(stat: SnapshotStat, file: FileStat): OpenOptions {
    const deadlineMs = this.options.localFileDeadlineMs ?? DEFAULT_FILE_DEADLINE_MS;
    return {
      expected: file,
      deadlineMs,
      refuseHardlinks: this.options.refuseHardlinks ?? false,
      onStuck: (absolutePath, operation) => this.options.log.error('local file operation did not finish in time; the snapshot fails', { snapshot: stat.name, file: absolutePath, operation, deadlineMs }),
    };
  }

  async requireUnchanged(stat: SnapshotStat): Promise<void> {
    const now = await statSnapshot(this.options.backupDir, stat.name);
    if (!sameFingerprint(now, stat)) throw new AppError('snapshot_gone', `${stat.name} changed while it was being uploaded`);
  }

  async requireFileUnchanged(stat: SnapshotStat, file: FileStat): Promise<void> {
    try {
      const now = await lstat(this.absolutePath(stat, file));
      if (now.size === file.size && now.mtimeMs === file.mtimeMs && now.ctimeMs === file.ctimeMs) return;
    } catch {
      // fall through: gone
    }
    throw new AppError('snapshot_gone', `${stat.name}/${file.path} changed or was removed during the upload`);
  }
}
