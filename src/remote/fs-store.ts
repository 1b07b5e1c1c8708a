import { addAbortSignal, type Readable } from 'node:stream';
import path from 'node:path';
import { AppError } from '../errors.js';
import { writeBody } from './fs-body.js';
import { composeObject } from './fs-compose.js';
import { copyObject, lowerCaseKeys } from './fs-copy.js';
import { DEFAULT_FS_OPERATION_DEADLINE_MS, OperationDeadline } from './fs-deadline.js';
import { errnoOf, isAborted, isLinkRefused, isMissing, translateFsError } from './fs-errors.js';
import { checkKey, isTemporaryName, splitKey, temporaryName } from './fs-layout.js';
import { listObjectPages, listTemporaryFiles } from './fs-listing.js';
import { GuardedFs, NODE_FS_OPERATIONS, type FsOperations, type GuardedFile } from './fs-operations.js';
import { keyDirectory, requireBase, symlinkRefusal, type StoreRoot } from './fs-paths.js';
import { describeObject } from './fs-sidecar.js';
import { placeObject, removeEmptyDirectories, removeObject, TempObject } from './fs-write.js';
import type { BodySource, ComposeOptions, CopyOptions, MultipartUpload, PutOptions, RemoteHead, RemoteObject, RemoteStore } from './store.js';
import { RangeReadStream } from '../snapshot/range-read-stream.js';

/**
 * A RemoteStore on a directory, typically a mounted share (NFS, SMB, a second disk): the snapshots
 * are plain files under `directory/prefix`, laid out as keys are in a bucket, so the folder is a
 * copy any tool can read. S3's guarantees are kept in file-system terms: an object appears whole
 * or not at all (temporary file, fsync, link or rename, fsync of the directory), a conditional
 * write never replaces (link(2) fails on a taken name), ETags are what S3 would report (kept in
 * a sidecar dot-file per object), and an unfinished upload is a temporary file that sweeps remove.
 * No symbolic link below the directory is ever followed (fs-paths.ts), and every file operation
 * has a deadline (fs-deadline.ts), as a mount can hang where a server would time out.
 */

export interface FsStoreOptions {
  /** The directory (CLOUD_SYNC_BUCKET); absolute, and it must exist: memsync never creates it. */
  directory: string;
  /** '' or ending in '/'. */
  prefix: string;
  /** Longest wait for one file operation before the store counts as unavailable. Default DEFAULT_FS_OPERATION_DEADLINE_MS (30 s). */
  operationDeadlineMs?: number;
  /** The file operations used, each replaceable; default Node's own (NODE_FS_OPERATIONS). */
  fileSystem?: Partial<FsOperations>;
}

export class FsRemoteStore implements RemoteStore {
  readonly location: string;
  private readonly where: StoreRoot;
  private conditionalWrites = true;

  constructor(options: FsStoreOptions) {
    if (!path.isAbsolute(options.directory)) throw new AppError('config', `the directory store needs an absolute path, not ${JSON.stringify(options.directory)}`);
    const base = path.resolve(options.directory);
    const rootSegments = options.prefix.split('/').filter((segment) => segment !== '');
    const deadline = new OperationDeadline(options.operationDeadlineMs ?? DEFAULT_FS_OPERATION_DEADLINE_MS);
    const io = new GuardedFs({ ...NODE_FS_OPERATIONS, ...options.fileSystem }, deadline);
    this.where = { base, root: path.join(base, ...rootSegments), rootSegments, io };
    this.location = `directory ${this.where.root}${path.sep}`;
  }

  /** Resolves once no file operation is stuck past its deadline (the mount answers again). */
  whenUnstuck(): Promise<void> {
    return this.where.io.deadline.whenUnstuck();
  }

  useConditionalWrites(enabled: boolean): void {
    this.conditionalWrites = enabled;
  }

