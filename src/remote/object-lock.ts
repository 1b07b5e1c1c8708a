import { CLAIM_FILE_NAME } from '../snapshot/reserved-names.js';
import { PROBE_KEY_PREFIX } from './conditional-writes.js';

/**
 * Object Lock (CLOUD_SYNC_OBJECT_LOCK_MODE / _DAYS): which objects memsync writes under a lock and
 * until when. Pure; the S3 requests that carry it are in s3-lock.ts.
 *
 * Everything a snapshot keeps is locked: its files, its manifest, its signatures. What memsync
 * must remove again after a successful upload is not: the name claim (deleted once the manifest
 * is written, renewed meanwhile), the start-up probe objects and retention's deletion notes. A
 * lock on those would gain nothing (they hold no backup data) and would leave one undeletable
 * object per upload or start.
 */

export type ObjectLockMode = 'GOVERNANCE' | 'COMPLIANCE';

export interface ObjectLockSettings {
  mode: ObjectLockMode;
  /** Each object is retained this many days from its write. */
  days: number;
}

export const DAY_MS = 86_400_000;

/** Mirrors retention/deletion-notes.ts (remote/ cannot import retention/). */
const DELETION_NOTES_PREFIX = '.memsync-deleting/';

/** Whether memsync writes `relativeKey` (relative to the prefix) under a lock. */
export function isLockedKey(relativeKey: string): boolean {
  if (relativeKey.startsWith(PROBE_KEY_PREFIX) || relativeKey.startsWith(DELETION_NOTES_PREFIX)) return false;
  return !relativeKey.endsWith(`/${CLAIM_FILE_NAME}`);
}

/** The retain-until date of an object written at `nowMs`. */
export function retainUntil(settings: ObjectLockSettings, nowMs: number): Date {
  return new Date(nowMs + settings.days * DAY_MS);
}
