import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isAppError } from '../../src/errors.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { fetchRangesToFile, receiveRange, writeFully, type PositionalWriter } from '../../src/restore/ranged-fetch.js';

/** A file in memory that records every vectored write; `shortBy` makes each write take that many bytes fewer. */
class MemoryFile implements PositionalWriter {
  readonly bytes: Buffer;
  readonly writes: { position: number; length: number; buffers: number }[] = [];

  constructor(size: number, private readonly shortBy = 0) {
    this.bytes = Buffer.alloc(size);
  }

  async writev(buffers: Buffer[], position: number): Promise<{ bytesWritten: number }> {
    const data = Buffer.concat(buffers);
    const length = Math.max(1, data.length - this.shortBy);
    data.copy(this.bytes, position, 0, length);
    this.writes.push({ position, length, buffers: buffers.length });
    return { bytesWritten: length };
  }
}

const KEY = 'auto_20260101_000000/index.faiss';
const KIB = 1024;
const chunked = (bytes: Buffer, size: number): Readable => Readable.from(Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size)));
const noop = (): void => undefined;

describe('receiveRange', () => {
  it('writes a range at its offset in vectored batches and reports each write', async () => {
    const body = randomBytes(3 * 1024 * KIB + 5);
    const file = new MemoryFile(10 + body.length);
    const reported: [number, number][] = [];
    let received = 0;
    await receiveRange(chunked(body, 64 * KIB), KEY, 10, body.length, file, { signal: undefined, onBytes: (n) => (received += n), onWritten: (p, l) => reported.push([p, l]) });
    expect(file.bytes.subarray(10).equals(body)).toBe(true);
    expect(received).toBe(body.length);
    // 1 MiB batches of 16 network chunks each, the tail in a last write.
    expect(file.writes.map((w) => w.buffers)).toEqual([16, 16, 16, 1]);
    expect(reported.reduce((sum, [, length]) => sum + length, 0)).toBe(body.length);
    expect(reported[0]).toEqual([10, 1024 * KIB]);
  });

  it('refuses a body that ends before the range does, once its writes are done', async () => {
    const file = new MemoryFile(100);
    const error = await receiveRange(chunked(randomBytes(60), 16), KEY, 0, 100, file, { signal: undefined, onBytes: noop, onWritten: noop }).catch((e: unknown) => e);
    expect(isAppError(error, 'integrity')).toBe(true);
    expect(String(error)).toContain('ended after 60 bytes');
  });

  it('refuses a body longer than the range asked for', async () => {
    const file = new MemoryFile(100);
    const error = await receiveRange(chunked(randomBytes(120), 16), KEY, 0, 100, file, { signal: undefined, onBytes: noop, onWritten: noop }).catch((e: unknown) => e);
    expect(isAppError(error, 'integrity')).toBe(true);
  });

  it('turns a connection that breaks mid-body into a retryable remote failure', async () => {
    const body = new PassThrough();
    const done = receiveRange(body, KEY, 0, 100, new MemoryFile(100), { signal: undefined, onBytes: noop, onWritten: noop }).catch((e: unknown) => e);
    body.write(randomBytes(10));
    body.destroy(new Error('ECONNRESET'));
    const error = await done;
    expect(isAppError(error, 'remote_unavailable')).toBe(true);
    expect(isAppError(error) && error.retryable).toBe(true);
  });

  it('stops reading when aborted, and destroys the body', async () => {
    const body = new PassThrough();
    const abort = new AbortController();
    const done = receiveRange(body, KEY, 0, 100, new MemoryFile(100), { signal: abort.signal, onBytes: noop, onWritten: noop }).catch((e: unknown) => e);
    body.write(randomBytes(10));
    abort.abort(new Error('stopped'));
    expect(String(await done)).toContain('stopped');
    expect(body.destroyed).toBe(true);
  });
});

describe('writeFully', () => {
  it('finishes a short vectored write', async () => {
    const file = new MemoryFile(40, 7);
    const data = randomBytes(40);
    await writeFully(file, [data.subarray(0, 25), data.subarray(25)], 40, 0);
    expect(file.bytes.equals(data)).toBe(true);
    expect(file.writes.length).toBeGreaterThan(1);
  });
});

describe('fetchRangesToFile', () => {
  it('fetches every range of an object into its place, several at a time', async () => {
    const store = new MemoryRemoteStore();
    const object = randomBytes(1000);
    await store.put(KEY, () => object, { sizeBytes: object.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
    const file = new MemoryFile(object.length);
    await fetchRangesToFile(store, KEY, object.length, file, { rangeBytes: 300, rangesInFlight: 3, signal: undefined, onBytes: noop, onWritten: noop });
    expect(file.bytes.equals(object)).toBe(true);
    expect(file.writes.map((w) => w.position).sort((a, b) => a - b)).toEqual([0, 300, 600, 900]);
  });
});
