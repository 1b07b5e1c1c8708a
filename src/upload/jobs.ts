import PQueue from 'p-queue';
import { AppError, isAppError } from '../errors.js';
import { CANCEL_GRACE_MS } from '../remote/store.js';
import { sameFingerprint, type SnapshotStat } from '../snapshot/scan.js';
import type { SnapshotOutcome, SnapshotUploader, UploadProgress } from './snapshot-uploader.js';

/**
 * The snapshot-level queue: at most one job per snapshot name, newest snapshot first, and
 * cancellation when a snapshot is rewritten, pruned or memsync stops. Two requests for the
 * same unchanged snapshot share one job, so no file is ever sent twice concurrently.
 */

interface Job {
  stat: SnapshotStat;
  controller: AbortController;
  promise: Promise<SnapshotOutcome>;
  started: boolean;
  progress: UploadProgress | undefined;
}

export interface UploadJobsOptions {
  uploader: SnapshotUploader;
  /** Snapshots prepared (hashed, compared) at once; their files share the uploader's file queue. */
  snapshotConcurrency: number;
}

export class UploadJobs {
  private readonly queue: PQueue;
  private readonly jobs = new Map<string, Job>();
  /**
   * Cancelled jobs still winding down (removing what they wrote), by name. A new job for the
   * same name waits for them: it must not write keys that an abandoning job is about to delete.
   */
  private readonly windingDown = new Map<string, Promise<unknown>>();
  private accepting = true;

  constructor(private readonly options: UploadJobsOptions) {
    this.queue = new PQueue({ concurrency: options.snapshotConcurrency });
  }

  /** Uploads a settled snapshot, or joins the job already doing it. Rejects with an AppError. */
  submit(stat: SnapshotStat): Promise<SnapshotOutcome> {
    if (!this.accepting) return Promise.reject(new AppError('cancelled', 'memsync is stopping'));
    const existing = this.jobs.get(stat.name);
    if (existing !== undefined) {
      if (sameFingerprint(existing.stat, stat)) return existing.promise;
      this.cancel(stat.name, new AppError('snapshot_gone', `${stat.name} was rewritten`));
    }
    const controller = new AbortController();
    const job: Job = { stat, controller, promise: Promise.resolve() as unknown as Promise<SnapshotOutcome>, started: false, progress: undefined };
    // The queue is not given the signal: p-queue would reject a running task's promise at once
    // on abort, before the upload has wound down (and aborted its multipart upload). A job
    // cancelled before its turn is rejected here and skipped when its turn comes.
    const settled = new Promise<SnapshotOutcome>((resolve, reject) => {
      const cancelledBeforeStart = (): void => {
        if (!job.started) reject(cancellationReason(controller.signal));
      };
      controller.signal.addEventListener('abort', cancelledBeforeStart, { once: true });
      void this.queue.add(
        async () => {
          if (controller.signal.aborted) return;
          controller.signal.removeEventListener('abort', cancelledBeforeStart);
          job.started = true;
          await this.windingDown.get(stat.name);
          try {
            resolve(
              await this.options.uploader.upload(stat, controller.signal, (progress) => {
                job.progress = progress;
              }),
            );
          } catch (error) {
            reject(isAppError(error) ? error : new AppError('local_io', String(error), { cause: error }));
          }
        },
        { priority: Math.floor(stat.timeMs / 1000) },
      );
    });
    job.promise = settled.finally(() => {
      if (this.jobs.get(stat.name) === job) this.jobs.delete(stat.name);
    });
    this.jobs.set(stat.name, job);
    return job.promise;
  }

  /** Stops a snapshot's job; `reason` decides what happens to what it already sent (see SnapshotUploader). */
  cancel(name: string, reason: AppError): boolean {
    const job = this.jobs.get(name);
    if (job === undefined) return false;
    this.jobs.delete(name);
    job.controller.abort(reason);
    if (job.started) {
      const done = job.promise.catch(() => undefined);
      this.windingDown.set(name, done);
      void done.then(() => {
        if (this.windingDown.get(name) === done) this.windingDown.delete(name);
      });
    }
    return true;
  }

  has(name: string): boolean {
    return this.jobs.has(name);
  }

  /** Snapshots waiting for their turn. */
  get queuedCount(): number {
    return [...this.jobs.values()].filter((job) => !job.started).length;
  }

  active(): UploadProgress[] {
    return [...this.jobs.values()].flatMap((job) => (job.started && job.progress !== undefined ? [{ ...job.progress }] : []));
  }

  pendingNames(): string[] {
    return [...this.jobs.keys()];
  }

  /**
   * Stops accepting work, drops what has not started, lets running uploads finish until the
   * deadline, then aborts them (multipart uploads are aborted, so nothing is left billed).
   */
  async stop(deadlineMs: number): Promise<void> {
    this.accepting = false;
    const shutdown = new AppError('cancelled', 'memsync is stopping');
    for (const [name, job] of this.jobs) if (!job.started) this.cancel(name, shutdown);
    const running = [...this.jobs.values()].map((job) => job.promise.catch(() => undefined));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), Math.max(0, deadlineMs));
    });
    const finished = await Promise.race([Promise.all(running).then(() => 'done' as const), deadline]);
    clearTimeout(timer);
    if (finished === 'deadline') {
      for (const name of [...this.jobs.keys()]) this.cancel(name, shutdown);
      // Let cancelled uploads send their AbortMultipartUpload; the store bounds that by CANCEL_GRACE_MS.
      await Promise.race([Promise.all(running), new Promise((resolve) => setTimeout(resolve, CANCEL_GRACE_MS + 1000))]);
    }
    this.queue.clear();
  }
}

function cancellationReason(signal: AbortSignal): AppError {
  return isAppError(signal.reason) ? signal.reason : new AppError('cancelled', 'upload cancelled');
}
