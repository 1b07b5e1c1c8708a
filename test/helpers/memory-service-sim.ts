// The memory service's way of writing backups (demo/backup-writer.ts), plus what only tests need:
// a file left half-written on purpose.
import { mkdir, open, utimes } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SOURCE_MTIME, writeFully } from '../../demo/backup-writer.js';

export * from '../../demo/backup-writer.js';

const DEFAULT_CHUNK_BYTES = 64 * 1024;

export interface FinishOptions {
  chunkBytes?: number;
  pauseBetweenChunksMs?: number;
  /** The mtime set once the file is complete (cp -p); default SOURCE_MTIME; null: leave it. */
  sourceMtime?: Date | null;
}

/**
 * Starts a file and leaves it half-written: `firstBytes` are on disk, the file stays open.
 * The returned function writes the rest (in chunks, with pauses if asked), closes the file
 * and copies the source mtime, as the service's copy would on completion.
 */
export async function startHalfWrittenFile(filePath: string, firstBytes: Buffer): Promise<(rest: Buffer, options?: FinishOptions) => Promise<void>> {
  await mkdir(path.dirname(filePath), { recursive: true });
  const handle = await open(filePath, 'w');
  try {
    await writeFully(handle, firstBytes);
  } catch (error) {
    await handle.close();
    throw error;
  }
  let finished = false;
  return async (rest, options = {}) => {
    if (finished) throw new Error(`${filePath} is already finished`);
    finished = true;
    const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    try {
      for (let offset = 0; offset < rest.length; offset += chunkBytes) {
        if (options.pauseBetweenChunksMs !== undefined && options.pauseBetweenChunksMs > 0) await sleep(options.pauseBetweenChunksMs);
        await writeFully(handle, rest.subarray(offset, offset + chunkBytes));
      }
    } finally {
      await handle.close();
    }
    const mtime = options.sourceMtime === undefined ? SOURCE_MTIME : options.sourceMtime;
    if (mtime !== null) await utimes(filePath, mtime, mtime);
  };
}
