import { isAppError, type AppError } from './errors.js';
import type { RemoteHealth } from './remote-health.js';

export interface OutageAfterPruneOptions {
  health: RemoteHealth;
  /** A small request nothing cancels (HeadBucket): whether the store answers at all. */
  checkStore: () => Promise<void>;
  /** The store did not answer: reported against the snapshots whose cancelled uploads it may have held. */
  onOutage: (snapshots: string[], error: AppError) => void;
}

/**
 * An upload cancelled because the memory service pruned or rewrote its snapshot ends quietly,
 * and the requests it was waiting on never fail in sight. When the service prunes every upload
 * hanging on an unresponsive store before one of their requests times out, nothing would ever
 * report that outage. So when an upload is cancelled and the store has answered nothing since
 * that upload began, the store is asked with a request no prune can cancel: its failure marks
 * the store unavailable (status, /readyz, metrics) and is reported against those snapshots.
 * One check at a time; cancellations meanwhile join it.
 */
export class OutageAfterPrune {
  private readonly cancelled = new Set<string>();
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: OutageAfterPruneOptions) {}

  uploadCancelled(name: string, uploadStartedMs: number): void {
    const { health } = this.options;
    // Already known to be down: that outage has been reported.
    if (this.stopped || health.available === false) return;
    const lastOkMs = health.snapshot().lastOkMs;
    if (lastOkMs !== undefined && lastOkMs >= uploadStartedMs) return;
    this.cancelled.add(name);
    this.running ??= this.check().finally(() => {
      this.running = undefined;
    });
  }

  stop(): void {
    this.stopped = true;
  }

  private async check(): Promise<void> {
    try {
      await this.options.health.track(this.options.checkStore());
      this.cancelled.clear();
    } catch (error) {
      const snapshots = [...this.cancelled];
      this.cancelled.clear();
      if (this.stopped) return;
      if (isAppError(error, 'remote_unavailable') || isAppError(error, 'remote_rejected')) this.options.onOutage(snapshots, error);
    }
  }
}
