import { describeError, isAppError, type ErrorKind } from './errors.js';
import type { Logger } from './log.js';

const STORE_ANSWERS: readonly ErrorKind[] = ['conflict', 'integrity', 'not_found', 'object_refused'];

/**
 * Whether the last calls to the store worked. Logs only transitions (unavailable, then
 * recovered), so an outage of hours is two lines, not thousands.
 */
export class RemoteHealth {
  private ok: boolean | undefined;
  private lastOkMs: number | undefined;
  private lastFailure: { atMs: number; message: string } | undefined;
  private failuresSinceOk = 0;

  constructor(
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  /** Passes a store-touching promise through, noting whether the store answered. */
  async track<T>(work: Promise<T>): Promise<T> {
    try {
      const value = await work;
      this.succeeded();
      return value;
    } catch (error) {
      if (isAppError(error, 'remote_unavailable')) this.failed(describeError(error));
      else if (isAppError(error, 'remote_rejected')) this.failed(describeError(error), 'refused');
      else if (!isAppError(error, 'cancelled') && !isAppError(error, 'snapshot_gone')) this.succeededIfStoreAnswered(error);
      throw error;
    }
  }

  succeeded(): void {
    if (this.ok === false) this.log.info('remote store reachable again', { failuresWhileDown: this.failuresSinceOk });
    this.ok = true;
    this.lastOkMs = this.now();
    this.failuresSinceOk = 0;
  }

  /** A refusal (credentials, bucket) is logged as one: the operator's fix differs from an outage's. */
  failed(message: string, how: 'unavailable' | 'refused' = 'unavailable'): void {
    if (this.ok !== false) this.log.error(how === 'refused' ? 'remote store refused memsync' : 'remote store unavailable', { error: message });
    this.ok = false;
    this.failuresSinceOk += 1;
    this.lastFailure = { atMs: this.now(), message };
  }

  // Conflicts, integrity errors and one request refused for its content (a key too long) are
  // answers from a working store: they fail a snapshot, never the store.
  private succeededIfStoreAnswered(error: unknown): void {
    if (STORE_ANSWERS.some((kind) => isAppError(error, kind))) this.succeeded();
  }

  get available(): boolean | undefined {
    return this.ok;
  }

  snapshot(): { available: boolean | undefined; lastOkMs: number | undefined; lastFailure: { atMs: number; message: string } | undefined; failuresSinceOk: number } {
    return { available: this.ok, lastOkMs: this.lastOkMs, lastFailure: this.lastFailure, failuresSinceOk: this.failuresSinceOk };
  }
}
