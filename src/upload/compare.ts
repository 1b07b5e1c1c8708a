import { compareNewestFirst, type Timed } from '../snapshot/naming.js';
import type { RemoteIndex } from '../remote/remote-index.js';

/**
 * Local versus remote, by name and manifest identity. Pure: the sweep uses it to pick what
 * to queue, the status endpoint to show pending, remote-only and conflicting snapshots.
 */

export interface LocalEntry extends Timed {
  /** MD5 of the serialized manifest (what S3 reports as its ETag); undefined until hashed. */
  manifestEtag: string | undefined;
}

export interface SyncPicture {
  /** Complete remotely with identical content. */
  inSync: string[];
  /** Not complete remotely (absent, partial, or not yet compared): candidates for upload, newest first. */
  pending: string[];
  /** Complete on both sides with different content. */
  conflicts: string[];
  /** Present only in the bucket, newest first. */
  remoteOnly: string[];
}

export function compareSides(local: Iterable<LocalEntry>, remote: RemoteIndex, knownConflicts: ReadonlySet<string>): SyncPicture {
  const inSync: string[] = [];
  const pending: LocalEntry[] = [];
  const conflicts: string[] = [];
  const localNames = new Set<string>();
  for (const entry of local) {
    localNames.add(entry.name);
    const other = remote.snapshots.get(entry.name);
    if (other?.complete === true && entry.manifestEtag !== undefined && other.manifestEtag === entry.manifestEtag) inSync.push(entry.name);
    else if (knownConflicts.has(entry.name)) conflicts.push(entry.name);
    else pending.push(entry);
  }
  const remoteOnly = [...remote.snapshots.values()].filter((s) => !localNames.has(s.name)).sort(compareNewestFirst);
  return { inSync, pending: pending.sort(compareNewestFirst).map((e) => e.name), conflicts, remoteOnly: remoteOnly.map((s) => s.name) };
}
