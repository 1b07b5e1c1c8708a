import type { BigIntStats } from 'node:fs';
import path from 'node:path';
import { AppError } from '../errors.js';
import { errnoOf, isMissing, translateFsError } from './fs-errors.js';
import type { GuardedFs } from './fs-operations.js';

/**
 * Where a key's directory is, found without ever following a symbolic link below the configured
 * directory. A key becomes a path, and the kernel would follow a link in any component of it: a
 * link planted in the store (say a snapshot folder pointing at /etc) would turn a write, a copy
 * or a delete of that snapshot into one outside the store. So each component from the configured
 * directory down is looked at with lstat and must be a real directory, and missing ones are made
 * one level at a time and looked at again. The final component is the caller's: objects are
 * opened with O_NOFOLLOW, and link, rename and unlink never follow it.
 *
 * Node has no openat(2): between this walk and the call that uses the path, a component could
 * still be swapped by someone writing the store at that very moment. Writes check again, by
 * identity, before an object is put in place (fs-write.ts); the window left is that of a racing
 * attacker, where before a link planted once sufficed.
 */

export interface StoreRoot {
  /** The configured directory (CLOUD_SYNC_BUCKET): it must exist; memsync never creates it. */
  base: string;
  /** base plus the prefix: where keys start. Created as needed. */
  root: string;
  /** The prefix's path segments, from base to root. */
  rootSegments: readonly string[];
  /** Every file operation of the store goes through this (deadlines). */
  io: GuardedFs;
}

/** A directory that vanished while the walk made the next one (a concurrent delete pruned it) is walked again this often. */
const WALK_ATTEMPTS = 3;

/** details.code of the refusal of a path that meets a link. */
export const SYMLINK_REFUSED = 'SymbolicLink';

export function symlinkRefusal(what: string, linkPath: string, where: StoreRoot): AppError {
  return new AppError('remote_rejected', `${what}: ${linkPath} is a symbolic link; the directory store never follows links under ${where.base}`, {
    retryable: false,
    hint: 'remove the link: every folder and object under CLOUD_SYNC_BUCKET must be a real one (mount a share at the directory itself instead)',
    details: { code: SYMLINK_REFUSED, path: linkPath },
  });
}

/**
 * The absolute path of `dirKey`'s directory ('' for the root). 'existing': undefined when a
 * component is missing or is a file (no object can be there). 'create': missing components are
 * made. A component that is a link is refused (remote_rejected, details.code SYMLINK_REFUSED).
 */
export async function keyDirectory(where: StoreRoot, dirKey: string, what: string, mode: 'create'): Promise<string>;
export async function keyDirectory(where: StoreRoot, dirKey: string, what: string, mode: 'existing'): Promise<string | undefined>;
export async function keyDirectory(where: StoreRoot, dirKey: string, what: string, mode: 'existing' | 'create'): Promise<string | undefined> {
  const segments = [...where.rootSegments, ...(dirKey === '' ? [] : dirKey.split('/'))];
  for (let attempt = 1; ; attempt += 1) {
    await requireBase(where, what);
    const found = await walk(where, segments, what, mode);
    if (found !== 'vanished') return found;
    if (attempt >= WALK_ATTEMPTS) throw new AppError('remote_unavailable', `${what}: the directories of the key kept vanishing while they were made`);
  }
}

async function walk(where: StoreRoot, segments: readonly string[], what: string, mode: 'existing' | 'create'): Promise<string | undefined | 'vanished'> {
  let dir = where.base;
  for (const segment of segments) {
    const next = path.join(dir, segment);
    let stat = await lstatIfPresent(where, next, what);
    if (stat === undefined) {
      if (mode === 'existing') return undefined;
      if (!(await makeDirectory(where, next, what))) return 'vanished';
      stat = await lstatIfPresent(where, next, what);
      if (stat === undefined) return 'vanished';
    }
    if (stat.isSymbolicLink()) throw symlinkRefusal(what, next, where);
    if (!stat.isDirectory()) {
      if (mode === 'existing') return undefined;
      throw new AppError('object_refused', `${what}: ${next} is not a directory (ENOTDIR)`, { retryable: false, details: { code: 'ENOTDIR' } });
    }
    dir = next;
  }
  return dir;
}

/**
 * The configured directory must be there: missing, it is an unmounted share, not a place to
 * write (an outage while running; `missing` says which kind at start). It may itself be a link
 * (the operator chose the path); nothing below it may.
 */
export async function requireBase(where: StoreRoot, what: string, missing: 'remote_unavailable' | 'remote_rejected' = 'remote_unavailable'): Promise<void> {
  let stat: BigIntStats | undefined;
  try {
    stat = await where.io.lstat(where.base);
    // The configured path itself may be a link the operator made: look at what it names.
    if (stat.isSymbolicLink()) stat = await where.io.stat(where.base);
  } catch (error) {
    if (!isMissing(error)) throw translateFsError(error, what, 'remote_unavailable');
  }
  if (stat === undefined) throw new AppError(missing, `${what}: the directory ${where.base} does not exist (unmounted?)`, { hint: 'mount it, or fix CLOUD_SYNC_BUCKET' });
  if (!stat.isDirectory()) throw new AppError('remote_rejected', `${what}: ${where.base} is not a directory`, { retryable: false, hint: 'point CLOUD_SYNC_BUCKET at a directory' });
}

async function lstatIfPresent(where: StoreRoot, target: string, what: string): Promise<BigIntStats | undefined> {
  try {
    return await where.io.lstat(target);
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw translateFsError(error, what, 'remote_unavailable');
  }
}

/** mkdir of one level, fsynced into its parent; false when the parent vanished meanwhile. */
async function makeDirectory(where: StoreRoot, target: string, what: string): Promise<boolean> {
  try {
    await where.io.mkdir(target);
  } catch (error) {
    const code = errnoOf(error);
    // EEXIST: made meanwhile by another writer; the lstat after tells what it is.
    if (code === 'EEXIST') return true;
    if (code === 'ENOENT') return false;
    throw translateFsError(error, what, 'remote_unavailable');
  }
  try {
    await syncDirectory(where, path.dirname(target));
  } catch (error) {
    throw translateFsError(error, what, 'remote_unavailable');
  }
  return true;
}

/**
 * fsync of a directory, so a new or removed name survives a power loss. Some file systems
 * (several FUSE mounts) cannot sync a directory and say EINVAL or ENOTSUP; they persist names
 * on their own terms, so that answer is no failure.
 */
export async function syncDirectory(where: StoreRoot, dirPath: string): Promise<void> {
  const handle = await where.io.openDirectory(dirPath);
  try {
    await handle.sync().catch((error: unknown) => {
      const code = errnoOf(error);
      if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw error;
    });
  } finally {
    await handle.close();
  }
}
