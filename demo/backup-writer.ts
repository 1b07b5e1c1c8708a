// Writes backups the way the memory service does, so the demo and the agent tests exercise
// memsync against the real writing pattern rather than a convenient one:
//
// - a backup is a directory `{prefix}_{YYYYMMDD}_{HHMMSS}` (UTC), created with mkdir exist_ok:
//   a second backup within the same second reuses the directory and overwrites its files;
// - files are copied one after another, each written in chunks, then given the source file's
//   (older) mtime, as `cp -p` / shutil.copy2 do; there is no done-marker of any kind;
// - after a backup, pruning keeps the 10 most recent directories by mtime plus the 2 most
//   recent of every prefix, and deletes the rest recursively.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rm, stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface BackupFile {
  /** Relative path inside the backup directory ('/' separated). */
  name: string;
  bytes: Buffer;
}

export interface WriteBackupOptions {
  prefix: string;
  /** Time encoded in the name (UTC); default now. */
  time?: Date;
  files: BackupFile[];
  /** Pause after each file but the last (a slow copy of a large file set). */
  pauseBetweenFilesMs?: number;
  /** Size of one write; default 64 KiB. */
  chunkBytes?: number;
  /** Pause between two chunk writes of one file (a slow disk or a copy over the network). */
  pauseBetweenChunksMs?: number;
  /** The mtime copied from the source files; default SOURCE_MTIME. */
  sourceMtime?: Date;
}

export interface WrittenBackup {
  name: string;
  path: string;
  files: BackupFile[];
}

/** The fixed, older modification time the service's source files have (copied like cp -p). */
export const SOURCE_MTIME = new Date('2024-01-02T03:04:05.000Z');

const DEFAULT_CHUNK_BYTES = 64 * 1024;
const NAME_PATTERN = /^(.+)_(\d{8})_(\d{6})$/;

/** `{prefix}_{YYYYMMDD}_{HHMMSS}` in UTC, as the service names its backups. */
export function backupName(prefix: string, time: Date): string {
  const iso = time.toISOString(); // 2024-01-02T03:04:05.678Z
  return `${prefix}_${iso.slice(0, 10).replace(/-/g, '')}_${iso.slice(11, 19).replace(/:/g, '')}`;
}

/** The prefix of a backup name, or undefined for names the service does not write. */
export function prefixOf(name: string): string | undefined {
  return NAME_PATTERN.exec(name)?.[1];
}

/** Writes one backup exactly as the service does and returns its name. */
export async function writeBackup(dir: string, options: WriteBackupOptions): Promise<WrittenBackup> {
  const name = backupName(options.prefix, options.time ?? new Date());
  const backupPath = path.join(dir, name);
  await mkdir(backupPath, { recursive: true }); // exist_ok=True
  for (const [i, file] of options.files.entries()) {
    if (i > 0 && options.pauseBetweenFilesMs !== undefined && options.pauseBetweenFilesMs > 0) await sleep(options.pauseBetweenFilesMs);
    await copyFile(path.join(backupPath, ...file.name.split('/')), file.bytes, options);
  }
  return { name, path: backupPath, files: options.files };
}

/** One "cp -p": truncate-or-create, write in chunks, then copy the source's times. */
async function copyFile(target: string, bytes: Buffer, options: Pick<WriteBackupOptions, 'chunkBytes' | 'pauseBetweenChunksMs' | 'sourceMtime'>): Promise<void> {
  await mkdir(path.dirname(target), { recursive: true });
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const handle = await open(target, 'w');
  try {
    for (let offset = 0; offset < bytes.length; offset += chunkBytes) {
      if (offset > 0 && options.pauseBetweenChunksMs !== undefined && options.pauseBetweenChunksMs > 0) await sleep(options.pauseBetweenChunksMs);
      await writeFully(handle, bytes.subarray(offset, offset + chunkBytes));
    }
  } finally {
    await handle.close();
  }
  const mtime = options.sourceMtime ?? SOURCE_MTIME;
  await utimes(target, mtime, mtime);
}

export async function writeFully(handle: Awaited<ReturnType<typeof open>>, chunk: Buffer): Promise<void> {
  let written = 0;
  while (written < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, written, chunk.length - written);
    written += bytesWritten;
  }
}

export interface PruneResult {
  kept: string[];
  deleted: string[];
}

/**
 * The service's retention: the `keep` most recent backup directories by mtime, plus the 2
 * most recent of every prefix; everything else is deleted recursively. Entries that are not
 * backup directories (files, dot names, foreign names) are left alone.
 */
export async function prune(dir: string, keep = 10): Promise<PruneResult> {
  const entries = await readdir(dir, { withFileTypes: true });
  const backups: { name: string; prefix: string; mtimeMs: number }[] = [];
  for (const entry of entries) {
    const prefix = prefixOf(entry.name);
    if (!entry.isDirectory() || prefix === undefined || entry.name.startsWith('.')) continue;
    try {
      backups.push({ name: entry.name, prefix, mtimeMs: (await stat(path.join(dir, entry.name))).mtimeMs });
    } catch {
      // removed meanwhile
    }
  }
  // Newest first; the name (which carries the time) breaks mtime ties.
  backups.sort((a, b) => b.mtimeMs - a.mtimeMs || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
  const kept = new Set(backups.slice(0, keep).map((b) => b.name));
  const perPrefix = new Map<string, number>();
  for (const backup of backups) {
    const seen = perPrefix.get(backup.prefix) ?? 0;
    if (seen < 2) kept.add(backup.name);
    perPrefix.set(backup.prefix, seen + 1);
  }
  const deleted = backups.filter((b) => !kept.has(b.name)).map((b) => b.name);
  for (const name of deleted) await rm(path.join(dir, name), { recursive: true, force: true });
  return { kept: backups.filter((b) => kept.has(b.name)).map((b) => b.name), deleted };
}

export interface MemoryFileSetOptions {
  /** Number of memories in metadata.json. */
  memories: number;
  /** Size of index.faiss in bytes; omitted: no index file (a fresh service). */
  indexBytes?: number;
  /** Varies the content, so two sets with the same sizes differ. */
  seed?: string;
}

/** A realistic backup file set: metadata.json (N memories), config.json, optionally index.faiss. */
export function memoryFileSet(options: MemoryFileSetOptions): BackupFile[] {
  const seed = options.seed ?? randomBytes(4).toString('hex');
  const memories = Array.from({ length: options.memories }, (_, i) => ({
    id: `${seed}-${i.toString().padStart(6, '0')}`,
    text: `memory ${i} of ${seed}: the user prefers ${['tea', 'coffee', 'water', 'juice'][i % 4]} in the ${['morning', 'evening'][i % 2]}`,
    created_at: new Date(Date.UTC(2024, 0, 1) + i * 60_000).toISOString(),
    tags: [`tag${i % 7}`, `seed-${seed}`],
    vector_id: i,
  }));
  const files: BackupFile[] = [
    { name: 'metadata.json', bytes: Buffer.from(JSON.stringify({ version: 3, count: memories.length, memories }, null, 2)) },
    { name: 'config.json', bytes: Buffer.from(JSON.stringify({ embedding_model: 'all-MiniLM-L6-v2', dimension: 384, seed }, null, 2)) },
  ];
  if (options.indexBytes !== undefined) files.push({ name: 'index.faiss', bytes: randomBytes(options.indexBytes) });
  return files;
}
