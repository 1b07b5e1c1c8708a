import { stat } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../errors.js';

/**
 * Commands that read or write the backup directory check first that it is one (or can become
 * one), so a file in its place is reported as the configuration mistake it is, naming the
 * variable, instead of surfacing later as a bare ENOTDIR or EEXIST from a system call.
 */

const HINT = 'point CLOUD_SYNC_BACKUP_DIR at a directory (the one the memory service writes its backups to), or move the file aside';

export async function requireBackupDirectory(dir: string): Promise<void> {
  const found = await kindOf(dir);
  if (found === 'directory' || found === 'unknown') return;
  if (found === 'other') throw new AppError('config', `CLOUD_SYNC_BACKUP_DIR=${dir} is a file, not a directory`, { hint: HINT });
  // Missing: a download creates it, unless something on the way is a file.
  for (let ancestor = path.dirname(dir); ; ancestor = path.dirname(ancestor)) {
    const kind = await kindOf(ancestor);
    if (kind === 'other') throw new AppError('config', `CLOUD_SYNC_BACKUP_DIR=${dir} cannot be a directory: ${ancestor} is a file`, { hint: HINT });
    if (kind !== 'missing' || ancestor === path.dirname(ancestor)) return;
  }
}

/** 'unknown': it cannot be looked at (permissions); the command's own error will say so. */
async function kindOf(target: string): Promise<'directory' | 'other' | 'missing' | 'unknown'> {
  try {
    return (await stat(target)).isDirectory() ? 'directory' : 'other';
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'missing' : 'unknown';
  }
}
