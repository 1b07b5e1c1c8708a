import { Readable } from 'node:stream';
import type { GuardedFile } from './fs-operations.js';

/**
 * An object's bytes (or a range of them) as a stream, read from the file the store opened, each
 * read under the store's deadline: a read stream of Node's own would read without one, and a
 * hung mount would leave the download waiting for ever. The file is closed when the stream ends
 * or is destroyed.
 */

const CHUNK_BYTES = 1024 * 1024;

export class ObjectReadStream extends Readable {
  private position: number;

  /** Bytes `start` to `endExclusive` of `file`. */
  constructor(
    private readonly file: GuardedFile,
    start: number,
    private readonly endExclusive: number,
  ) {
    super({ highWaterMark: CHUNK_BYTES });
    this.position = start;
  }

  override _read(): void {
    const remaining = this.endExclusive - this.position;
    if (remaining <= 0) {
      this.push(null);
      return;
    }
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, remaining));
    this.file.read(chunk, 0, chunk.length, this.position).then(
      (bytesRead) => {
        // The consumer gave up meanwhile.
        if (this.destroyed) return;
        if (bytesRead === 0) {
          this.push(null);
          return;
        }
        this.position += bytesRead;
        this.push(bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead));
      },
      (error: unknown) => this.destroy(error as Error),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.file.close().then(
      () => callback(error),
      () => callback(error),
    );
  }
}
