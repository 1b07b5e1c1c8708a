import { constants, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { AppError } from '../errors.js';
import { RangeReadStream } from './range-read-stream.js';

/**
 * The one way memsync opens a file of the backup directory for reading. Between the scan and
 * the read the entry can be swapped for something else, and the path alone would follow it:
 * - a FIFO would block open() until a writer comes, holding a libuv thread and the upload
 *   forever: O_NONBLOCK makes that open return at once (on a regular file it changes nothing);
 * - a symbolic link would be followed anywhere on the machine: O_NOFOLLOW refuses it;
 * - a device, socket or directory has no business in a snapshot: the open handle is fstat'ed
 *   and anything but a regular file is refused;
 * - another file renamed over the scanned one, or a link in a parent directory (which
 *   O_NOFOLLOW does not cover), is a different inode: refused when the scan's identity is given.
 * Every operation on the file has a deadline (see withDeadline).
 */

export const DEFAULT_FILE_DEADLINE_MS = 60_000;

export interface LocalFileOptions {
  /** Longest wait for one open, stat, read or close. Default DEFAULT_FILE_DEADLINE_MS. */
  deadlineMs: number;
  /**
   * Refuse a file with more than one hard link: its other name may be outside the backup
   * directory, and its bytes are then not the memory service's to upload. Default false (a
   * backup tool may link unchanged files between snapshots).
   */
  refuseHardlinks: boolean;
  /** Told when an operation misses its deadline, before the error is thrown: for a log line. */
  onStuck?: (absolutePath: string, operation: string) => void;
}

/** What the file must still be when it is opened: as the scan saw it. dev and ino are absent for stats not taken by a scan. */
export interface ExpectedFile {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  dev?: number;
  ino?: number;
}

export interface OpenOptions extends Partial<LocalFileOptions> {
  expected?: ExpectedFile;
}

const READ_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW;

/** Opens `absolutePath` for reading and checks what was opened; throws an AppError naming the file. */
export async function openLocalFile(absolutePath: string, options: OpenOptions = {}): Promise<LocalFile> {
  const deadline: FileDeadline = { absolutePath, deadlineMs: options.deadlineMs ?? DEFAULT_FILE_DEADLINE_MS, onStuck: options.onStuck };
  let handle: FileHandle;
  try {
    handle = await withDeadline(open(absolutePath, READ_FLAGS), 'open', deadline, (late) => void late.close().catch(() => undefined));
  } catch (error) {
    throw openError(absolutePath, error);
  }
  const file = new LocalFile(absolutePath, handle, deadline);
  try {
    const refusal = refusalOf(absolutePath, await file.stat(), options);
    if (refusal !== undefined) throw refusal;
  } catch (error) {
    await file.close();
    throw error;
  }
  return file;
}

/** An open file of the backup directory: reads with a deadline, and a close that never waits on a stuck read. */
export class LocalFile {
  private stuck = false;

  constructor(
    readonly absolutePath: string,
    private readonly handle: FileHandle,
    private readonly deadline: FileDeadline,
  ) {}

  async stat(): Promise<Stats> {
    return this.guarded(this.handle.stat(), 'fstat');
  }

  /** Bytes read into `target` at `offset` from `position` of the file; 0 at its end. */
  async read(target: Buffer, offset: number, length: number, position: number): Promise<number> {
    return (await this.guarded(this.handle.read(target, offset, length, position), 'read')).bytesRead;
  }

  /** The first `lengthBytes` of the file (fewer if it ends sooner) as a stream; the file stays open when it ends. */
  stream(lengthBytes: number): Readable {
    return new RangeReadStream(this, 0, lengthBytes);
  }

  /**
   * Never throws: nothing was written, so a failed close loses nothing. FileHandle.close() waits
   * for pending operations, so after one that missed its deadline the close is left to happen
   * on its own, whenever that operation returns.
   */
  async close(): Promise<void> {
    const closing = this.handle.close().catch(() => undefined);
    if (this.stuck) return;
    await withDeadline(closing, 'close', this.deadline).catch(() => undefined);
  }

  private async guarded<T>(operation: Promise<T>, what: string): Promise<T> {
    try {
      return await withDeadline(operation, what, this.deadline);
    } catch (error) {
      if (isStuckFileOperation(error)) this.stuck = true;
      throw error instanceof AppError ? error : fileError(this.absolutePath, what, error);
    }
  }
}

/** Whether `error` is an operation on a local file that missed its deadline. */
export function isStuckFileOperation(error: unknown): error is AppError {
  return error instanceof AppError && error.kind === 'local_io' && typeof error.details?.deadlineMs === 'number';
}

/**
 * Operations that missed their deadline and have not returned yet: each holds a thread of the
 * process-wide libuv pool, so the count is the process's, not one uploader's. Once it reaches
 * the pool size, every asynchronous file operation of the process waits.
 */
let pastDeadline = 0;

export function fileOperationsPastDeadline(): number {
  return pastDeadline;
}

/** Where an operation runs and how long it may take. */
export interface FileDeadline {
  absolutePath: string;
  deadlineMs: number;
  onStuck: ((absolutePath: string, operation: string) => void) | undefined;
}

/**
 * `operation`, or after the deadline an error naming the file. A libuv thread blocked in open()
 * or read() (a hung network mount, a FIFO opened without O_NONBLOCK) cannot be interrupted from
 * JavaScript: the operation goes on, holding its thread until the kernel returns. What the
 * deadline buys is that the snapshot waiting on it fails with a clear error and everything
 * else goes on; each such thread is one fewer of the pool's (UV_THREADPOOL_SIZE, 4 by default)
 * until it returns. `lateResult` disposes of a result that arrives after the deadline.
 */
export function withDeadline<T>(operation: Promise<T>, what: string, deadline: FileDeadline, lateResult?: (value: T) => void): Promise<T> {
  const { absolutePath, deadlineMs, onStuck } = deadline;
  return new Promise<T>((resolve, reject) => {
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      pastDeadline += 1;
      onStuck?.(absolutePath, what);
      reject(
        new AppError('local_io', `${what} of ${absolutePath} did not finish within ${deadlineMs} ms`, {
          hint: 'the disk or mount holding the backup directory is not answering',
          details: { file: absolutePath, operation: what, deadlineMs },
        }),
      );
    }, deadlineMs);
    operation.then(
      (value) => {
        clearTimeout(timer);
        if (!expired) return resolve(value);
        pastDeadline -= 1;
        lateResult?.(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (!expired) return reject(error);
        pastDeadline -= 1;
      },
    );
  });
}

