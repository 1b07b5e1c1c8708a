import { open, type FileHandle } from 'node:fs/promises';
import { pipeline, type Readable } from 'node:stream';
import type { Keyring } from '../crypto/keys.js';
import { noKeyConfigured } from '../crypto/keys.js';
import { DecryptStream } from '../crypto/streams.js';
import { AppError, isAppError } from '../errors.js';
import type { ByteRange, PartRetryOptions, RemoteStore } from '../remote/store.js';
import { checkObject, ObjectDigester, type ObjectDigest, type Verification } from '../snapshot/object-check.js';
import { FileHasher } from './file-hasher.js';
import type { LocalFile } from '../snapshot/safe-open.js';
import { copyLocalRuns, planLocalBase, type LocalBase, type LocalReuse } from './local-base.js';
import { fetchRangesToFile, type PositionalWriter } from './ranged-fetch.js';
import type { ExpectedFile } from './remote-snapshot.js';
import { WrittenExtents } from './written-extents.js';

export type { Verification } from '../snapshot/object-check.js';

const WRITE_BATCH_BYTES = 1024 * 1024; // 1 MiB

/** Plain objects at least this large are fetched as parallel ranges: one GET stream is slower than the disk and the hash. */
export const RANGED_FROM_BYTES = 64 * 1024 * 1024;
/**
 * Large, because each GET costs the S3 client a few milliseconds of CPU (about what 2 to 3 MiB
 * of body cost); the bytes go to the file as they arrive, so the range size does not bound memory.
 */
export const RANGE_BYTES = 32 * 1024 * 1024;
const RANGES_IN_FLIGHT = 4;
/** Written bytes after which a data sync starts in the background. */
const FLUSH_EVERY_BYTES = 64 * 1024 * 1024;

export interface DownloadOptions {
  signal: AbortSignal | undefined;
  /** Told of the bytes received, for progress. */
  onBytes: (bytes: number) => void;
  /** The configured key; omitted: an encrypted object is refused. */
  keyring?: Keyring | undefined;
  /** Retries of one range of a large file cut in transit, where the store fetches ranges on a thread of its own. */
  rangeRetry: PartRetryOptions;
  /** An earlier version of the file on the local disk, whose unchanged runs are copied instead of fetched (see local-base.ts). */
  localBase?: LocalBase | undefined;
  /** Told how much of the file the local base gave, once planned. */
  onLocalReuse?: (reuse: LocalReuse) => void;
}

/**
 * Downloads one object to a local file, fsyncs it, and checks it against what it must be.
 * Nothing unverified is ever reported as a success.
 */
export async function downloadVerified(store: RemoteStore, key: string, targetPath: string, expected: ExpectedFile, options: DownloadOptions): Promise<Verification> {
  // Bytes taken from a local file are proved only by the manifest's SHA-256 of the whole.
  const base = expected.encrypted || expected.sha256 === undefined ? undefined : options.localBase;
  const ranged = !expected.encrypted && (expected.size >= RANGED_FROM_BYTES || base !== undefined);
  const body = ranged ? undefined : plaintextOf(await store.get(key, options.signal), key, expected, options.keyring);
  // Readable too: the ranged path hashes what it wrote by reading it back.
  const handle = await open(targetPath, 'wx+', 0o644).catch((error: unknown) => {
    body?.destroy();
    throw localError(error, targetPath);
  });
  try {
    const digest = body === undefined ? await fetchRangedAndHash(store, key, handle, targetPath, expected, { ...options, localBase: base }) : await streamAndHash(body, key, handle, targetPath, expected, options.onBytes);
    const check = checkObject(expected, digest);
    if (!check.ok) throw new AppError('integrity', `${key}: ${check.reason}`);
    return check.verification;
  } finally {
    await handle.close();
  }
}

/**
 * Ranges written at their offsets as they arrive: by the store on a thread of its own where it
 * can (downloadRangesToFile), else here (see ranged-fetch.ts), and beside them the runs a local
 * earlier version holds, copied from it. Another thread hashes the file in order behind them, as
 * far as it is written, by reading it back: the check covers what the file holds, wherever each
 * byte was written from, and the hash costs the transfer no time.
 */
