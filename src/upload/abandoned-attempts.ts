import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RemoteStore } from '../remote/store.js';
import { removeAbandonedAttempt } from './abandon.js';

export interface AbandonedAttemptsOptions {
  store: RemoteStore;
  agentId: string;
  log: Logger;
}

/**
 * Snapshots whose upload failed and that vanished locally before the retry (pruned by the
 * memory service): the objects the failed attempts wrote would stay in the bucket for good,
 * as an incomplete snapshot. Their removal is tried at once and, when the store does not
 * answer (often the reason the upload failed), again after each sweep that reached it. An
 * upload of the same name waits for a removal in progress and cancels one still to come:
 * it reuses or replaces its own objects itself. In memory only.
 */
export class AbandonedAttempts {
  /** Names whose objects still have to go. */
  private readonly pending = new Set<string>();
  /** Removals in progress, by name. */
  private readonly running = new Map<string, Promise<void>>();

  constructor(private readonly options: AbandonedAttemptsOptions) {}

  /**
   * The snapshot is gone locally after a failed attempt: remove what memsync wrote of it, once
   * `after` (an attempt still winding down) has settled, so nothing it still writes is missed.
   */
  abandon(name: string, after: Promise<unknown> = Promise.resolve()): void {
    this.pending.add(name);
    this.remove(name, after);
  }

  /** Tries again the removals that failed, of the names `stillAbandoned` accepts; call once the store answers. */
  retry(stillAbandoned: (name: string) => boolean): void {
    for (const name of this.pending) if (stillAbandoned(name)) this.remove(name, Promise.resolve());
  }

  /** Before an upload of `name`: waits for its removal in progress and drops any still to come. */
  async beforeUpload(name: string): Promise<void> {
    this.pending.delete(name);
    await this.running.get(name);
  }

  /** Waits for removals in progress, up to `deadlineMs` (they are safe to cut short). */
  async stop(deadlineMs: number): Promise<void> {
    if (this.running.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.running.values()]), new Promise<void>((resolve) => (timer = setTimeout(resolve, deadlineMs)))]);
    clearTimeout(timer);
  }

  private remove(name: string, after: Promise<unknown>): void {
    if (this.running.has(name)) return;
    const { store, agentId, log } = this.options;
    const removal = after
      .catch(() => undefined)
      .then(() => (this.pending.has(name) ? removeAbandonedAttempt(store, agentId, name, log) : 0))
      .then(
        () => {
          this.pending.delete(name);
        },
        (error: unknown) => log.warn('cannot yet remove what a failed upload left of a pruned snapshot; retrying after the next sweep', { snapshot: name, error: describeError(error) }),
      )
      .finally(() => this.running.delete(name));
    this.running.set(name, removal);
  }
}