function refusalOf(absolutePath: string, stats: Stats, options: OpenOptions): AppError | undefined {
  if (!stats.isFile()) {
    return new AppError('local_io', `${absolutePath} is not a regular file (${kindOf(stats)}); refused`, { hint: 'something replaced a file of the snapshot after it was scanned' });
  }
  if (options.refuseHardlinks === true && stats.nlink > 1) {
    return new AppError('local_io', `${absolutePath} has ${stats.nlink} hard links; refused`, {
      hint: 'another name of this file may be outside the backup directory; set CLOUD_SYNC_REFUSE_HARDLINKS=false to upload hard-linked files',
    });
  }
  const expected = options.expected;
  if (expected !== undefined && !sameFile(expected, stats)) {
    return new AppError('snapshot_gone', `${absolutePath} was replaced or changed after it was scanned`);
  }
  return undefined;
}

function sameFile(expected: ExpectedFile, stats: Stats): boolean {
  const sameInode = (expected.dev === undefined || expected.dev === stats.dev) && (expected.ino === undefined || expected.ino === stats.ino);
  return sameInode && expected.size === stats.size && expected.mtimeMs === stats.mtimeMs && expected.ctimeMs === stats.ctimeMs;
}

function kindOf(stats: Stats): string {
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  return 'not a file';
}

function openError(absolutePath: string, error: unknown): AppError {
  if (error instanceof AppError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  // ELOOP on Linux, EMLINK on the BSDs: the last component is a link and O_NOFOLLOW refused it.
  if (code === 'ELOOP' || code === 'EMLINK') {
    return new AppError('local_io', `${absolutePath} is a symbolic link; refused, links are never followed`, { cause: error, hint: 'something replaced a file of the snapshot after it was scanned' });
  }
  if (code === 'ENOENT' || code === 'ENOTDIR') return new AppError('snapshot_gone', `${absolutePath} disappeared before it was read`, { cause: error });
  return new AppError('local_io', `cannot open ${absolutePath}: ${code ?? String(error)}`, { cause: error, hint: 'check the file permissions of the backup directory' });
}

function fileError(absolutePath: string, operation: string, error: unknown): AppError {
  const code = (error as NodeJS.ErrnoException).code;
  return new AppError('local_io', `cannot ${operation} ${absolutePath}: ${code ?? String(error)}`, { cause: error });
}
