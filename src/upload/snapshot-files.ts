import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { Chunker, type Chunk } from '../delta/chunker.js';
import { digestFile, type FileDigest } from '../snapshot/digest.js';
import { openLocalFile, DEFAULT_FILE_DEADLINE_MS, type LocalFile, type OpenOptions } from '../snapshot/safe-open.js';
import { sameFingerprint, statSnapshot, type FileStat, type SnapshotStat } from '../snapshot/scan.js';
import { lookupDigest, storeDigest, type HashCacheDocument } from '../state/hash-cache.js';
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
  delta: DeltaTransfer | undefined;
}

export class SnapshotFiles {
  constructor(private readonly options: SnapshotFilesOptions) {}

  async digest(stat: SnapshotStat, file: FileStat): Promise<FileDigest> {
    const { hashCache, multipartThresholdBytes, delta } = this.options;
    const cached = lookupDigest(hashCache.current, stat.name, file, multipartThresholdBytes);
    if (cached !== undefined) return cached;
    // A file a later version may be composed from is chunked in the same read (see delta-transfer.ts).
    const chunker = delta?.considers(file.size) === true ? new Chunker() : undefined;
    const chunks: Chunk[] = [];
    const observe = chunker === undefined ? undefined : (bytes: Buffer): void => void chunks.push(...chunker.push(bytes));
    const digest = await digestFile(this.absolutePath(stat, file), file.size, multipartThresholdBytes, { opening: this.opening(stat, file), observe });
    if (chunker !== undefined) await delta?.keep([...chunks, ...chunker.finish()], digest);
    this.remember(stat, file, digest);
    return digest;
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
