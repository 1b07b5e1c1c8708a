import { isAppError } from '../errors.js';
import type { RemoteStore } from './store.js';

/**
 * Removing memsync's own bookkeeping (a released name claim, a finished deletion note) without
 * leaving it behind. In a bucket that keeps versions (versioning on, which Object Lock implies) a
 * plain DELETE only adds a delete marker: every claim would stay stored, hidden and billed, one per
 * upload. There, every version of the key is deleted. Where that is not possible (a version still
 * locked, credentials without s3:ListBucketVersions or s3:DeleteObjectVersion) the key is deleted
 * as before, which at least hides it; a denial is remembered, so later removals do not ask again.
 *
 * Only for keys whose every version is memsync's bookkeeping: a snapshot's file key may hold an
 * earlier version that another writer stored, which must never be destroyed.
 */

interface StoreVersions {
  /** Undefined until the store has answered whether it keeps versions. */
  keeps: Promise<boolean> | undefined;
  /** Purging was denied once: plain deletes from then on. */
  purgeDenied: boolean;
}

const known = new WeakMap<RemoteStore, StoreVersions>();

function versionsOf(store: RemoteStore): StoreVersions {
  let versions = known.get(store);
  if (versions === undefined) {
    versions = { keeps: undefined, purgeDenied: false };
    known.set(store, versions);
  }
  return versions;
}

/**
 * Asked once per store. Credentials that may not ask (s3:GetBucketVersioning) get plain deletes,
 * as retention does then; a store that did not answer is asked again next time.
 */
async function keepsVersions(store: RemoteStore, versions: StoreVersions): Promise<boolean> {
  if (store.keepsVersions === undefined) return false;
  versions.keeps ??= store.keepsVersions();
  try {
    return await versions.keeps;
  } catch (error) {
    versions.keeps = isAppError(error, 'remote_rejected') ? Promise.resolve(false) : undefined;
    return false;
  }
}

/** Removes `key` for good where the store keeps versions and allows it, else as delete() does. */
export async function discardObject(store: RemoteStore, key: string): Promise<void> {
  const versions = versionsOf(store);
  if (store.purge === undefined || versions.purgeDenied || !(await keepsVersions(store, versions))) return store.delete(key);
  try {
    const outcome = await store.purge(key);
    if (outcome === 'current-only') versions.purgeDenied = true;
  } catch (error) {
    if (!isAppError(error, 'remote_rejected')) throw error;
    const code = error.details?.code;
    if (code === 'AccessDenied') versions.purgeDenied = true;
    else if (code !== 'ObjectLocked') throw error;
    // A locked version stays until its lock expires whatever is asked; the delete hides it.
    await store.delete(key);
  }
}
