import { manifestFormatOf } from '../snapshot/manifest-codec.js';
import { isBookkeepingName } from '../snapshot/reserved-names.js';
import { isAllowedFilePath } from '../snapshot/file-path-rule.js';
import { compareNewestFirst, isSnapshotName, isTimedSnapshotName, latestByTime, timeFromName } from '../snapshot/naming.js';
import { normalizeEtag } from '../snapshot/digest.js';
import type { RemoteObject, RemoteStore } from './store.js';

/**
 * What the bucket holds, grouped by snapshot: built from one paginated listing, kept in
 * memory between sweeps so status and listing never re-list the bucket per request.
 */

export interface RemoteSnapshot {
  name: string;
  timeMs: number;
  fileCount: number;
  bytes: number;
  /** True when memsync's manifest is present: every listed file was verified before it was written. */
  complete: boolean;
  /** ETag of the manifest object, the cheap identity of a complete snapshot's content. */
  manifestEtag: string | undefined;
  /** Its manifest (and files) are encrypted client-side. */
  encrypted: boolean;
}

export interface RemoteIndex {
  snapshots: Map<string, RemoteSnapshot>;
  /** Keys directly under the prefix, with unsafe names or with file paths no restore accepts: listed by nobody, reported once. */
  ignoredKeys: number;
  listedAtMs: number;
}

/**
 * Groups a listing into snapshots, one page at a time: a page is folded in and dropped, so a
 * bucket of 30,000 objects never sits in memory as 30,000 listing entries. Pure; hostile or
 * foreign key names are counted and skipped.
 */
export class RemoteIndexBuilder {
  private readonly snapshots = new Map<string, RemoteSnapshot>();
  /** Snapshots whose name carries no time: timed by their newest object instead. */
  private readonly untimed = new Set<string>();
  private ignoredKeys = 0;

  add(objects: Iterable<RemoteObject>): void {
    for (const object of objects) this.addObject(object);
  }

  finish(nowMs: number): RemoteIndex {
    return { snapshots: this.snapshots, ignoredKeys: this.ignoredKeys, listedAtMs: nowMs };
  }

  private addObject(object: RemoteObject): void {
    const slash = object.key.indexOf('/');
    const name = slash > 0 ? object.key.slice(0, slash) : '';
    // Keys ending in '/' are folder markers some tools create; they hold no file.
    if (!isSnapshotName(name) || object.key.endsWith('/')) {
      this.ignoredKeys += 1;
      return;
    }
    const relative = object.key.slice(name.length + 1);
    // An upload's claim on the name, or its signatures, are not content: alone, they are no snapshot.
    if (isBookkeepingName(relative)) return;
    const manifestFormat = manifestFormatOf(relative);
    // `x/../../evil` is no file of a snapshot "x": counted as one, it would make "x" the newest.
    if (manifestFormat === undefined && !isAllowedFilePath(relative)) {
      this.ignoredKeys += 1;
      return;
    }
    let snapshot = this.snapshots.get(name);
    if (snapshot === undefined) {
      const timeMs = timeFromName(name);
      // Names without a time suffix fall back to the newest object's upload time.
      if (timeMs === undefined) this.untimed.add(name);
      snapshot = { name, timeMs: timeMs ?? 0, fileCount: 0, bytes: 0, complete: false, manifestEtag: undefined, encrypted: false };
      this.snapshots.set(name, snapshot);
    }
    if (manifestFormat !== undefined) {
      snapshot.complete = true;
      snapshot.manifestEtag = normalizeEtag(object.etag);
      snapshot.encrypted = manifestFormat === 'encrypted';
    } else {
      snapshot.fileCount += 1;
      snapshot.bytes += object.size;
      if (this.untimed.has(name)) snapshot.timeMs = Math.max(snapshot.timeMs, object.lastModifiedMs);
    }
  }
}

/** Groups a flat listing into snapshots (see RemoteIndexBuilder). */
export function buildRemoteIndex(objects: Iterable<RemoteObject>, nowMs: number): RemoteIndex {
  const builder = new RemoteIndexBuilder();
  builder.add(objects);
  return builder.finish(nowMs);
}

/**
 * Remote snapshots with content (complete, or files written by another tool) newer than
 * `latestLocalMs`; all of them when there is nothing local. Newest first.
 */
export function remoteNewerThan(index: RemoteIndex, latestLocalMs: number | undefined): RemoteSnapshot[] {
  return [...index.snapshots.values()]
    .filter((s) => (s.complete || s.fileCount > 0) && (latestLocalMs === undefined || s.timeMs > latestLocalMs))
    .sort(compareNewestFirst);
}

/**
 * The snapshot a download without a name fetches (and the one fetched into an empty backup
 * directory at start): the latest by the time in its name, preferring those memsync verified
 * (manifest present). Only names with their own time are candidates (isTimedSnapshotName); any
 * other snapshot is still listed and can be downloaded by name.
 */
export function chooseLatestRestorable(index: RemoteIndex): RemoteSnapshot | undefined {
  const candidates = [...index.snapshots.values()].filter((s) => isTimedSnapshotName(s.name));
  return latestByTime(candidates.filter((s) => s.complete)) ?? latestByTime(candidates.filter((s) => s.fileCount > 0));
}

/** Every object under `keyPrefix`, all pages collected (for listings whose size is bounded by what memsync keeps). */
export async function listAllObjects(store: RemoteStore, keyPrefix: string): Promise<RemoteObject[]> {
  const all: RemoteObject[] = [];
  for await (const page of store.listObjects(keyPrefix)) all.push(...page);
  return all;
}

/** Lists the whole prefix page by page; ~1,000 keys a request, so 30,000 objects are 30 requests. */
export async function listRemoteIndex(store: RemoteStore, nowMs: () => number): Promise<RemoteIndex> {
  const builder = new RemoteIndexBuilder();
  for await (const page of store.listObjects('')) builder.add(page);
  return builder.finish(nowMs());
}
