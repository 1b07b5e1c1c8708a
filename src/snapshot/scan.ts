import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../errors.js';
import type { SnapshotKind } from './manifest.js';
import { manifestFormatOf } from './manifest-codec.js';
import { isIgnoredEntryName, isSnapshotName, timeFromName } from './naming.js';

/**
 * Reading the backup directory: which entries are snapshots, and the stat-level picture of
 * one snapshot (files, sizes, times) that settling compares and hashing starts from.
 * Symbolic links are never followed: a link could point anywhere on the machine.
 */

export interface FileStat {
  /** Relative to the snapshot directory, '/' separated; the snapshot name for a single file. */
  path: string;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  /**
   * Which inode the scan saw (in memory only, never stored): a file opened later must be that
   * one, not another renamed over it. Absent in stats not taken by a scan.
   */
  dev?: number;
  ino?: number;
}

export interface SnapshotStat {
  name: string;
  kind: SnapshotKind;
  files: FileStat[];
  /** Entries skipped inside the snapshot (links, sockets), reported once per scan. */
  skipped: string[];
  /** Newest ctime of the snapshot and every file in it: any write, rename or chmod moves it. */
  newestChangeMs: number;
  /** Time from the name's suffix, else the newest file mtime. */
  timeMs: number;
}

export interface EntryListing {
  names: string[];
  /** Entries that are neither ignored nor valid snapshot names, or are links: reported, not uploaded. */
  rejected: { name: string; reason: string }[];
}

const SYMLINK_HINT = 'a link could point anywhere on the machine: put the snapshot itself in the backup directory';

/** Nesting deeper than this is not something the memory service writes; stop rather than recurse forever. */
const MAX_DEPTH = 16;

export async function listSnapshotEntries(backupDir: string): Promise<EntryListing> {
  let entries;
  try {
    entries = await readdir(backupDir, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { names: [], rejected: [] };
    throw new AppError('local_io', `cannot list backup directory ${backupDir}: ${code ?? String(error)}`, { cause: error });
  }
  const names: string[] = [];
  const rejected: { name: string; reason: string }[] = [];
  for (const entry of entries) {
    if (isIgnoredEntryName(entry.name)) continue;
    if (!isSnapshotName(entry.name)) rejected.push({ name: entry.name, reason: 'name is not a valid snapshot name' });
    else if (entry.isSymbolicLink()) rejected.push({ name: entry.name, reason: 'symbolic links are not followed' });
    else if (entry.isDirectory() || entry.isFile()) names.push(entry.name);
    else rejected.push({ name: entry.name, reason: 'not a regular file or directory' });
  }
  return { names, rejected };
}

/** Stats one snapshot without reading file contents. Throws snapshot_gone when it no longer exists. */
export async function statSnapshot(backupDir: string, name: string): Promise<SnapshotStat> {
  const root = path.join(backupDir, name);
  const rootStat = await lstatOrGone(root, name);
  if (rootStat.isFile()) {
    const file: FileStat = { path: name, size: rootStat.size, mtimeMs: rootStat.mtimeMs, ctimeMs: rootStat.ctimeMs, dev: rootStat.dev, ino: rootStat.ino };
    return { name, kind: 'file', files: [file], skipped: [], newestChangeMs: rootStat.ctimeMs, timeMs: timeFromName(name) ?? rootStat.mtimeMs };
  }
  // Not "gone": the entry is there, and reporting it as pruned would count a loss that is not one.
  if (rootStat.isSymbolicLink()) throw new AppError('bad_input', `${name} is a symbolic link; memsync does not follow links`, { hint: SYMLINK_HINT });
  if (!rootStat.isDirectory()) throw new AppError('bad_input', `${name} is not a regular file or directory`);

  const files: FileStat[] = [];
  const skipped: string[] = [];
  let newestChangeMs = rootStat.ctimeMs;
  const walk = async (relativeDir: string, depth: number): Promise<void> => {
    const absoluteDir = relativeDir === '' ? root : path.join(root, relativeDir);
    // The snapshot's own folder was stat'ed above: one lstat less per snapshot in a sweep of thousands.
    if (relativeDir !== '') newestChangeMs = Math.max(newestChangeMs, (await lstatOrGone(absoluteDir, name)).ctimeMs);
    let entries;
    try {
      entries = await readdir(absoluteDir, { withFileTypes: true });
    } catch (error) {
      throw translateFsError(error, name, absoluteDir);
    }
    for (const entry of entries) {
      const relative = relativeDir === '' ? entry.name : `${relativeDir}/${entry.name}`;
      if (relativeDir === '' && manifestFormatOf(entry.name) !== undefined) continue;
      if (entry.isDirectory() && depth < MAX_DEPTH) {
        await walk(relative, depth + 1);
      } else if (entry.isFile()) {
        const stat = await lstatOrGone(path.join(root, relative), name);
        files.push({ path: relative, size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs, dev: stat.dev, ino: stat.ino });
        newestChangeMs = Math.max(newestChangeMs, stat.ctimeMs);
      } else {
        skipped.push(relative);
      }
    }
  };
  await walk('', 0);
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const newestMtime = files.reduce((max, f) => Math.max(max, f.mtimeMs), rootStat.mtimeMs);
  return { name, kind: 'directory', files, skipped, newestChangeMs, timeMs: timeFromName(name) ?? newestMtime };
}

/** Two stats describe the same content state when every file has the same size, mtime and ctime. */
export function sameFingerprint(a: SnapshotStat, b: SnapshotStat): boolean {
  if (a.kind !== b.kind || a.files.length !== b.files.length || a.newestChangeMs !== b.newestChangeMs) return false;
  return a.files.every((file, i) => {
    const other = b.files[i];
    return other !== undefined && other.path === file.path && other.size === file.size && other.mtimeMs === file.mtimeMs && other.ctimeMs === file.ctimeMs;
  });
}

async function lstatOrGone(absolutePath: string, snapshot: string) {
  try {
    return await lstat(absolutePath);
  } catch (error) {
    throw translateFsError(error, snapshot, absolutePath);
  }
}

function translateFsError(error: unknown, snapshot: string, absolutePath: string): AppError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new AppError('snapshot_gone', `${snapshot} was removed while being read`, { cause: error });
  return new AppError('local_io', `cannot read ${absolutePath}: ${code ?? String(error)}`, { cause: error, hint: 'check the file permissions of the backup directory' });
}

/** statSnapshot, or undefined when there is no such snapshot (any more). */
export async function statSnapshotIfPresent(backupDir: string, name: string): Promise<SnapshotStat | undefined> {
  try {
    return await statSnapshot(backupDir, name);
  } catch (error) {
    if (error instanceof AppError && error.kind === 'snapshot_gone') return undefined;
    throw error;
  }
}