async function fetchRangedAndHash(store: RemoteStore, key: string, handle: FileHandle, targetPath: string, expected: ExpectedFile, options: DownloadOptions): Promise<ObjectDigest> {
  // Planned before the hashing thread starts: a base that cannot be read then leaves nothing running.
  const reuse = options.localBase === undefined ? undefined : await planLocalBase(options.localBase, expected.size, options);
  const hasher = startHasher(handle, expected, key, reuse?.source);
  const flusher = new BackgroundFlush(handle);
  const written = new WrittenExtents();
  const onWritten = (position: number, length: number): void => {
    flusher.written(length);
    hasher.advance(written.add(position, length));
  };
  // A failed local copy stops the download, and a failed download the local copy.
  const stop = new AbortController();
  const signal = options.signal === undefined ? stop.signal : AbortSignal.any([options.signal, stop.signal]);
  try {
    try {
      const fetch = (): Promise<void> => {
        if (reuse?.plan.fetches.length === 0) return Promise.resolve();
        const threaded = store.downloadRangesToFile?.(key, {
          fd: handle.fd,
          sizeBytes: expected.size,
          ...(reuse === undefined ? {} : { ranges: reuse.plan.fetches }),
          rangeBytes: RANGE_BYTES,
          rangesInFlight: RANGES_IN_FLIGHT,
          signal,
          // Progress counts written bytes: a range resumed after a cut is not counted twice.
          onWritten: (position, length) => {
            options.onBytes(length);
            onWritten(position, length);
          },
          rangeRetry: options.rangeRetry,
        });
        return threaded ?? fetchRangesHere(store, key, handle, targetPath, expected.size, { ...options, signal, ranges: reuse?.plan.fetches }, onWritten);
      };
      const copy = async (): Promise<void> => {
        if (reuse === undefined) return;
        const writeAt = async (bytes: Buffer, position: number): Promise<void> => {
          await writeFully(handle, bytes, position, targetPath);
          options.onBytes(bytes.length);
          onWritten(position, bytes.length);
        };
        await copyLocalRuns(reuse.source, reuse.base, reuse.plan.copies, writeAt, signal);
      };
      const stopOnFailure = (error: unknown): never => {
        stop.abort(error);
        throw error;
      };
      // Both must have ended before the files are closed; the first failure is the one to report.
      const ended = await Promise.allSettled([Promise.resolve().then(fetch).catch(stopOnFailure), copy().catch(stopOnFailure)]);
      const failed = ended.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failed !== undefined) throw stop.signal.aborted ? stop.signal.reason : failed.reason;
    } catch (error) {
      if (isAppError(error)) throw error;
      throw new AppError('remote_unavailable', `download ${key}: connection failed mid-body`, { cause: error });
    } finally {
      await reuse?.source.close();
    }
    // The sync and the hash of the last bytes read them from the page cache side by side.
    const [digest] = await Promise.all([hasher.finish(written.prefixBytes), syncFile(handle, flusher, targetPath)]);
    return digest;
  } finally {
    await flusher.settle().catch(() => undefined);
    // The thread reads through this descriptor: it must have ended before the file is closed.
    await hasher.close();
  }
}

/** The hashing thread; the local base's file is closed if it cannot start. */
function startHasher(handle: FileHandle, expected: ExpectedFile, key: string, baseFile: LocalFile | undefined): FileHasher {
  try {
    return new FileHasher(handle.fd, expected, key);
  } catch (error) {
    void baseFile?.close();
    throw error;
  }
}

async function writeFully(handle: FileHandle, bytes: Buffer, position: number, targetPath: string): Promise<void> {
  for (let offset = 0; offset < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset, position + offset).catch((error: unknown) => {
      throw localError(error, targetPath);
    });
    offset += bytesWritten;
  }
}

