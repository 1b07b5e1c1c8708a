import { open, type FileHandle } from 'node:fs/promises';
import { pipeline, type Readable } from 'node:stream';
import { consumeBody } from '../remote/body.js';
import type { Keyring } from '../crypto/keys.js';
import { noKeyConfigured } from '../crypto/keys.js';
import { DecryptStream } from '../crypto/streams.js';
import { AppError, isAppError } from '../errors.js';
import type { RemoteStore } from '../remote/store.js';
import { checkObject, ObjectDigester, type Verification } from '../snapshot/object-check.js';
import type { ExpectedFile } from './remote-snapshot.js';

export type { Verification } from '../snapshot/object-check.js';

const WRITE_BATCH_BYTES = 1024 * 1024; // 1 MiB

/** Plain objects at least this large are fetched as parallel ranges: one GET stream is slower than the disk and the hash. */
export const RANGED_FROM_BYTES = 64 * 1024 * 1024;
const RANGE_BYTES = 8 * 1024 * 1024;
/** Ranges fetched ahead of the one being hashed: bounds memory to about this many ranges. */
const RANGES_IN_FLIGHT = 4;
/** Written bytes after which a data sync starts in the background. */
const FLUSH_EVERY_BYTES = 64 * 1024 * 1024;

/**
 * Downloads one object to a local file while hashing it, fsyncs it, and checks it against
 * what it must be. Nothing unverified is ever reported as a success.
 */
export async function downloadVerified(
  store: RemoteStore,
  key: string,
  targetPath: string,
  expected: ExpectedFile,
  signal: AbortSignal | undefined,
  onBytes: (bytes: number) => void,
  keyring?: Keyring,
): Promise<Verification> {
  const digester = new ObjectDigester(expected);
  const ranged = !expected.encrypted && expected.size >= RANGED_FROM_BYTES;
  const body = ranged ? undefined : plaintextOf(await store.get(key, signal), key, expected, keyring);
  const handle = await open(targetPath, 'wx', 0o644).catch((error: unknown) => {
    body?.destroy();
    throw localError(error, targetPath);
  });
  const flusher = new BackgroundFlush(handle);
  const writeAt = async (data: Buffer, position: number): Promise<void> => {
    for (let offset = 0; offset < data.length; ) {
      const { bytesWritten } = await handle.write(data, offset, data.length - offset, position + offset).catch((error: unknown) => {
        throw localError(error, targetPath);
      });
      offset += bytesWritten;
    }
    flusher.written(data.length);
  };
  const onChunk = (chunk: Buffer): void => {
    digester.update(chunk);
    onBytes(chunk.length);
  };
  try {
    try {
      if (body === undefined) await fetchRanges(store, key, expected.size, writeAt, onChunk, signal);
      else await streamInOrder(body, writeAt, onChunk);
    } catch (error) {
      if (isAppError(error)) throw error;
      throw new AppError('remote_unavailable', `download ${key}: connection failed mid-body`, { cause: error });
    }
    await flusher.settle();
    await handle.sync().catch((error: unknown) => {
      throw localError(error, targetPath);
    });
  } finally {
    await flusher.settle().catch(() => undefined);
    await handle.close();
  }
  const check = checkObject(expected, digester.digest());
  if (!check.ok) throw new AppError('integrity', `${key}: ${check.reason}`);
  return check.verification;
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
 * Ranged GETs in parallel, each written at its offset as it arrives; the hash, which needs the
 * bytes in order, takes the ranges one after another. Ranges are only started while they stay
 * within RANGES_IN_FLIGHT of the one being hashed, so memory is bounded whatever the size.
 */
async function fetchRanges(
  store: RemoteStore,
  key: string,
  size: number,
  writeAt: (data: Buffer, position: number) => Promise<void>,
  onChunk: (chunk: Buffer) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  const count = Math.ceil(size / RANGE_BYTES);
  const stop = new AbortController();
  const abortAll = (): void => stop.abort(signal?.reason);
  signal?.addEventListener('abort', abortAll, { once: true });
  // Range i and range i + RANGES_IN_FLIGHT never overlap in time (the second is launched once the
  // first is hashed), so one buffer per slot serves every range: no 8 MiB allocation per range, and far
  // less garbage for the collector than network chunks concatenated range by range.
  const slots = Array.from({ length: Math.min(RANGES_IN_FLIGHT, count) }, () => Buffer.allocUnsafe(Math.min(RANGE_BYTES, size)));
  const fetchRange = async (index: number): Promise<Buffer> => {
    const start = index * RANGE_BYTES;
    const end = Math.min(size, start + RANGE_BYTES) - 1;
    const slot = slots[index % slots.length] as Buffer;
    const received = await readInto(await store.getRange(key, start, end, stop.signal), slot, key);
    if (received !== end - start + 1) throw new AppError('integrity', `${key}: range ${start}-${end} came back with ${received} bytes`);
    const data = slot.subarray(0, received);
    await writeAt(data, start);
    return data;
  };
  const inFlight: Promise<Buffer>[] = [];
  const launch = (index: number): void => {
    const fetched = fetchRange(index);
    // Awaited in order below; a range failing while an earlier one is awaited must not go unhandled.
    fetched.catch(() => undefined);
    inFlight[index] = fetched;
  };
  try {
    for (let index = 0; index < Math.min(RANGES_IN_FLIGHT, count); index += 1) launch(index);
    for (let index = 0; index < count; index += 1) {
      const data = await (inFlight[index] as Promise<Buffer>);
      delete inFlight[index];
      // Hashed before the next range is launched: that range is read into this one's slot.
      onChunk(data);
      if (index + RANGES_IN_FLIGHT < count) launch(index + RANGES_IN_FLIGHT);
    }
  } finally {
    // On failure, the other ranges stop and finish before the file is closed under them.
    stop.abort();
    signal?.removeEventListener('abort', abortAll);
    await Promise.allSettled(inFlight.filter((p) => p !== undefined));
  }
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

/** Copies a body into `target`; more bytes than fit is an integrity failure (the server sent another range). */
async function readInto(body: Readable, target: Buffer, key: string): Promise<number> {
  let received = 0;
  await consumeBody(body, key, (chunk) => {
    if (received + chunk.length > target.length) {
      throw new AppError('integrity', `${key}: a range came back longer than the ${target.length} bytes asked for`);
    }
    chunk.copy(target, received);
    received += chunk.length;
  });
  return received;
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
