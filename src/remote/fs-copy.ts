import { createHash } from 'node:crypto';
import path from 'node:path';
import { AppError } from '../errors.js';
import { normalizeEtag, PartHasher } from '../snapshot/digest.js';
import { isAborted, isLinkRefused, isMissing, translateFsError } from './fs-errors.js';
import type { GuardedFile } from './fs-operations.js';
import { checkKey, splitKey } from './fs-layout.js';
import { keyDirectory } from './fs-paths.js';
import { describeObject, identityOf, sameIdentity, type FsObjectInfo, type ObjectIdentity } from './fs-sidecar.js';
import { placeObject, TempObject, type StoreRoot } from './fs-write.js';
import type { CopyOptions } from './store.js';

/**
 * The directory store's server-side copy: the bytes are read from the source file the store
 * checked (opened without following links, its identity compared with the one looked at) and
 * written to a new object, in pieces through one buffer. Node copies by kernel (copy_file_range,
 * reflinks) only between paths, and a path can name another file by the time it is opened: the
 * copy goes through memsync's memory, a megabyte at a time, so that it is the file checked that
 * is copied. Its ETag is taken from the bytes copied, as S3 reports it for the same copy (the
 * whole MD5 for one request, the multipart ETag of the requested part size for a copy in parts),
 * and the uploader checks it against its digest of the local file.
 */

const COPY_BYTES = 1024 * 1024;

/** A source object as the plan expects it, and where its file is. */
export interface ExpectedSource extends FsObjectInfo {
  path: string;
}

/** The source object as the plan expects it: not_found when gone, conflict when it no longer has `sourceEtag`. */
export async function expectedSource(where: StoreRoot, sourceKey: string, sourceEtag: string, what: string): Promise<ExpectedSource> {
  checkKey(sourceKey);
  const { dirKey, base } = splitKey(sourceKey);
  const missing = (): AppError => new AppError('not_found', `${what}: the source ${sourceKey} does not exist (NoSuchKey)`, { details: { code: 'NoSuchKey' } });
  const dirPath = await keyDirectory(where, dirKey, what, 'existing');
  if (dirPath === undefined) throw missing();
  let source: FsObjectInfo | undefined;
  try {
    source = await describeObject(where.io, dirPath, base);
  } catch (error) {
    throw translateFsError(error, what);
  }
  if (source === undefined) throw missing();
  if (source.etag !== normalizeEtag(sourceEtag)) {
    throw new AppError('conflict', `${what}: the source ${sourceKey} has ETag ${source.etag}, not ${normalizeEtag(sourceEtag)} (PreconditionFailed)`, { details: { code: 'PreconditionFailed' } });
  }
  return { ...source, path: path.join(dirPath, base) };
}

export async function copyObject(where: StoreRoot, sourceKey: string, targetKey: string, options: CopyOptions): Promise<void> {
  const what = `copy ${sourceKey} to ${targetKey}`;
  if (isAborted(options.signal)) throw new AppError('cancelled', `${what}: aborted`);
  checkKey(targetKey);
  const expected = await expectedSource(where, sourceKey, options.sourceEtag, what);
  const source = await openExpectedSource(where, expected, sourceKey, what);
  try {
    const temp = await TempObject.create(where, targetKey, what);
    try {
      const etag = await copyBytes(source, expected.size, temp, options.partSizeBytes, options.signal, what);
      let identity: ObjectIdentity;
      try {
        identity = await temp.finish();
      } catch (error) {
        throw translateFsError(error, what, 'remote_unavailable');
      }
      if (isAborted(options.signal)) throw new AppError('cancelled', `${what}: aborted`);
      // Create-only, as every write of memsync's that is not a declared replace: a key another
      // writer took since the plan was made is theirs (conflict), never overwritten.
      await placeObject(temp, identity, { etag, metadata: lowerCaseKeys(options.metadata) }, 'create', what);
    } catch (error) {
      await temp.discard();
      throw error;
    }
  } finally {
    await source.close();
  }
}

/**
 * Opens the source the plan checked, never through a link, and makes sure the file opened is the
 * one looked at: the path may name another by now (replaced, or swapped for a link), whose bytes
 * the copy would take for the expected ones. Either is the source having changed: conflict.
 */
export async function openExpectedSource(where: StoreRoot, expected: ExpectedSource, sourceKey: string, what: string): Promise<GuardedFile> {
  let source: GuardedFile;
  try {
    source = await where.io.openForReading(expected.path);
  } catch (error) {
    if (isMissing(error) || isLinkRefused(error)) throw sourceChanged(what, sourceKey, error);
    throw translateFsError(error, what);
  }
  try {
    const stat = await source.stat();
    if (!stat.isFile() || !sameIdentity(identityOf(stat), expected.identity)) throw sourceChanged(what, sourceKey, undefined);
  } catch (error) {
    await source.close();
    throw translateFsError(error, what);
  }
  return source;
}

function sourceChanged(what: string, sourceKey: string, cause: unknown): AppError {
  return new AppError('conflict', `${what}: the source ${sourceKey} changed (PreconditionFailed)`, { cause, details: { code: 'PreconditionFailed' } });
}

/**
 * Copies `sizeBytes` from the open source into the temporary object, from the handle (so no
 * path is looked up again); returns the ETag of the bytes written: their MD5, or their multipart
 * ETag for `partSizeBytes`.
 */
async function copyBytes(source: GuardedFile, sizeBytes: number, temp: TempObject, partSizeBytes: number | undefined, signal: AbortSignal | undefined, what: string): Promise<string> {
  const md5 = partSizeBytes === undefined ? createHash('md5') : undefined;
  const parts = partSizeBytes === undefined ? undefined : new PartHasher(partSizeBytes);
  const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(COPY_BYTES, sizeBytes)));
  for (let position = 0; position < sizeBytes; ) {
    if (isAborted(signal)) throw new AppError('cancelled', `${what}: aborted`);
    let bytesRead: number;
    try {
      bytesRead = await source.read(buffer, 0, Math.min(buffer.length, sizeBytes - position), position);
    } catch (error) {
      throw translateFsError(error, what);
    }
    if (bytesRead === 0) throw new AppError('conflict', `${what}: the source ended at byte ${position} of ${sizeBytes} (it changed)`, { details: { code: 'PreconditionFailed' } });
    const bytes = buffer.subarray(0, bytesRead);
    md5?.update(bytes);
    parts?.update(bytes);
    try {
      await temp.write(bytes);
    } catch (error) {
      throw translateFsError(error, what, 'remote_unavailable');
    }
    position += bytesRead;
  }
  return parts?.etag() ?? md5?.digest('hex') ?? '';
}

export function lowerCaseKeys(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).map(([key, value]) => [key.toLowerCase(), value]));
}
