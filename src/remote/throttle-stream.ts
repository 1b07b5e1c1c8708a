import { Readable, Transform, type TransformCallback } from 'node:stream';
import { THROTTLE_SLICE_BYTES, type BandwidthLimiter } from './bandwidth-bucket.js';

/**
 * Streams that let bytes through no faster than a BandwidthLimiter allows. They hold at most one
 * incoming chunk (a socket read, or a slice of an in-memory body), never a whole body, and a
 * stream destroyed while it waits for tokens stops waiting at once and gives its tokens back.
 */

/** A body already in memory (a multipart part, a small file), read out slice by slice as tokens come. */
export class ThrottledBufferReadable extends Readable {
  private offset = 0;
  private readonly stop = new AbortController();

  constructor(
    private readonly bytes: Uint8Array,
    private readonly limiter: BandwidthLimiter,
  ) {
    super();
  }

  override _read(): void {
    if (this.offset >= this.bytes.byteLength) {
      this.push(null);
      return;
    }
    const slice = this.bytes.subarray(this.offset, this.offset + THROTTLE_SLICE_BYTES);
    this.offset += slice.byteLength;
    this.limiter.take(slice.byteLength, this.stop.signal).then(
      () => void this.push(slice),
      (error: unknown) => void this.destroy(error instanceof Error ? error : new Error(String(error))),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.stop.abort();
    callback(error);
  }
}

/** Passes a stream's chunks on in slices, each after its tokens are taken. */
export class ThrottleTransform extends Transform {
  private readonly stop = new AbortController();

  constructor(private readonly limiter: BandwidthLimiter) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.passOn(chunk).then(
      () => callback(),
      (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
    );
  }

  private async passOn(chunk: Buffer): Promise<void> {
    for (let offset = 0; offset < chunk.byteLength; offset += THROTTLE_SLICE_BYTES) {
      const slice = chunk.subarray(offset, offset + THROTTLE_SLICE_BYTES);
      await this.limiter.take(slice.byteLength, this.stop.signal);
      this.push(slice);
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.stop.abort();
    callback(error);
  }
}
