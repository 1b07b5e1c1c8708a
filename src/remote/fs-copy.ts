import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { AppError } from '../errors.js';
import { normalizeEtag, PartHasher } from '../snapshot/digest.js';
import { isAborted, translateFsError } from './fs-errors.js';
import { checkKey, pathOf } from './fs-layout.js';
import { describeObject, type FsObjectInfo, type ObjectIdentity } from './fs-sidecar.js';
import { placeObject, TempObject, type StoreRoot } from './fs-write.js';
import type { CopyOptions } from './store.js';

/**
 * The directory store's server-side copy: a real copy of the file by the kernel (copy_file_range,
 * or a reflink where the file system shares blocks), never through memsync's memory. Its ETag is
 * taken from the copy's own bytes, read back once: the uploader then checks what is really there
 * against its digest of the local file, as it checks a copy on S3 (the whole MD5 for one request,
 * the multipart ETag of the requested part size for a copy in parts).
 */

const READ_BYTES = 1024 * 1024;

/** The source object as the plan expects it: not_found when gone, conflict when it no longer has `sourceEtag`. */
export async function expectedSource(where: StoreRoot, sourceKey: string, sourceEtag: string, what: string): Promise<FsObjectInfo> {
  checkKey(sourceKey);
  let source: FsObjectInfo | undefined;
  try {
    source = await describeObject(pathOf(where.root, sourceKey));
  } catch (error) {
    throw translateFsError(error, what);
  }
  if (source === undefined) throw new AppError('not_found', `${what}: the source ${sourceKey} does not exist (NoSuchKey)`, { details: { code: 'NoSuchKey' } });
  if (source.etag !== normalizeEtag(sourceEtag)) {
    throw new AppError('conflict', `${what}: the source ${sourceKey} has ETag ${source.etag}, not ${normalizeEtag(sourceEtag)} (PreconditionFailed)`, { details: { code: 'PreconditionFailed' } });
  }
  return source;
}

export async function copyObject(where: StoreRoot, sourceKey: string, targetKey: string, options: CopyOptions): Promise<void> {
  const what = `copy ${sourceKey} to ${targetKey}`;
  if (isAborted(options.signal)) throw new AppError('cancelled', `${what}: aborted`);
  checkKey(targetKey);
  await expectedSource(where, sourceKey, options.sourceEtag, what);
  const temp = await TempObject.create(where, targetKey, what);
  try {
    let etag: string;
    let identity: ObjectIdentity;
    try {
      // FICLONE shares the blocks where the file system can (btrfs, XFS); elsewhere the kernel copies.
      await copyFile(pathOf(where.root, sourceKey), temp.tempPath, constants.COPYFILE_FICLONE);
      etag = await etagOfWritten(temp, options.partSizeBytes, options.signal, what);
      identity = await temp.finish();
    } catch (error) {
      throw translateFsError(error, what, 'remote_unavailable');
    }
    if (isAborted(options.signal)) throw new AppError('cancelled', `${what}: aborted`);
    await placeObject(temp, identity, { etag, metadata: lowerCaseKeys(options.metadata) }, 'replace', what);
  } catch (error) {
    await temp.discard();
    throw error;
  }
}

/** The ETag of the bytes now in the temporary file: their MD5, or their multipart ETag for `partSizeBytes`. */
async function etagOfWritten(temp: TempObject, partSizeBytes: number | undefined, signal: AbortSignal | undefined, what: string): Promise<string> {
  const md5 = partSizeBytes === undefined ? createHash('md5') : undefined;
  const parts = partSizeBytes === undefined ? undefined : new PartHasher(partSizeBytes);
  const buffer = Buffer.allocUnsafe(READ_BYTES);
  for (let position = 0; ; ) {
    if (isAborted(signal)) throw new AppError('cancelled', `${what}: aborted`);
    const { bytesRead } = await temp.file.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) break;
    md5?.update(buffer.subarray(0, bytesRead));
    parts?.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  return parts?.etag() ?? md5?.digest('hex') ?? '';
}

export function lowerCaseKeys(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).map(([key, value]) => [key.toLowerCase(), value]));
}
