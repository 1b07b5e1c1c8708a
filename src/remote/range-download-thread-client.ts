import { Worker } from 'node:worker_threads';
import { AppError, describeError } from '../errors.js';
import type { RangeDownloadSetup, RangeFailure, RangeFetch, RangeReport } from './s3-range-download-thread.js';

/**
 * This thread's handle on a range-download thread: hands it GETs, and turns what it reports
 * into progress and AppErrors. The thread writes into a descriptor this process owns, so close()
 * must have returned before the file is closed.
 */

/**
 * The thread's heap holds little: a few connections, each with one read buffer (outside the heap)
 * that serves every read of its socket, so the bytes received make no garbage. The limit only
 * bounds what a fault could make the thread hold.
 */
const THREAD_LIMITS = { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 32 };

/** The thread's own file, next to this one: .ts when run from the sources, .js when built. */
const THREAD_URL = new URL(import.meta.url.endsWith('.ts') ? './s3-range-download-thread.ts' : './s3-range-download-thread.js', import.meta.url);

/** Turns a server's error answer (an SDK-shaped error: code and status) into an AppError naming `what`. */
export type TranslateStatus = (error: unknown, what: string) => AppError;

interface Pending {
  what: string;
  onWritten: (position: number, length: number) => void;
  resolve: () => void;
  reject: (error: AppError) => void;
}

/** What a failed GET means for memsync: a cut connection and a server error are retried, other bytes than asked for are not. Pure. */
export function rangeFailureError(failure: RangeFailure, what: string, translateStatus: TranslateStatus): AppError {
  switch (failure.reason) {
    case 'transit':
      return new AppError('remote_unavailable', `${what}: connection failed mid-body: ${failure.message}`);
    case 'status': {
      const code = failure.code ?? 'UnknownError';
      return translateStatus({ name: code, Code: code, message: '', $metadata: { httpStatusCode: failure.status } }, what);
    }
    case 'answer':
      return new AppError('integrity', `${what}: the server ${failure.message}`);
    case 'local': {
      const hint = failure.code === 'ENOSPC' ? 'the disk holding the backup directory is full' : undefined;
      return new AppError('local_io', `${what}: cannot write the file: ${failure.code ?? failure.message}`, { retryable: false, hint });
    }
  }
}

export class RangeDownloadThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private ended: AppError | undefined;
  private terminated: Promise<unknown> | undefined;

  constructor(
    setup: RangeDownloadSetup,
    private readonly translateStatus: TranslateStatus,
  ) {
    this.worker = new Worker(THREAD_URL, { workerData: { rangeDownload: setup }, resourceLimits: THREAD_LIMITS });
    this.worker.on('message', (report: RangeReport) => this.onReport(report));
    // Not the object's fault, and not expected: this attempt fails and is retried whole.
    this.worker.on('error', (error) => this.end(new AppError('local_io', `download thread failed: ${describeError(error)}`, { cause: error, retryable: true })));
    this.worker.on('exit', (code) => this.end(new AppError('local_io', `download thread exited (code ${code})`, { retryable: true })));
  }

  /** GETs [start, end) from `url` into the file; `onWritten` hears of each written extent, in order. */
  fetch(job: Omit<RangeFetch, 'id'>, what: string, onWritten: (position: number, length: number) => void): Promise<void> {
    if (this.ended !== undefined) return Promise.reject(this.ended);
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { what, onWritten, resolve, reject });
      this.worker.postMessage({ ...job, id } satisfies RangeFetch);
    });
  }

  /** Stops the thread: GETs in flight fail with `reason`. Resolves once it can no longer write. */
  async close(reason: AppError = new AppError('cancelled', 'download thread closed')): Promise<void> {
    this.end(reason);
    this.terminated ??= this.worker.terminate();
    await this.terminated;
  }

  private onReport(report: RangeReport): void {
    if ('written' in report) {
      this.pending.get(report.written.id)?.onWritten(report.written.position, report.written.length);
      return;
    }
    const id = 'done' in report ? report.done : report.failed;
    const waiting = this.pending.get(id);
    if (waiting === undefined) return;
    this.pending.delete(id);
    if ('done' in report) waiting.resolve();
    else waiting.reject(rangeFailureError(report.failure, waiting.what, this.translateStatus));
  }

  private end(reason: AppError): void {
    this.ended ??= reason;
    for (const waiting of this.pending.values()) waiting.reject(reason);
    this.pending.clear();
  }
}
