import { constants, type BigIntStats, type Dirent } from 'node:fs';
import * as fsPromises from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { OperationDeadline } from './fs-deadline.js';

/**
 * The file operations the directory store makes, and the only way it makes them: each under a
 * deadline (fs-deadline.ts), and opened files never through a link. The operations are
 * injectable so that faults a real mount cannot produce on demand (a call that never returns,
 * an unlink refused) can be tested.
 */

export interface FsOperations {
  open(path: string, flags: number, mode?: number): Promise<FileHandle>;
  /** Never follows a final link. */
  lstat(path: string): Promise<BigIntStats>;
  /** Follows links: only for the configured directory itself. */
  stat(path: string): Promise<BigIntStats>;
  /** One level: the parent must exist. */
  mkdir(path: string): Promise<void>;
  link(existingPath: string, newPath: string): Promise<void>;
  rename(oldPath: string, newPath: string): Promise<void>;
  unlink(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  readdir(path: string): Promise<Dirent[]>;
}

export const NODE_FS_OPERATIONS: FsOperations = {
  open: (path, flags, mode) => fsPromises.open(path, flags, mode),
  lstat: (path) => fsPromises.lstat(path, { bigint: true }),
  stat: (path) => fsPromises.stat(path, { bigint: true }),
  mkdir: async (path) => void (await fsPromises.mkdir(path)),
  link: (existingPath, newPath) => fsPromises.link(existingPath, newPath),
  rename: (oldPath, newPath) => fsPromises.rename(oldPath, newPath),
  unlink: (path) => fsPromises.unlink(path),
  rmdir: (path) => fsPromises.rmdir(path),
  readdir: (path) => fsPromises.readdir(path, { withFileTypes: true }),
};

/**
 * O_NOFOLLOW: a link in the final place is refused (ELOOP), never followed. O_NONBLOCK: a FIFO
 * planted where an object should be would otherwise block open() until a writer comes; on a
 * regular file it changes nothing.
 */
export const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** A new file only: O_EXCL fails on any existing name, a link included. */
export const CREATE_FLAGS = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const DIRECTORY_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const NEW_FILE_MODE = 0o666;

/** The store's file operations, each under the deadline. */
export class GuardedFs {
  constructor(
    private readonly operations: FsOperations,
    readonly deadline: OperationDeadline,
  ) {}

  lstat(path: string): Promise<BigIntStats> {
    return this.deadline.run('lstat', path, () => this.operations.lstat(path));
  }

  stat(path: string): Promise<BigIntStats> {
    return this.deadline.run('stat', path, () => this.operations.stat(path));
  }

  mkdir(path: string): Promise<void> {
    return this.deadline.run('mkdir', path, () => this.operations.mkdir(path));
  }

  link(existingPath: string, newPath: string): Promise<void> {
    return this.deadline.run('link', newPath, () => this.operations.link(existingPath, newPath));
  }

  rename(oldPath: string, newPath: string): Promise<void> {
    return this.deadline.run('rename', newPath, () => this.operations.rename(oldPath, newPath));
  }

  unlink(path: string): Promise<void> {
    return this.deadline.run('unlink', path, () => this.operations.unlink(path));
  }

  rmdir(path: string): Promise<void> {
    return this.deadline.run('rmdir', path, () => this.operations.rmdir(path));
  }

  readdir(path: string): Promise<Dirent[]> {
    return this.deadline.run('readdir', path, () => this.operations.readdir(path));
  }

  /** An existing file, for reading; a link is refused (ELOOP). */
  openForReading(path: string): Promise<GuardedFile> {
    return this.open(path, READ_FLAGS);
  }

  /** A new file, read-write; fails with EEXIST when the name is taken (by a link too). */
  create(path: string): Promise<GuardedFile> {
    return this.open(path, CREATE_FLAGS, NEW_FILE_MODE);
  }

  /** A directory, to fsync it; a link is refused. */
  openDirectory(path: string): Promise<GuardedFile> {
    return this.open(path, DIRECTORY_FLAGS);
  }

  private async open(path: string, flags: number, mode?: number): Promise<GuardedFile> {
    const handle = await this.deadline.run('open', path, () => this.operations.open(path, flags, mode), (late) => void late.close().catch(() => undefined));
    return new GuardedFile(path, handle, this.deadline);
  }
}

/** An open file of the store: every call under the deadline, and a close that never waits on a stuck call. */
export class GuardedFile {
  private closed = false;

  constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private readonly deadline: OperationDeadline,
  ) {}

  /** Bytes read into `target` from `offset` on, at `position` of the file; 0 at its end. */
  async read(target: Buffer, offset: number, length: number, position: number): Promise<number> {
    return (await this.guarded('read', () => this.handle.read(target, offset, length, position))).bytesRead;
  }

  /** Writes all of `bytes` at `position`. */
  async writeAll(bytes: Buffer, position: number): Promise<void> {
    for (let written = 0; written < bytes.length; ) {
      const from = written;
      const { bytesWritten } = await this.guarded('write', () => this.handle.write(bytes, from, bytes.length - from, position + from));
      written += bytesWritten;
    }
  }

  sync(): Promise<void> {
    return this.guarded('fsync', () => this.handle.sync());
  }

  stat(): Promise<BigIntStats> {
    return this.guarded('fstat', () => this.handle.stat({ bigint: true }));
  }

  /**
   * FileHandle.close() waits for the handle's pending calls: after one missed its deadline the
   * close is left to happen whenever that call returns (the wait is refused at once while a call
   * is stuck). A failed close loses nothing the caller has not already synced: not thrown.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closing = this.handle.close().catch(() => undefined);
    await this.deadline.run('close', this.path, () => closing).catch(() => undefined);
  }

  private guarded<T>(operation: string, start: () => Promise<T>): Promise<T> {
    return this.deadline.run(operation, this.path, start);
  }
}
