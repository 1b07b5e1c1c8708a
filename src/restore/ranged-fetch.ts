import { finished, type Readable } from 'node:stream';
import { AppError, isAppError } from '../errors.js';
import { planRanges } from '../remote/byte-ranges.js';
import type { ByteRange, RemoteStore } from '../remote/store.js';

/**
 * Fetches an object as ranged GETs in parallel and writes each range at its offset as its bytes
 * arrive. The bytes are not copied: network chunks are gathered into one vectored write of about
 * WRITE_BATCH_BYTES. Nothing here hashes; the caller learns of every completed write (onWritten)
 * and hashes the file in order from what is written.
 */

export interface RangedFetchOptions {
  rangeBytes: number;
  /** Only these parts of the object (see FileDownloadOptions.ranges); default all of it. */
  ranges?: readonly ByteRange[];
  rangesInFlight: number;
  signal: AbortSignal | undefined;
  /** Told of every chunk as it arrives (progress). */
  onBytes: (bytes: number) => void;
  /** Told once [position, position + length) is written. */
  onWritten: (position: number, length: number) => void;
}

/** The file side: a positional, vectored write (FileHandle has it). */
export interface PositionalWriter {
  writev(buffers: Buffer[], position: number): Promise<{ bytesWritten: number }>;
}

/** Network chunks are 16 to 64 KiB: a write per chunk would cost a thread-pool round trip each. */
const WRITE_BATCH_BYTES = 1024 * 1024; // 1 MiB
/** Below the usual IOV_MAX of 1,024 entries, whatever the chunk sizes. */
const WRITE_BATCH_CHUNKS = 256;
/** Writes of one range in flight before its body is paused: bounds memory to about this many batches per range. */
const WRITES_IN_FLIGHT = 2;

export async function fetchRangesToFile(store: RemoteStore, key: string, sizeBytes: number, file: PositionalWriter, options: RangedFetchOptions): Promise<void> {
  const ranges = planRanges(sizeBytes, options.rangeBytes, options.ranges);
  const count = ranges.length;
  const stop = new AbortController();
  const abortAll = (): void => stop.abort(options.signal?.reason);
  if (options.signal?.aborted === true) abortAll();
  options.signal?.addEventListener('abort', abortAll, { once: true });
  const started: Promise<void>[] = [];
  let next = 0;
  const fetchFrom = async (): Promise<void> => {
    while (next < count && !stop.signal.aborted) {
      const range = ranges[next] as ByteRange;
      next += 1;
      const start = range.start;
      const length = range.end - range.start;
      const body = await store.getRange(key, start, start + length - 1, stop.signal);
      await receiveRange(body, key, start, length, file, { ...options, signal: stop.signal });
    }
  };
  try {
    for (let lane = 0; lane < Math.min(options.rangesInFlight, count); lane += 1) started.push(fetchFrom());
    // The first failure stops the other lanes; every lane has finished before the file may be closed.
    await Promise.all(started.map((lane) => lane.catch((error: unknown) => {
      stop.abort(error);
      throw error;
    })));
  } finally {
    stop.abort();
    options.signal?.removeEventListener('abort', abortAll);
    await Promise.allSettled(started);
  }
}

/**
 * Writes one range's body at `start` as it streams, in vectored batches. More bytes than asked
 * for, or fewer, is an integrity failure: the server sent another range, or the body ended early.
 */
export function receiveRange(body: Readable, key: string, start: number, length: number, file: PositionalWriter, options: Pick<RangedFetchOptions, 'onBytes' | 'onWritten' | 'signal'>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let received = 0;
    let batch: Buffer[] = [];
    let batchBytes = 0;
    let writing = 0;
    let bodyEnded = false;
    let failure: unknown;

    const fail = (error: unknown): void => {
      if (failure !== undefined) return;
      failure = error;
      body.destroy();
      settle();
    };
    const settle = (): void => {
      if (writing > 0) return; // a write still uses the file
      if (failure !== undefined) reject(failure);
      else if (bodyEnded) {
        if (received === length) resolve();
        else reject(new AppError('integrity', `${key}: range ${start}-${start + length - 1} ended after ${received} bytes`));
      }
    };
    const flush = (): void => {
      if (batchBytes === 0) return;
      const buffers = batch;
      const position = start + received - batchBytes;
      const bytes = batchBytes;
      batch = [];
      batchBytes = 0;
      writing += 1;
      writeFully(file, buffers, bytes, position).then(
        () => {
          writing -= 1;
          if (failure === undefined) options.onWritten(position, bytes);
          if (writing < WRITES_IN_FLIGHT && !bodyEnded && failure === undefined) body.resume();
          settle();
        },
        (error: unknown) => {
          writing -= 1;
          fail(error);
        },
      );
      if (writing >= WRITES_IN_FLIGHT) body.pause();
    };

    const onAbort = (): void => fail(options.signal?.reason ?? new Error('aborted'));
    if (options.signal?.aborted === true) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    body.on('data', (chunk: Buffer) => {
      if (failure !== undefined) return;
      if (received + chunk.length > length) {
        fail(new AppError('integrity', `${key}: range ${start}-${start + length - 1} came back longer than the ${length} bytes asked for`));
        return;
      }
      received += chunk.length;
      batch.push(chunk);
      batchBytes += chunk.length;
      options.onBytes(chunk.length);
      if (batchBytes >= WRITE_BATCH_BYTES || batch.length >= WRITE_BATCH_CHUNKS) flush();
    });
    finished(body, (error) => {
      options.signal?.removeEventListener('abort', onAbort);
      if (error !== undefined && error !== null) {
        fail(isAppError(error) ? error : new AppError('remote_unavailable', `download ${key}: connection failed mid-body`, { cause: error }));
        return;
      }
      bodyEnded = true;
      flush();
      settle();
    });
  });
}

/** A vectored write; a short one (a full disk about to fail, a signal) is finished byte by byte range. */
export async function writeFully(file: PositionalWriter, buffers: Buffer[], bytes: number, position: number): Promise<void> {
  let written = (await file.writev(buffers, position)).bytesWritten;
  if (written === bytes) return;
  const rest = Buffer.concat(buffers, bytes);
  while (written < bytes) {
    const { bytesWritten } = await file.writev([rest.subarray(written)], position + written);
    if (bytesWritten === 0) throw new Error(`write at ${position + written} made no progress`);
    written += bytesWritten;
  }
}