  /**
   * The directory exists, can be written, and links work there: without link(2) a write could
   * not be refused when its name is taken, and memsync would risk replacing another's object.
   */
  async checkAccess(): Promise<void> {
    const what = `open ${this.where.base}`;
    const { io } = this.where;
    // At start a missing directory is the operator's to fix, not an outage to wait out.
    await requireBase(this.where, what, 'remote_rejected');
    const root = await keyDirectory(this.where, '', what, 'create');
    const probe = path.join(root, temporaryName('access-probe'));
    const linked = path.join(root, temporaryName('access-probe'));
    try {
      await (await io.create(probe)).close();
      await io.link(probe, linked);
    } catch (error) {
      const code = errnoOf(error);
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EXDEV') {
        throw new AppError('remote_rejected', `${what}: the file system does not support hard links (${code})`, {
          cause: error,
          hint: 'the fs provider creates objects with link(2) so that a taken name is never replaced; use a file system that has hard links (ext4, XFS, btrfs, ZFS, NFS)',
        });
      }
      throw translateFsError(error, what, 'remote_unavailable');
    } finally {
      await io.unlink(linked).catch(() => undefined);
      await io.unlink(probe).catch(() => undefined);
    }
  }

  listObjects(keyPrefix: string): AsyncIterable<RemoteObject[]> {
    return listObjectPages(this.where, keyPrefix);
  }

  async head(key: string): Promise<RemoteHead | undefined> {
    checkKey(key);
    const what = `head ${key}`;
    const { dirKey, base } = splitKey(key);
    const dirPath = await keyDirectory(this.where, dirKey, what, 'existing');
    if (dirPath === undefined) return undefined;
    try {
      const info = await describeObject(this.where.io, dirPath, base);
      return info === undefined ? undefined : { size: info.size, etag: `"${info.etag}"`, metadata: { ...info.metadata } };
    } catch (error) {
      throw translateFsError(error, what);
    }
  }

  async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
    const what = `upload ${key}`;
    checkKey(key);
    if (options.ifMatchEtag !== undefined) {
      // A file system has no compare-and-swap of a file's content with a rename: checking the
      // ETag and then renaming would let two writers both win. Refused, never written unconditionally.
      throw new AppError('remote_rejected', `${what}: the directory store cannot replace an object only while it has an ETag (If-Match) (NotImplemented)`, {
        retryable: false,
        details: { code: 'NotImplemented' },
      });
    }
    if (isAborted(options.signal)) throw new AppError('cancelled', `${what}: aborted`);
    const temp = await TempObject.create(this.where, key, what);
    let etag: string;
    try {
      etag = await writeBody(temp, body(), options, what);
      let identity;
      try {
        identity = await temp.finish();
      } catch (error) {
        throw translateFsError(error, what, 'remote_unavailable');
      }
      // Cancelled before it is in place: nothing is stored, as with an aborted multipart upload.
      if (isAborted(options.signal)) throw new AppError('cancelled', `${what}: aborted`);
      const mode = options.ifNoneMatch && this.conditionalWrites ? 'create' : 'replace';
      await placeObject(temp, identity, { etag, metadata: lowerCaseKeys(options.metadata) }, mode, what);
    } catch (error) {
      await temp.discard();
      throw error;
    }
    options.onStored?.(`"${etag}"`);
  }

  copy(sourceKey: string, targetKey: string, options: CopyOptions): Promise<void> {
    return copyObject(this.where, sourceKey, targetKey, options);
  }

  compose(targetKey: string, options: ComposeOptions): Promise<void> {
    return composeObject(this.where, targetKey, options);
  }

  get(key: string, signal?: AbortSignal): Promise<Readable> {
    return this.read(key, undefined, signal);
  }

  getRange(key: string, start: number, endInclusive: number, signal?: AbortSignal): Promise<Readable> {
    return this.read(key, { start, endInclusive }, signal);
  }

  private async read(key: string, range: { start: number; endInclusive: number } | undefined, signal: AbortSignal | undefined): Promise<Readable> {
    const what = `download ${key}`;
    checkKey(key);
    if (isAborted(signal)) throw new AppError('cancelled', `${what}: aborted`);
    const { dirKey, base } = splitKey(key);
    const dirPath = await keyDirectory(this.where, dirKey, what, 'existing');
    if (dirPath === undefined) throw noSuchObject(what, undefined);
    const objectPath = path.join(dirPath, base);
    let file: GuardedFile;
    try {
      file = await this.where.io.openForReading(objectPath);
    } catch (error) {
      if (isLinkRefused(error)) throw symlinkRefusal(what, objectPath, this.where);
      if (isMissing(error) || errnoOf(error) === 'EISDIR') throw noSuchObject(what, error);
      throw translateFsError(error, what);
    }
    let size: number;
    try {
      const stat = await file.stat();
      // A directory, a FIFO or a device where an object should be: no object has that key.
      if (!stat.isFile()) throw noSuchObject(what, undefined);
      size = Number(stat.size);
      if (range !== undefined && range.start >= size) {
        throw new AppError('object_refused', `${what}: bytes ${range.start}-${range.endInclusive} are past the end of its ${size} bytes (InvalidRange)`, { retryable: false, details: { code: 'InvalidRange' } });
      }
    } catch (error) {
      await file.close();
      throw translateFsError(error, what);
    }
    // The stream reads the file it opened: an object replaced meanwhile is read whole as it was.
    // Each read under the store's deadline; the file opened for this stream is closed with it.
    const end = range === undefined ? size : Math.min(size, range.endInclusive + 1);
    const stream = new RangeReadStream(file, range?.start ?? 0, end, () => file.close());
    return signal === undefined ? stream : addAbortSignal(signal, stream);
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    await removeObject(this.where, key, `delete ${key}`);
  }

  listMultipartUploads(keyPrefix: string): Promise<MultipartUpload[]> {
    return listTemporaryFiles(this.where, keyPrefix);
  }

  async abortMultipartUpload(upload: MultipartUpload): Promise<void> {
    const what = `abort unfinished write ${upload.uploadId} of ${upload.key}`;
    // Only a temporary name this store makes is ever removed here, never an object.
    if (!isTemporaryName(upload.uploadId)) throw new AppError('bad_input', `${what}: not an upload id of the directory store`, { retryable: false });
    const { dirKey } = splitKey(upload.key);
    if (dirKey !== '') checkKey(dirKey);
    const dirPath = await keyDirectory(this.where, dirKey, what, 'existing');
    if (dirPath === undefined) return;
    try {
      await this.where.io.unlink(path.join(dirPath, upload.uploadId));
    } catch (error) {
      if (isMissing(error)) return;
      throw translateFsError(error, what);
    }
    await removeEmptyDirectories(this.where, dirPath);
  }

  close(): void {}
}

function noSuchObject(what: string, cause: unknown): AppError {
  return new AppError('not_found', `${what}: no such object (NoSuchKey)`, { cause, details: { code: 'NoSuchKey' } });
}
