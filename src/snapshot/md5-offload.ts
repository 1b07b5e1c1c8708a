import { Worker } from 'node:worker_threads';
import { AppError, describeError } from '../errors.js';
import type { Md5ThreadReply, Md5ThreadRequest, Md5ThreadSetup } from './md5-thread.js';

/**
 * MD5s of a large file computed on other threads while the main thread reads the file and
 * takes its SHA-256 (and chunks it for delta uploads). A file is read once; every block goes
 * through every thread from the same shared memory, so nothing is copied. MD5 is the slowest
 * of the digests (about half SHA-256's rate where the CPU has SHA instructions), and a multipart
 * file needs it twice over (whole and per part): one thread takes each, so neither adds to the
 * time a large file takes to digest, and the HTTP API's thread keeps only its own share.
 */

export interface Md5Results {
  /** '' unless the whole-file MD5 was asked for. */
  md5: string;
  partMd5s: Buffer[];
}

export interface Md5OffloadOptions {
  /** 0: no per-part MD5s. */
  partSizeBytes: number;
  wholeMd5: boolean;
  slotBytes: number;
  slotCount: number;
}

/** The thread's own file, next to this one: .ts when run from the sources, .js when built. */
const THREAD_URL = new URL(import.meta.url.endsWith('.ts') ? './md5-thread.ts' : './md5-thread.js', import.meta.url);

export class Md5Offload {
  private readonly workers: Worker[];
  /** Per slot, the threads that have not yet hashed its current block. */
  private readonly pending: number[];
  private readonly slots: Buffer[];
  private readonly free: number[];
  private readonly waitingForSlot: ((slot: number) => void)[] = [];
  private readonly results: { md5: string; partMd5s: Uint8Array[] }[] = [];
  private allResults: ((results: Md5Results) => void) | undefined;
  private failure: Error | undefined;
  private readonly failed: Promise<never>;
  private fail!: (error: Error) => void;

  constructor(options: Md5OffloadOptions) {
    const shared = Array.from({ length: options.slotCount }, () => new SharedArrayBuffer(options.slotBytes));
    this.slots = shared.map((buffer) => Buffer.from(buffer));
    this.free = this.slots.map((_, index) => index);
    this.pending = this.slots.map(() => 0);
    this.failed = new Promise<never>((_, reject) => (this.fail = reject));
    this.failed.catch(() => undefined); // observed by whoever waits next
    const setups: Md5ThreadSetup[] = [];
    if (options.wholeMd5) setups.push({ slots: shared, partSizeBytes: 0, wholeMd5: true });
    if (options.partSizeBytes > 0) setups.push({ slots: shared, partSizeBytes: options.partSizeBytes, wholeMd5: false });
    this.workers = setups.map((setup) => {
      const worker = new Worker(THREAD_URL, { workerData: setup });
      worker.on('message', (reply: Md5ThreadReply) => this.onReply(reply));
      worker.on('error', (error) => this.stop(error));
      worker.on('exit', (code) => this.stop(new Error(`MD5 thread exited (code ${code})`)));
      return worker;
    });
  }

  /** A slot to read the next block into: waits while the threads still hash every slot. */
  async slot(): Promise<{ index: number; buffer: Buffer }> {
    const ready = this.free.pop();
    const index = ready ?? (await Promise.race([new Promise<number>((resolve) => this.waitingForSlot.push(resolve)), this.failed]));
    return { index, buffer: this.slots[index]! };
  }

  /** Hands the first `length` bytes of a slot to the threads; the slot is not touched until they are done with it. */
  submit(index: number, length: number): void {
    this.pending[index] = this.workers.length;
    this.post({ slot: index, length });
    if (this.workers.length === 0) this.freed(index);
  }

  /** Gives back a slot that was not submitted (the file ended). */
  release(index: number): void {
    this.freed(index);
  }

  /** The digests, once the threads have hashed every submitted block. */
  async finish(): Promise<Md5Results> {
    const done = new Promise<Md5Results>((resolve) => (this.allResults = resolve));
    this.post({ end: true });
    if (this.workers.length === 0) this.allResults?.({ md5: '', partMd5s: [] });
    return Promise.race([done, this.failed]);
  }

  /** Ends the threads; call once, whether or not the digest finished. */
  async close(): Promise<void> {
    this.failure ??= new Error('closed');
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  private post(request: Md5ThreadRequest): void {
    if (this.failure !== undefined) throw this.threadError(this.failure);
    for (const worker of this.workers) worker.postMessage(request);
  }

  private onReply(reply: Md5ThreadReply): void {
    if ('freed' in reply) {
      this.pending[reply.freed] = (this.pending[reply.freed] ?? 1) - 1;
      if (this.pending[reply.freed] === 0) this.freed(reply.freed);
      return;
    }
    this.results.push(reply);
    if (this.results.length < this.workers.length) return;
    const md5 = this.results.find((result) => result.md5 !== '')?.md5 ?? '';
    const partMd5s = this.results.find((result) => result.partMd5s.length > 0)?.partMd5s ?? [];
    this.allResults?.({ md5, partMd5s: partMd5s.map((digest) => Buffer.from(digest)) });
  }

  private freed(index: number): void {
    const waiter = this.waitingForSlot.shift();
    if (waiter === undefined) this.free.push(index);
    else waiter(index);
  }

  private stop(error: Error): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.fail(this.threadError(error));
  }

  private threadError(error: Error): AppError {
    // Not the file's fault, and not expected: the snapshot fails this time and is retried.
    return new AppError('local_io', `hashing thread failed: ${describeError(error)}`, { cause: error, retryable: true });
  }
}

/** Blocks read ahead of the thread hashing a range, and their size (as for a file's digests). */
const RANGE_SLOTS = 4;
const RANGE_SLOT_BYTES = 4 * 1024 * 1024;

/**
 * The MD5 (hex) of bytes [start, start + length) of a file, read through `read` (which fills its
 * target from the position given, or throws) and hashed on a thread of its own, so the main
 * thread only waits for reads. Stops with AppError cancelled when `signal` aborts.
 */
export async function md5OfRangeOnThread(read: (target: Buffer, position: number) => Promise<void>, start: number, length: number, signal?: AbortSignal): Promise<string> {
  const md5s = new Md5Offload({ partSizeBytes: 0, wholeMd5: true, slotBytes: RANGE_SLOT_BYTES, slotCount: RANGE_SLOTS });
  try {
    for (let offset = 0; offset < length; ) {
      if (signal?.aborted === true) throw new AppError('cancelled', `MD5 of bytes ${start}-${start + length - 1}: stopped`);
      const slot = await md5s.slot();
      const bytes = Math.min(slot.buffer.length, length - offset);
      try {
        await read(slot.buffer.subarray(0, bytes), start + offset);
      } catch (error) {
        md5s.release(slot.index);
        throw error;
      }
      md5s.submit(slot.index, bytes);
      offset += bytes;
    }
    return (await md5s.finish()).md5;
  } finally {
    await md5s.close();
  }
}
