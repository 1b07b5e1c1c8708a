import { AppError } from '../errors.js';

/**
 * Deadlines for the directory store's file operations. Each one runs on a thread of libuv's
 * pool (UV_THREADPOOL_SIZE, 4 by default, shared by the whole process), and on a hard network
 * mount whose server stopped answering the kernel call never returns and cannot be cancelled
 * from JavaScript. A deadline turns that into a reported outage (remote_unavailable, retried
 * like any other); and while a call is stuck past its deadline no new one is started, since it
 * would only pin another thread of the pool until the whole process's file I/O waits. The same
 * approach as the backup directory's (snapshot/safe-open.ts), counted apart: a hung share is
 * the store being unavailable, not the local disk.
 */

export const DEFAULT_FS_OPERATION_DEADLINE_MS = 30_000;

const MOUNT_HINT = 'the directory of CLOUD_SYNC_BUCKET is not answering (a network mount whose server is gone?); mount NFS with soft,timeo= so the kernel gives up too';

interface StuckOperation {
  operation: string;
  path: string;
}

export class OperationDeadline {
  private readonly stuck = new Set<StuckOperation>();
  private waiters: Array<() => void> = [];

  constructor(readonly deadlineMs: number) {}

  /**
   * `start()`'s result, or remote_unavailable after the deadline. Refused at once, without
   * starting it, while an earlier operation is stuck. `lateResult` disposes of a result that
   * arrives after the deadline (a file opened too late is closed).
   */
  run<T>(operation: string, path: string, start: () => Promise<T>, lateResult?: (value: T) => void): Promise<T> {
    const blocking = this.stuck.values().next();
    if (blocking.done !== true) return Promise.reject(this.refusal(operation, path, blocking.value));
    let started: Promise<T>;
    try {
      started = start();
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return new Promise<T>((resolve, reject) => {
      let late: StuckOperation | undefined;
      const timer = setTimeout(() => {
        late = { operation, path };
        this.stuck.add(late);
        reject(
          new AppError('remote_unavailable', `${operation} ${path} did not finish within ${this.deadlineMs} ms`, {
            hint: MOUNT_HINT,
            details: { code: 'OperationTimedOut', operation, path, deadlineMs: this.deadlineMs },
          }),
        );
      }, this.deadlineMs);
      const settled = (): boolean => {
        clearTimeout(timer);
        if (late === undefined) return false;
        this.stuck.delete(late);
        if (this.stuck.size === 0) this.wakeWaiters();
        return true;
      };
      started.then(
        (value) => {
          if (!settled()) resolve(value);
          else lateResult?.(value);
        },
        (error: unknown) => {
          if (!settled()) reject(error as Error);
        },
      );
    });
  }

  /** How many operations are past their deadline and have not returned. */
  get stuckCount(): number {
    return this.stuck.size;
  }

  /** Resolves once no operation is stuck past its deadline. */
  whenUnstuck(): Promise<void> {
    if (this.stuck.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wakeWaiters(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private refusal(operation: string, path: string, blocking: StuckOperation): AppError {
    return new AppError('remote_unavailable', `${operation} ${path} not started: ${blocking.operation} ${blocking.path} has not returned since it missed its ${this.deadlineMs} ms deadline`, {
      hint: MOUNT_HINT,
      details: { code: 'OperationStuck', operation, path, stuckOperation: blocking.operation, stuckPath: blocking.path },
    });
  }
}
