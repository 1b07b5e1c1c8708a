import { Worker } from 'node:worker_threads';
import { AppError, describeError } from '../errors.js';
import type { Md5ThreadReply, Md5ThreadRequest, Md5ThreadSetup } from './md5-thread.js';

/**
 * MD5s of a large file computed on a second thread while the main thread reads the file and
 * takes its SHA-256 (and chunks it for delta uploads). A file is read once; every block goes
 * through both threads from the same shared memory, so nothing is copied. MD5 is the slowest
 * of the digests (about half SHA-256's rate where the CPU has SHA instructions), and a whole
 * file needs it twice over (whole and per part): on its own thread it no longer adds to the
 * time a large file takes to digest, and the HTTP API's thread does half the work.
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
  private readonly worker: Worker;
  private readonly slots: Buffer[];
  private readonly free: number[] = [];
  private readonly waitingForSlot: ((slot: number) => void)[] = [];
  private result: ((results: Md5Results) => void) | undefined;
  private failure: Error | undefined;
  private readonly failed: Promise<never>;
  private fail!: (error: Error) => void;

  constructor(options: Md5OffloadOptions) {
    const shared = Array.from({ length: options.slotCount }, () => new SharedArrayBuffer(options.slotBytes));
    this.slots = shared.map((buffer) => Buffer.from(buffer));
    this.free = this.slots.map((_, index) => index);
    this.failed = new Promise<never>((_, reject) => (this.fail = reject));
    this.failed.catch(() => undefined); // observed by whoever waits next
    const setup: Md5ThreadSetup = { slots: shared, partSizeBytes: options.partSizeBytes, wholeMd5: options.wholeMd5 };
    this.worker = new Worker(THREAD_URL, { workerData: setup });
    this.worker.on('message', (reply: Md5ThreadReply) => this.onReply(reply));
    this.worker.on('error', (error) => this.stop(error));
    this.worker.on('exit', (code) => this.stop(new Error(`MD5 thread exited (code ${code})`)));
  }

  /** A slot to read the next block into: waits while the thread still hashes every slot. */
  async slot(): Promise<{ index: number; buffer: Buffer }> {
    const ready = this.free.pop();
    const index = ready ?? (await Promise.race([new Promise<number>((resolve) => this.waitingForSlot.push(resolve)), this.failed]));
    return { index, buffer: this.slots[index]! };
  }

  /** Hands the first `length` bytes of a slot to the thread; the slot is not touched until it frees it. */
  submit(index: number, length: number): void {
    this.post({ slot: index, length });
  }

  /** Gives back a slot that was not submitted (the file ended). */
  release(index: number): void {
    this.freed(index);
  }

  /** The digests, once the thread has hashed every submitted block. */
  async finish(): Promise<Md5Results> {
    const done = new Promise<Md5Results>((resolve) => (this.result = resolve));
    this.post({ end: true });
    return Promise.race([done, this.failed]);
  }

  /** Ends the thread; call once, whether or not the digest finished. */
  async close(): Promise<void> {
    this.failure ??= new Error('closed');
    await this.worker.terminate();
  }

  private post(request: Md5ThreadRequest): void {
    if (this.failure !== undefined) throw this.threadError(this.failure);
    this.worker.postMessage(request);
  }

  private onReply(reply: Md5ThreadReply): void {
    if ('freed' in reply) return this.freed(reply.freed);
    this.result?.({ md5: reply.md5, partMd5s: reply.partMd5s.map((digest) => Buffer.from(digest)) });
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
