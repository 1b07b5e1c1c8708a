import { z } from 'zod';
import type { FileDigest } from '../snapshot/digest.js';
import { compareNewestFirst, timeFromName } from '../snapshot/naming.js';
import type { FileStat } from '../snapshot/scan.js';

/**
 * Digests of local files keyed by snapshot and path, valid while size, mtime and ctime are
 * unchanged. A sweep over thousands of settled snapshots costs stats, not reads.
 */

const entrySchema = z.object({
  size: z.number(),
  mtimeMs: z.number(),
  ctimeMs: z.number(),
  thresholdBytes: z.number(),
  digest: z.object({
    size: z.number(),
    sha256: z.string(),
    md5: z.string(),
    etag: z.string(),
    partSizeBytes: z.number(),
    multipart: z.boolean(),
  }),
});
export const hashCacheSchema = z.object({ version: z.literal(1), entries: z.record(z.string(), entrySchema) });
export type HashCacheDocument = z.infer<typeof hashCacheSchema>;

export function emptyHashCache(): HashCacheDocument {
  return { version: 1, entries: {} };
}

function cacheKey(snapshot: string, file: FileStat): string {
  return `${snapshot}/${file.path}`;
}

export function lookupDigest(cache: HashCacheDocument, snapshot: string, file: FileStat, thresholdBytes: number): FileDigest | undefined {
  const entry = cache.entries[cacheKey(snapshot, file)];
  if (entry === undefined) return undefined;
  const valid = entry.size === file.size && entry.mtimeMs === file.mtimeMs && entry.ctimeMs === file.ctimeMs && entry.thresholdBytes === thresholdBytes;
  return valid ? entry.digest : undefined;
}

export function storeDigest(cache: HashCacheDocument, snapshot: string, file: FileStat, thresholdBytes: number, digest: FileDigest): void {
  cache.entries[cacheKey(snapshot, file)] = { size: file.size, mtimeMs: file.mtimeMs, ctimeMs: file.ctimeMs, thresholdBytes, digest };
}

/**
 * The digests of other versions of a file: the same path, of the same size, in any snapshot,
 * taken for the same multipart threshold; one per content, preferring one that has the
 * whole-file MD5. Whether the file holds one of them is for its SHA-256 to say, never its stat.
 * A scan of every entry rather than an index kept beside the document: it is asked once per new
 * version of a large file, and the cache holds one entry per file of each local snapshot, so a
 * scan is far cheaper than reading the file it may save.
 */
export function digestsOfOtherVersions(cache: HashCacheDocument, file: FileStat, thresholdBytes: number): FileDigest[] {
  const byContent = new Map<string, FileDigest>();
  for (const [key, entry] of Object.entries(cache.entries)) {
    if (entry.size !== file.size || entry.thresholdBytes !== thresholdBytes || entry.digest.size !== file.size) continue;
    // Snapshot names hold no '/': the path starts after the first one.
    if (key.slice(key.indexOf('/') + 1) !== file.path) continue;
    const known = byContent.get(entry.digest.sha256);
    if (known === undefined || (known.md5 === '' && entry.digest.md5 !== '')) byContent.set(entry.digest.sha256, entry.digest);
  }
  return [...byContent.values()];
}

/**
 * The digests of the file at `path` in snapshots other than `snapshot`, newest snapshot first (by
 * the time in its name), one per content: the versions the file most likely grew from.
 */
export function digestsOfOtherSnapshots(cache: HashCacheDocument, snapshot: string, path: string): FileDigest[] {
  const found: { name: string; timeMs: number; digest: FileDigest }[] = [];
  for (const [key, entry] of Object.entries(cache.entries)) {
    const slash = key.indexOf('/');
    const name = key.slice(0, slash);
    if (name === snapshot || key.slice(slash + 1) !== path) continue;
    found.push({ name, timeMs: timeFromName(name) ?? 0, digest: entry.digest });
  }
  const byContent = new Map<string, FileDigest>();
  for (const { digest } of found.sort(compareNewestFirst)) if (!byContent.has(digest.sha256)) byContent.set(digest.sha256, digest);
  return [...byContent.values()];
}

/** Drops entries of snapshots that no longer exist locally, so the cache tracks the directory, not history. */
export function pruneDigests(cache: HashCacheDocument, liveSnapshots: ReadonlySet<string>): number {
  let removed = 0;
  for (const key of Object.keys(cache.entries)) {
    const slash = key.indexOf('/');
    if (slash <= 0 || !liveSnapshots.has(key.slice(0, slash))) {
      delete cache.entries[key];
      removed += 1;
    }
  }
  return removed;
}
