import { isAppError } from '../errors.js';
import { DAY_MS } from '../remote/object-lock.js';

/**
 * When retention may delete a snapshot whose objects are under Object Lock. Pure.
 *
 * memsync locks each object for CLOUD_SYNC_OBJECT_LOCK_DAYS from its write, and the manifest is
 * written last, so the snapshot's newest object (by the store's Last-Modified) is the last to
 * come free. Until then retention does not try: the store would refuse every delete. A lock set
 * another way (the bucket's default retention, a longer lock) is found out by the refusal itself
 * (lockWaitOf), and the snapshot waits just the same.
 */

export interface LockWait {
  snapshot: string;
  /** When the last lock expires; undefined when the store did not say (a legal hold, or no date). */
  untilMs: number | undefined;
}

/** When the locks memsync put on these objects expire: the newest object's write plus the lock's days. */
export function locksExpireAtMs(objects: readonly { lastModifiedMs: number }[], lockDays: number): number {
  const newest = objects.reduce((latest, object) => Math.max(latest, object.lastModifiedMs), 0);
  return newest + lockDays * DAY_MS;
}

/** The wait a refused delete means, when the store refused it for a lock (see RemoteStore.purge). */
export function lockWaitOf(snapshot: string, error: unknown): LockWait | undefined {
  if (!isAppError(error) || error.details?.code !== 'ObjectLocked') return undefined;
  const until = error.details.lockedUntilMs;
  return { snapshot, untilMs: typeof until === 'number' ? until : undefined };
}
