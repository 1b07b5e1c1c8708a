import { AppError } from '../errors.js';

/**
 * What counts as a snapshot name and what time a snapshot has. Pure functions only.
 *
 * The memory service names backups `{prefix}_{YYYYMMDD}_{HHMMSS}` (UTC) with a prefix of
 * [A-Za-z0-9_-]. Single-file snapshots may add an extension, so dots are allowed too, but
 * never a leading dot, "..", a slash, a backslash or a control character: a name becomes
 * both an object key segment and a local path, and must be safe as either.
 */
const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;
const NAME_TIME_SUFFIX = /_(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})(?:\.[A-Za-z0-9.]+)?$/;
const TEMP_SUFFIXES = ['.tmp', '.partial', '~'];

export const MAX_SNAPSHOT_NAME_LENGTH = 200;

export function isSnapshotName(name: string): boolean {
  return SNAPSHOT_NAME.test(name) && !name.includes('..');
}

/**
 * A snapshot name carrying its own time (`{prefix}_{YYYYMMDD}_{HHMMSS}`): the only names that
 * may be chosen as "latest", since any other is timed by its upload, which a stray or planted
 * key sets to the moment it was written.
 */
export function isTimedSnapshotName(name: string): boolean {
  return isSnapshotName(name) && timeFromName(name) !== undefined;
}

/** Top-level entries that are never snapshots: dotfiles (our staging, editors) and temp names. */
export function isIgnoredEntryName(name: string): boolean {
  return name.startsWith('.') || TEMP_SUFFIXES.some((suffix) => name.endsWith(suffix));
}

/** Returns the name if it is a valid snapshot name, else throws a bad_input error saying why. */
export function requireSnapshotName(name: string): string {
  if (isSnapshotName(name)) return name;
  throw new AppError('bad_input', `invalid snapshot name ${JSON.stringify(name.slice(0, 80))}`, {
    hint: `snapshot names are 1-${MAX_SNAPSHOT_NAME_LENGTH} characters of letters, digits, ".", "_" and "-", starting with a letter or digit, without ".."`,
  });
}

/** The UTC time encoded in a `_YYYYMMDD_HHMMSS` suffix, or undefined when there is none or it is not a real date. */
export function timeFromName(name: string): number | undefined {
  const match = NAME_TIME_SUFFIX.exec(name);
  if (match === null) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const back = new Date(ms);
  // Date.UTC rolls 2024-02-30 over into March; a suffix that does not round-trip is not a time.
  const valid =
    back.getUTCFullYear() === year &&
    back.getUTCMonth() === month - 1 &&
    back.getUTCDate() === day &&
    back.getUTCHours() === hour &&
    back.getUTCMinutes() === minute &&
    back.getUTCSeconds() === second;
  return valid ? ms : undefined;
}

export interface Timed {
  name: string;
  timeMs: number;
}

/** Newest first by time; names only break ties, so the order is total and stable. */
export function compareNewestFirst(a: Timed, b: Timed): number {
  if (a.timeMs !== b.timeMs) return b.timeMs - a.timeMs;
  return a.name < b.name ? 1 : a.name > b.name ? -1 : 0;
}

/** The latest by time, never by name: `pre_update_...` sorts after `auto_...` by name regardless of when it was taken. */
export function latestByTime<T extends Timed>(items: Iterable<T>): T | undefined {
  let latest: T | undefined;
  for (const item of items) {
    if (latest === undefined || compareNewestFirst(item, latest) < 0) latest = item;
  }
  return latest;
}
