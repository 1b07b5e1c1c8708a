import { createHash } from 'node:crypto';
import { AppError } from '../errors.js';
import { openLocalFile } from '../snapshot/safe-open.js';

const READ_BYTES = 1024 * 1024; // 1 MiB

/**
 * The SHA-256 of a file already in the backup directory, to compare a local snapshot with a
 * remote manifest. Only the SHA-256: the MD5s an upload needs (digestFile) would double the work.
 * A file that reads to another length than `sizeBytes` changed underneath and is reported so.
 */
export async function sha256OfLocalFile(absolutePath: string, sizeBytes: number): Promise<string> {
  const file = await openLocalFile(absolutePath);
  try {
    const hash = createHash('sha256');
    // No larger than the file (+1 to see it grew): thousands of small files must not each take a MiB.
    const buffer = Buffer.allocUnsafe(Math.min(READ_BYTES, sizeBytes + 1));
    let position = 0;
    for (let bytesRead = await file.read(buffer, 0, buffer.length, 0); bytesRead > 0; bytesRead = await file.read(buffer, 0, buffer.length, position)) {
      hash.update(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
    if (position !== sizeBytes) throw new AppError('snapshot_gone', `${absolutePath} changed size while being read (${sizeBytes} -> ${position} bytes)`);
    return hash.digest('hex');
  } finally {
    await file.close();
  }
}
