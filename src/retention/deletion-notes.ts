import { isAppError } from '../errors.js';
import { discardObject } from '../remote/discard.js';
import { listAllObjects } from '../remote/remote-index.js';
import type { RemoteStore } from '../remote/store.js';
import { isSnapshotName } from '../snapshot/naming.js';

/**
 * Notes in the bucket of the snapshots retention is deleting: one small object per snapshot,
 * written before its manifest goes and removed after its last file. A snapshot without its
 * manifest is incomplete, and incomplete snapshots are left alone (they may be another tool's,
 * or an upload under way); the note is what tells memsync, after a crash or a restart, that
 * such leftovers are its own unfinished deletion. Notes live outside every snapshot, under a
 * dot name no snapshot can have, so listings never show them as content and one listing finds them all.
 */
export const DELETION_NOTES_PREFIX = '.memsync-deleting/';

export function deletionNoteKey(snapshot: string): string {
  return `${DELETION_NOTES_PREFIX}${snapshot}`;
}

export async function writeDeletionNote(store: RemoteStore, snapshot: string, nowMs: number): Promise<void> {
  const body = Buffer.from(`${JSON.stringify({ snapshot, startedAt: new Date(nowMs).toISOString() })}\n`);
  // Overwrites a note an interrupted pass left: it says the same thing.
  await store.put(deletionNoteKey(snapshot), () => body, { sizeBytes: body.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
}

export async function removeDeletionNote(store: RemoteStore, snapshot: string): Promise<void> {
  try {
    await discardObject(store, deletionNoteKey(snapshot));
  } catch (error) {
    if (!isAppError(error, 'not_found')) throw error;
  }
}

export interface NotedDeletion {
  snapshot: string;
  /** When the note was written, by the store's clock (its Last-Modified). */
  notedAtMs: number;
}

/** Snapshots with a deletion note; keys that name no snapshot are not memsync's and are skipped. */
export async function notedDeletions(store: RemoteStore): Promise<NotedDeletion[]> {
  const objects = await listAllObjects(store, DELETION_NOTES_PREFIX);
  return objects
    .map((object) => ({ snapshot: object.key.slice(DELETION_NOTES_PREFIX.length), notedAtMs: object.lastModifiedMs }))
    .filter((noted) => isSnapshotName(noted.snapshot));
}
