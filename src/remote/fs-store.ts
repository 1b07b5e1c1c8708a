import { addAbortSignal, type Readable } from 'node:stream';
import { link, lstat, mkdir, open, unlink } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../errors.js';
import { writeBody } from './fs-body.js';
import { composeObject } from './fs-compose.js';
import { copyObject, lowerCaseKeys } from './fs-copy.js';
import { errnoOf, isAborted, isMissing, translateFsError } from './fs-errors.js';
import { checkKey, isTemporaryName, pathOf, splitKey, temporaryName } from './fs-layout.js';
import { listObjectPages, listTemporaryFiles } from './fs-listing.js';
import { describeObject } from './fs-sidecar.js';
import { placeObject, removeEmptyDirectories, removeObject, TempObject, type StoreRoot } from './fs-write.js';
import type { BodySource, ComposeOptions, CopyOptions, MultipartUpload, PutOptions, RemoteHead, RemoteObject, RemoteStore } from './store.js';

/**
 * A RemoteStore on a directory, typically a mounted share (NFS, SMB, a second disk): the snapshots
 * are plain files under `directory/prefix`, laid out as keys are in a bucket, so the folder is a
 * copy any tool can read. S3's guarantees are kept in file-system terms: an object appears whole
 * or not at all (temporary file, fsync, link or rename, fsync of the directory), a conditional
 * write never replaces (link(2) fails on a taken name), ETags are what S3 would report (kept in
 * a sidecar dot-file per object), and an unfinished upload is a temporary file that sweeps remove.
 */

export interface FsStoreOptions {
  /** The directory (CLOUD_SYNC_BUCKET); absolute, and it must exist: memsync never creates it. */
  directory: string;
  /** '' or ending in '/'. */
  prefix: string;
}

export class FsRemoteStore implements RemoteStore {
  readonly location: string;
  private readonly where: StoreRoot;
  private conditionalWrites = true;

  constructor(options: FsStoreOptions) {
    if (!path.isAbsolute(options.directory)) throw new AppError('config', `the directory store needs an absolute path, not ${JSON.stringify(options.directory)}`);
    const base = path.resolve(options.directory);
    this.where = { base, root: options.prefix === '' ? base : path.join(base, ...options.prefix.split('/').filter((segment) => segment !== '')) };
    this.location = `directory ${this.where.root}${path.sep}`;
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
    const base = await lstat(this.where.base).catch((error: unknown) => {
      if (isMissing(error)) return undefined;
      throw translateFsError(error, what);
    });
    if (base === undefined) throw new AppError('remote_rejected', `the directory ${this.where.base} does not exist`, { hint: 'create or mount it, or fix CLOUD_SYNC_BUCKET' });
    if (!base.isDirectory()) throw new AppError('remote_rejected', `${this.where.base} is not a directory`, { hint: 'point CLOUD_SYNC_BUCKET at a directory' });
    const probe = path.join(this.where.root, temporaryName('access-probe'));
    const linked = path.join(this.where.root, temporaryName('access-probe'));
    try {
      await mkdir(this.where.root, { recursive: true });
      await (await open(probe, 'wx')).close();
      await link(probe, linked);
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
      await unlink(linked).catch(() => undefined);
      await unlink(probe).catch(() => undefined);
    }
  }

  listObjects(keyPrefix: string): AsyncIterable<RemoteObject[]> {
    return listObjectPages(this.where, keyPrefix);
  }

  async head(key: string): Promise<RemoteHead | undefined> {
    checkKey(key);
    try {
      const info = await describeObject(this.pathOf(key));
      return info === undefined ? undefined : { size: info.size, etag: `"${info.etag}"`, metadata: { ...info.metadata } };
    } catch (error) {
      throw translateFsError(error, `head ${key}`);
    }
  }

  async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
    const what = `upload ${key}`;
    checkKey(key);
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
    let handle;
    try {
      handle = await open(this.pathOf(key), 'r');
    } catch (error) {
      if (isMissing(error) || errnoOf(error) === 'EISDIR') throw new AppError('not_found', `${what}: no such object (NoSuchKey)`, { cause: error, details: { code: 'NoSuchKey' } });
      throw translateFsError(error, what);
    }
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw new AppError('not_found', `${what}: no such object (NoSuchKey)`, { details: { code: 'NoSuchKey' } });
      if (range !== undefined && range.start >= stat.size) {
        throw new AppError('object_refused', `${what}: bytes ${range.start}-${range.endInclusive} are past the end of its ${stat.size} bytes (InvalidRange)`, { retryable: false, details: { code: 'InvalidRange' } });
      }
    } catch (error) {
      await handle.close();
      throw translateFsError(error, what);
    }
    // The stream reads the file it opened: an object replaced meanwhile is read whole as it was.
    const stream = handle.createReadStream(range === undefined ? {} : { start: range.start, end: range.endInclusive });
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
    const dirPath = this.pathOf(dirKey);
    try {
      await unlink(path.join(dirPath, upload.uploadId));
    } catch (error) {
      if (isMissing(error)) return;
      throw translateFsError(error, what);
    }
    await removeEmptyDirectories(this.where, dirPath);
  }

  close(): void {}

  private pathOf(key: string): string {
    return pathOf(this.where.root, key);
  }
}
