import { Readable } from 'node:stream';

/**
 * A range of an open file as a stream, read chunk by chunk through the file's own `read` (which
 * bounds each read by a deadline: a read stream of Node's own would read without one, and a
 * hung mount or a FIFO would leave the consumer waiting for ever).
 */

/** What the stream reads through: a backup file (safe-open.ts) or a stored object (fs-operations.ts). */
export interface PositionalReader {
  /** Bytes read into `target` at `offset` from `position` of the file; 0 at its end. */
  read(target: Buffer, offset: number, length: number, position: number): Promise<number>;
}

const CHUNK_BYTES = 1024 * 1024;

export class RangeReadStream extends Readable {
  private position: number;

  /**
   * Bytes `start` to `endExclusive` of `file` (fewer if it ends sooner). `onDestroy` runs when
   * the stream ends or is destroyed (a store closes the file it opened for this stream alone).
   */
  constructor(
    private readonly file: PositionalReader,
    start: number,
    private readonly endExclusive: number,
    private readonly onDestroy?: () => Promise<void>,
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
        // The consumer gave up meanwhile (a failed or cancelled transfer).
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
    if (this.onDestroy === undefined) {
      callback(error);
      return;
    }
    // A failed close loses nothing: the stream only read.
    this.onDestroy().then(
      () => callback(error),
      () => callback(error),
    );
  }
}
