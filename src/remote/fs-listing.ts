import path from 'node:path';
import { isAppError } from '../errors.js';
import { isMissing, translateFsError } from './fs-errors.js';
import { checkKey, isStoreOwnName, joinKey, TEMP_PREFIX, targetOfTemporary } from './fs-layout.js';
import { keyDirectory, SYMLINK_REFUSED, type StoreRoot } from './fs-paths.js';
import { describeObject } from './fs-sidecar.js';
import type { MultipartUpload, RemoteObject } from './store.js';

/**
 * Listings of the directory store in S3's terms: every key starting with a text (not only at a
 * "/"), in the byte order of the keys' UTF-8, page by page. The tree is walked depth first with
 * each directory's entries sorted as their keys sort: a directory `a` sorts as `a/`, so
 * `a-b` < `a/x` < `a0`, exactly as the keys would, and pages come out while the walk goes on.
 */

const PAGE_SIZE = 1000;

interface WalkedFile {
  key: string;
  dirKey: string;
  dirPath: string;
  name: string;
}

/** Files (regular files only: links are never followed) whose key may start with `keyPrefix`, in key order. */
async function* walk(where: StoreRoot, keyPrefix: string, what: string): AsyncGenerator<WalkedFile> {
  const slash = keyPrefix.lastIndexOf('/');
  const startDirKey = slash < 0 ? '' : keyPrefix.slice(0, slash);
  if (startDirKey !== '') checkKey(startDirKey);
  const startPath = await startDirectory(where, startDirKey, what);
  if (startPath !== undefined) yield* walkDirectory(where, startDirKey, startPath, keyPrefix, what);
}

/** The directory a listing starts in; undefined when there is none, or a link is on its way (a link is no folder of the store's, as the whole listing skips it too). */
async function startDirectory(where: StoreRoot, dirKey: string, what: string): Promise<string | undefined> {
  try {
    return await keyDirectory(where, dirKey, what, 'existing');
  } catch (error) {
    if (isAppError(error, 'remote_rejected') && error.details?.code === SYMLINK_REFUSED) return undefined;
    throw error;
  }
}

async function* walkDirectory(where: StoreRoot, dirKey: string, dirPath: string, keyPrefix: string, what: string): AsyncGenerator<WalkedFile> {
  let entries;
  try {
    // Looked at again just before it is read: a folder swapped for a link since it was listed is skipped.
    if (!(await where.io.lstat(dirPath)).isDirectory()) return;
    entries = await where.io.readdir(dirPath);
  } catch (error) {
    if (isMissing(error)) return;
    throw translateFsError(error, what);
  }
  const sorted = entries
    .filter((entry) => entry.isDirectory() || entry.isFile())
    .map((entry) => ({ entry, sortKey: Buffer.from(entry.isDirectory() ? `${entry.name}/` : entry.name, 'utf8') }))
    .sort((a, b) => Buffer.compare(a.sortKey, b.sortKey));
  for (const { entry } of sorted) {
    const key = joinKey(dirKey, entry.name);
    if (entry.isDirectory()) {
      const inside = `${key}/`;
      if (keyPrefix.startsWith(inside) || inside.startsWith(keyPrefix)) yield* walkDirectory(where, key, path.join(dirPath, entry.name), keyPrefix, what);
    } else {
      yield { key, dirKey, dirPath, name: entry.name };
    }
  }
}

export async function* listObjectPages(where: StoreRoot, keyPrefix: string): AsyncIterable<RemoteObject[]> {
  const what = `list ${keyPrefix === '' ? 'everything' : keyPrefix}`;
  let page: RemoteObject[] = [];
  let yielded = false;
  for await (const file of walk(where, keyPrefix, what)) {
    if (isStoreOwnName(file.name) || !file.key.startsWith(keyPrefix)) continue;
    let info;
    try {
      info = await describeObject(where.io, file.dirPath, file.name);
    } catch (error) {
      throw translateFsError(error, what);
    }
    // Deleted since the directory was read.
    if (info === undefined) continue;
    page.push({ key: file.key, size: info.size, etag: `"${info.etag}"`, lastModifiedMs: info.lastModifiedMs });
    if (page.length === PAGE_SIZE) {
      yield page;
      yielded = true;
      page = [];
    }
  }
  if (page.length > 0 || !yielded) yield page;
}

/**
 * Temporary files as unfinished uploads: what a crash between writing and placing an object
 * leaves. The key is the object it was going to be; the upload id is the temporary name. Its age
 * is the time of its last write, so an upload still writing is never taken for an abandoned one.
 */
export async function listTemporaryFiles(where: StoreRoot, keyPrefix: string): Promise<MultipartUpload[]> {
  const what = `list unfinished writes under ${keyPrefix === '' ? 'everything' : keyPrefix}`;
  const uploads: MultipartUpload[] = [];
  // Temporary names sort apart from their targets, so the walk starts at the prefix's directory and filters by target key.
  const slash = keyPrefix.lastIndexOf('/');
  const walkFrom = slash < 0 ? '' : keyPrefix.slice(0, slash + 1);
  for await (const file of walk(where, walkFrom, what)) {
    if (!file.name.startsWith(TEMP_PREFIX)) continue;
    const target = targetOfTemporary(file.name);
    if (target === undefined) continue;
    const key = joinKey(file.dirKey, target);
    if (!key.startsWith(keyPrefix)) continue;
    const stat = await where.io.lstat(path.join(file.dirPath, file.name)).catch((error: unknown) => {
      if (isMissing(error)) return undefined;
      throw translateFsError(error, what);
    });
    if (stat === undefined) continue;
    uploads.push({ key, uploadId: file.name, initiatedMs: Number(stat.mtimeMs) });
  }
  return uploads;
}
