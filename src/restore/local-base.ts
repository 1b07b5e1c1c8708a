import { lstat, readdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import { ChunkGuide } from '../delta/chunk-guide.js';
import { Chunker, type Chunk } from '../delta/chunker.js';
import { DEFAULT_CHUNKER_PARAMS } from '../delta/chunker-params.js';
import { planLocalReuse, type LocalReusePlan } from '../delta/restore-plan.js';
import type { Signature } from '../delta/signature.js';
import { AppError, isAppError } from '../errors.js';
import { compareNewestFirst, isIgnoredEntryName, isSnapshotName, timeFromName } from '../snapshot/naming.js';
import { openLocalFile, type ExpectedFile, type LocalFile } from '../snapshot/safe-open.js';

/**
 * An earlier version of a file being restored that is still in the backup directory: the memory
 * service keeps its last backups, and each holds the whole store, so most of a file restored
 * from the bucket is already on the disk. It is only read, never changed, and nothing read from
 * it is trusted: the restored file must still match the manifest's SHA-256.
 */

export interface LocalBase {
  /** The earlier version's absolute path. */
  path: string;
  sizeBytes: number;
  /** The file as it was found: another one put there since is refused when opened. */
  found?: ExpectedFile;
  /** The restored version's chunks, from the signature stored with its snapshot. */
  signature: Signature;
}

/** What a local base gave a restored file. */
export interface LocalReuse {
  base: string;
  bytesLocal: number;
  bytesFetched: number;
}

/** Snapshot folders looked into for an earlier version, newest first. */
const FOLDERS_LOOKED_INTO = 5;
const READ_BYTES = 1024 * 1024;

/**
 * The file at `filePath` in the newest other local snapshot holding it as a regular file of at
 * least `minBytes`, reached without a symbolic link on the way: like the scan, a restore reads
 * nothing that a link inside the backup directory points at.
 */
export async function findLocalVersion(backupDir: string, snapshot: string, filePath: string, minBytes: number): Promise<{ path: string; sizeBytes: number; found: ExpectedFile } | undefined> {
  const names = await readdir(backupDir).catch(() => [] as string[]);
  const realBackupDir = await realpath(backupDir).catch(() => undefined);
  if (realBackupDir === undefined) return undefined;
  const folders = names
    .filter((name) => name !== snapshot && isSnapshotName(name) && !isIgnoredEntryName(name))
    .map((name) => ({ name, timeMs: timeFromName(name) ?? 0 }))
    .sort(compareNewestFirst)
    .slice(0, FOLDERS_LOOKED_INTO);
  const segments = filePath.split('/');
  for (const folder of folders) {
    const candidate = path.join(backupDir, folder.name, ...segments);
    const stat = await lstat(candidate).catch(() => undefined);
    if (stat?.isFile() !== true || stat.size < minBytes) continue;
    if ((await realpath(candidate).catch(() => undefined)) !== path.join(realBackupDir, folder.name, ...segments)) continue;
    return { path: candidate, sizeBytes: stat.size, found: { size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs, dev: stat.dev, ino: stat.ino } };
  }
  return undefined;
}

/**
 * A local base that could not be read as it was found (gone, replaced, stuck, shorter): always
 * local_io, which the restorer answers by fetching the whole file. A cancellation stays one.
 */
export function localBaseError(base: LocalBase, error: unknown): AppError {
  if (isAppError(error, 'cancelled')) return error;
  const reason = isAppError(error) ? error.message : ((error as NodeJS.ErrnoException).code ?? String(error));
  return new AppError('local_io', `cannot read the earlier version ${base.path}: ${reason}`, { cause: error, retryable: false });
}

/** Reads `length` bytes at `position` into `target`, or fails: a base that ends early changed since it was found. */
async function readExactly(file: LocalFile, target: Buffer, position: number): Promise<void> {
  for (let filled = 0; filled < target.length; ) {
    const bytesRead = await file.read(target, filled, target.length - filled, position + filled);
    if (bytesRead === 0) throw new AppError('local_io', `it ended at byte ${position + filled}`, { retryable: false });
    filled += bytesRead;
  }
}

/** The base's chunks, cut guided by the restored version's (fast where the two agree). */
async function chunkLocalBase(file: LocalFile, base: LocalBase, signal: AbortSignal | undefined): Promise<Chunk[]> {
  const chunker = new Chunker(DEFAULT_CHUNKER_PARAMS, ChunkGuide.from(base.signature, DEFAULT_CHUNKER_PARAMS));
  const chunks: Chunk[] = [];
  const buffer = Buffer.allocUnsafe(READ_BYTES);
  for (let position = 0; position < base.sizeBytes; position += READ_BYTES) {
    if (signal?.aborted === true) throw new AppError('cancelled', `restore: reading ${base.path} cancelled`);
    const view = buffer.subarray(0, Math.min(READ_BYTES, base.sizeBytes - position));
    await readExactly(file, view, position).catch((error: unknown) => {
      throw localBaseError(base, error);
    });
    chunks.push(...chunker.push(view));
  }
  chunks.push(...chunker.finish());
  return chunks;
}

/** Copies runs of the base into the file being restored through `writeAt`, each at its offset. */
export async function copyLocalRuns(
  source: LocalFile,
  base: LocalBase,
  runs: readonly { targetStart: number; sourceStart: number; length: number }[],
  writeAt: (bytes: Buffer, position: number) => Promise<void>,
  signal: AbortSignal | undefined,
): Promise<void> {
  const buffer = Buffer.allocUnsafe(READ_BYTES);
  for (const run of runs) {
    for (let offset = 0; offset < run.length; offset += READ_BYTES) {
      if (signal?.aborted === true) throw new AppError('cancelled', `restore: copying from ${base.path} cancelled`);
      const view = buffer.subarray(0, Math.min(READ_BYTES, run.length - offset));
      await readExactly(source, view, run.sourceStart + offset).catch((error: unknown) => {
        throw localBaseError(base, error);
      });
      await writeAt(view, run.targetStart + offset);
    }
  }
}

/** Below this share of the file found locally, the whole file is fetched: the local pass would not pay for itself. */
const MIN_LOCAL_SHARE = 0.1;

/**
 * How much of the file the local base holds, and the base opened to copy it from; undefined when
 * too little to pay for the local pass (the whole file is fetched).
 */
export async function planLocalBase(
  base: LocalBase,
  sizeBytes: number,
  options: { signal: AbortSignal | undefined; onLocalReuse?: ((reuse: LocalReuse) => void) | undefined },
): Promise<{ base: LocalBase; plan: LocalReusePlan; source: LocalFile } | undefined> {
  const source = await openLocalBase(base);
  try {
    const plan = planLocalReuse(base.signature.chunks, sizeBytes, await chunkLocalBase(source, base, options.signal));
    if (plan.bytesLocal >= MIN_LOCAL_SHARE * sizeBytes && plan.bytesLocal > 0) {
      options.onLocalReuse?.({ base: base.path, bytesLocal: plan.bytesLocal, bytesFetched: plan.bytesFetched });
      return { base, plan, source };
    }
  } catch (error) {
    await source.close();
    throw error;
  }
  await source.close();
  return undefined;
}

/** Opened as backup files are (see safe-open.ts): a FIFO, a link or another file put there since it was found is refused, and no read waits forever. */
async function openLocalBase(base: LocalBase): Promise<LocalFile> {
  return openLocalFile(base.path, base.found === undefined ? {} : { expected: base.found }).catch((error: unknown) => {
    throw localBaseError(base, error);
  });
}