/** The ranges fetched and written on this thread (stores without a download thread, or limited in bandwidth). */
function fetchRangesHere(
  store: RemoteStore,
  key: string,
  handle: FileHandle,
  targetPath: string,
  sizeBytes: number,
  options: Pick<DownloadOptions, 'signal' | 'onBytes'> & { ranges: readonly ByteRange[] | undefined },
  onWritten: (position: number, length: number) => void,
): Promise<void> {
  const file: PositionalWriter = {
    writev: (buffers, position) =>
      handle.writev(buffers, position).catch((error: unknown) => {
        throw localError(error, targetPath);
      }),
  };
  return fetchRangesToFile(store, key, sizeBytes, file, {
    rangeBytes: RANGE_BYTES,
    ...(options.ranges === undefined ? {} : { ranges: options.ranges }),
    rangesInFlight: RANGES_IN_FLIGHT,
    signal: options.signal,
    onBytes: options.onBytes,
    onWritten,
  });
}

/** One GET, hashed on this thread as it streams (smaller objects, and encrypted ones that are decrypted on the way). */
async function streamAndHash(body: Readable, key: string, handle: FileHandle, targetPath: string, expected: ExpectedFile, onBytes: (bytes: number) => void): Promise<ObjectDigest> {
  const digester = new ObjectDigester(expected);
  const flusher = new BackgroundFlush(handle);
  const writeAt = async (data: Buffer, position: number): Promise<void> => {
    await writeFully(handle, data, position, targetPath);
    flusher.written(data.length);
  };
  try {
    try {
      await streamInOrder(body, writeAt, (chunk) => {
        digester.update(chunk);
        onBytes(chunk.length);
      });
    } catch (error) {
      if (isAppError(error)) throw error;
      throw new AppError('remote_unavailable', `download ${key}: connection failed mid-body`, { cause: error });
    }
    await syncFile(handle, flusher, targetPath);
  } finally {
    await flusher.settle().catch(() => undefined);
  }
  return digester.digest();
}

async function syncFile(handle: FileHandle, flusher: BackgroundFlush, targetPath: string): Promise<void> {
  await flusher.settle();
  await handle.sync().catch((error: unknown) => {
    throw localError(error, targetPath);
  });
}

/** One GET, written in 1 MiB batches: network chunks are 16 to 64 KiB, and an awaited write each would cost a thread-pool round trip per chunk. */
async function streamInOrder(body: Readable, writeAt: (data: Buffer, position: number) => Promise<void>, onChunk: (chunk: Buffer) => void): Promise<void> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let position = 0;
  const flush = async (): Promise<void> => {
    const data = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    await writeAt(data, position);
    position += data.length;
  };
  for await (const chunk of body as AsyncIterable<Buffer>) {
    onChunk(chunk);
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes >= WRITE_BATCH_BYTES) await flush();
  }
  if (pendingBytes > 0) await flush();
}

/**
 * The object's bytes as they were before upload: decrypted when it is stored encrypted (a
 * tampered or truncated object fails inside the stream, naming the object).
 */
export function plaintextOf(body: Readable, key: string, expected: { encrypted: boolean }, keyring: Keyring | undefined): Readable {
  if (!expected.encrypted) return body;
  if (keyring === undefined) {
    body.destroy();
    throw noKeyConfigured(key);
  }
  const decrypt = new DecryptStream(keyring, key);
  pipeline(body, decrypt, () => undefined);
  return decrypt;
}

function localError(error: unknown, targetPath: string): AppError {
  if (isAppError(error)) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const hint = code === 'ENOSPC' ? 'the disk holding the backup directory is full' : undefined;
  return new AppError('local_io', `cannot write ${targetPath}: ${code ?? String(error)}`, { cause: error, retryable: false, hint });
}

/**
 * Starts fdatasync in the background as data accumulates, so the disk writes while the network
 * delivers instead of all at once in the final fsync (the page cache would otherwise hold a GB
 * of dirty data until then). Only a speed-up: the final fsync is what makes the file durable,
 * and a failed background sync surfaces there too, as the kernel reports it again.
 */
class BackgroundFlush {
  private unflushedBytes = 0;
  private running: Promise<void> | undefined;

  constructor(private readonly handle: FileHandle) {}

  written(bytes: number): void {
    this.unflushedBytes += bytes;
    if (this.unflushedBytes < FLUSH_EVERY_BYTES || this.running !== undefined) return;
    this.unflushedBytes = 0;
    this.running = this.handle.datasync().then(
      () => {
        this.running = undefined;
      },
      () => {
        this.running = undefined;
      },
    );
  }

  async settle(): Promise<void> {
    await this.running;
  }
}
