import { lstat, readdir } from 'node:fs/promises';
import { AppError } from '../errors.js';
import { isMissing, translateFsError } from './fs-errors.js';
import { checkKey, isStoreOwnName, joinKey, pathOf, TEMP_PREFIX, targetOfTemporary } from './fs-layout.js';
import { describeObject } from './fs-sidecar.js';
import type { StoreRoot } from './fs-write.js';
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
  name: string;
}

/** Files (regular files only: links are never followed) whose key may start with `keyPrefix`, in key order. */
async function* walk(where: StoreRoot, keyPrefix: string, what: string): AsyncGenerator<WalkedFile> {
  const slash = keyPrefix.lastIndexOf('/');
  const startDirKey = slash < 0 ? '' : keyPrefix.slice(0, slash);
  if (startDirKey !== '') checkKey(startDirKey);
  await requireBase(where, what);
  yield* walkDirectory(where, startDirKey, keyPrefix, what);
}

async function* walkDirectory(where: StoreRoot, dirKey: string, keyPrefix: string, what: string): AsyncGenerator<WalkedFile> {
  let entries;
  try {
    entries = await readdir(pathOf(where.root, dirKey), { withFileTypes: true });
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
      if (keyPrefix.startsWith(inside) || inside.startsWith(keyPrefix)) yield* walkDirectory(where, key, keyPrefix, what);
    } else {
      yield { key, dirKey, name: entry.name };
    }
  }
}

/** A missing configured directory is an unmounted share, not an empty store. */
async function requireBase(where: StoreRoot, what: string): Promise<void> {
  const base = await lstat(where.base).catch((error: unknown) => {
    if (isMissing(error)) return undefined;
    throw translateFsError(error, what);
  });
  if (base?.isDirectory() !== true) {
    throw new AppError('remote_unavailable', `${what}: the directory ${where.base} is gone (unmounted?)`, { hint: 'mount it again or fix CLOUD_SYNC_BUCKET' });
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
      info = await describeObject(pathOf(where.root, file.key));
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
    const stat = await lstat(pathOf(where.root, file.key)).catch(() => undefined);
    if (stat === undefined) continue;
    uploads.push({ key, uploadId: file.name, initiatedMs: stat.mtimeMs });
  }
  return uploads;
}
