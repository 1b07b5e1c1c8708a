/**
 * When uploads have recovered: a run of failures ends only when nothing is failing any more,
 * not when one snapshot succeeds while another still fails. A snapshot that stops failing
 * without succeeding (pruned locally, or found to be a conflict) no longer holds the recovery
 * back, and does not announce it either: only a success shows the store works again. Pure; in
 * memory only.
 */
export class FailureRun {
  /** Snapshots whose last attempt failed. */
  private readonly failing = new Set<string>();
  /** Every snapshot that failed since the last recovery, in the order they first failed. */
  private readonly failedBefore = new Set<string>();

  failed(name: string): void {
    this.failing.add(name);
    this.failedBefore.add(name);
  }

  /** The snapshot no longer fails, without having succeeded. */
  dropped(name: string): void {
    this.failing.delete(name);
  }

  /** The snapshots that failed before, when this success ends the run of failures; otherwise undefined. */
  succeeded(name: string): string[] | undefined {
    this.failing.delete(name);
    if (this.failing.size > 0 || this.failedBefore.size === 0) return undefined;
    const failed = [...this.failedBefore];
    this.failedBefore.clear();
    return failed;
  }
}
