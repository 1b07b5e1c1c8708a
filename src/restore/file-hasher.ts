import { Worker } from 'node:worker_threads';
import { AppError, describeError } from '../errors.js';
import { candidatePartSizes, multipartPartCount, type ExpectedObject, type ObjectDigest } from '../snapshot/object-check.js';
import type { FileHashReply, FileHashRequest, FileHashSetup } from './file-hash-thread.js';

/**
 * Hashes a file on another thread by reading it back in order, as far as it is written. A
 * restore writes ranges at their offsets as they arrive, in any order; the hash needs the bytes
 * in order, and it runs beside the downloads instead of on the thread that moves the bytes.
 * What is hashed is what the file holds, read after it was written, so the check covers the
 * write too. Whether the bytes are the right ones is still judged by checkObject.
 */

const READ_BYTES = 1024 * 1024; // 1 MiB
/** The thread holds two hashes and a read buffer (outside its heap): a small heap keeps a restore's memory where it was. */
const THREAD_LIMITS = { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 16 };

/** The thread's own file, next to this one: .ts when run from the sources, .js when built. */
const THREAD_URL = new URL(import.meta.url.endsWith('.ts') ? './file-hash-thread.ts' : './file-hash-thread.js', import.meta.url);

/** The digests that can decide whether an object is `expected`; as ObjectDigester computes them. */
export function digestsToCheck(expected: ExpectedObject): { md5: boolean; partSizes: number[] } {
  if (expected.sha256 !== undefined) return { md5: false, partSizes: [] };
  const parts = multipartPartCount(expected.etag);
  return { md5: true, partSizes: parts > 0 ? candidatePartSizes(expected.size, parts) : [] };
}

export class FileHasher {
  private readonly worker: Worker;
  private readonly result: Promise<ObjectDigest>;
  private postedUpTo = 0;
  private closed = false;

  /**
   * @param fd an open descriptor of the file to hash; it must stay open until close() has returned.
   * @param what names the file in errors.
   */
  constructor(fd: number, expected: ExpectedObject, private readonly what: string) {
    const setup: FileHashSetup = { fd, ...digestsToCheck(expected), readBytes: READ_BYTES };
    this.worker = new Worker(THREAD_URL, { workerData: setup, resourceLimits: THREAD_LIMITS });
    this.result = new Promise<ObjectDigest>((resolve, reject) => {
      this.worker.on('message', (reply: FileHashReply) => {
        if ('failed' in reply) reject(new AppError('local_io', `cannot read back ${what} to check it: ${reply.failed}`, { retryable: true }));
        else resolve(reply);
      });
      this.worker.on('error', (error) => reject(this.threadError(error)));
      this.worker.on('exit', (code) => reject(this.threadError(new Error(`hashing thread exited (code ${code})`))));
    });
    this.result.catch(() => undefined); // observed by finish(), if the caller gets that far
  }

  /** Bytes [0, upTo) of the file are written: the thread may hash them. */
  advance(upTo: number): void {
    if (upTo <= this.postedUpTo || this.closed) return;
    this.postedUpTo = upTo;
    this.post({ upTo });
  }

  /** The digests of the whole file, once `sizeBytes` are written; a longer file shows in the digest's size. */
  async finish(sizeBytes: number): Promise<ObjectDigest> {
    this.post({ end: sizeBytes });
    return this.result;
  }

  /** Ends the thread; call once, whether or not finish() was reached, and before closing the file. */
  async close(): Promise<void> {
    this.closed = true;
    await this.worker.terminate();
  }

  private post(request: FileHashRequest): void {
    if (!this.closed) this.worker.postMessage(request);
  }

  private threadError(error: Error): AppError {
    // Not the object's fault, and not expected: this attempt fails and is retried.
    return new AppError('local_io', `hashing thread failed for ${this.what}: ${describeError(error)}`, { cause: error, retryable: true });
  }
}
