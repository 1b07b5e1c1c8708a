import { open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../errors.js';

/**
 * Writes a file so that a crash at any moment leaves either the old or the new content:
 * temp file in the same directory, fsync, rename over, fsync the directory.
 */
export async function writeFileAtomic(filePath: string, content: string | Buffer): Promise<void> {
  const dir = path.dirname(filePath);
  const temp = path.join(dir, `.${path.basename(filePath)}.${process.pid}.${Date.now()}.tmp`);
  try {
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, filePath);
    await fsyncDirectory(dir);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    const code = (error as NodeJS.ErrnoException).code;
    throw new AppError('local_io', `cannot write ${filePath}: ${code ?? String(error)}`, { cause: error });
  }
}

export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Reads a JSON file; undefined when it does not exist. A corrupt file is reported, not trusted. */
export async function readJsonFile(filePath: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(filePath, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AppError('local_io', `cannot read ${filePath}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new AppError('local_io', `${filePath} is not valid JSON`, { cause: error });
  }
}
