import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RemoteIndex } from '../remote/remote-index.js';
import type { RetentionRunner } from './apply.js';
import type { ProtectionReason } from './policy.js';

/**
 * What follows a successful sweep once the uploads it queued have ended: retention on a
 * fresh listing, then the heartbeat when every upload went through. Waiting for the uploads
 * means the snapshots just sent take part in the rules, so the window moves once, not twice.
 */

/** The part of the agent's FinishedSweep used here (structural, so retention does not import the agent). */
export interface SweepResult {
  summary: { uploads: Promise<readonly { outcome: unknown }[]>; settling: readonly string[] };
  local: Iterable<string>;
  uploading: Iterable<string>;
}

export interface SweepFollowUpOptions {
  retention: RetentionRunner | undefined;
  /** Pinged after a sweep that leaves everything uploaded (see isHealthySweep). */
  heartbeat: { ping(): void } | undefined;
  /** Snapshots whose upload failed and waits for a retry. */
  failingUploads: () => number;
  refreshIndex: () => Promise<RemoteIndex>;
  /** Snapshot names in conflict (state.conflicts). */
  conflicts: () => Iterable<string>;
  /** Snapshots being restored now. */
  restoring: () => Iterable<string>;
  log: Logger;
}

/** Names retention must not delete, with why. Pure. */
export function protectedSnapshots(input: {
  local: Iterable<string>;
  uploading: Iterable<string>;
  conflicts: Iterable<string>;
  restoring: Iterable<string>;
}): Map<string, ProtectionReason> {
  const names = new Map<string, ProtectionReason>();
  // A remote copy of a snapshot still in the backup directory would be uploaded again by the
  // next sweep if deleted: the remote side keeps at least what the memory service keeps.
  for (const name of input.local) names.set(name, 'local');
  for (const name of input.uploading) names.set(name, 'local');
  for (const name of input.restoring) names.set(name, 'restoring');
  for (const name of input.conflicts) names.set(name, 'conflict');
  return names;
}

/**
 * Whether a finished sweep may ping the heartbeat: every upload it queued succeeded, none
 * is failing elsewhere (watcher-triggered uploads), and nothing was still being written, whose
 * upload's fate is unknown yet. A missed ping is harmless; a ping during an outage is not.
 */
export function isHealthySweep(outcomes: readonly { outcome: unknown }[], settling: number, failingUploads: number): boolean {
  return settling === 0 && failingUploads === 0 && outcomes.every((o) => o.outcome !== undefined);
}

export class SweepFollowUp {
  private readonly running = new Set<Promise<void>>();
  private stopped = false;

  constructor(private readonly options: SweepFollowUpOptions) {}

  /** The agent's afterSweep hook: starts the follow-up in the background, never throws. */
  readonly handle = (sweep: SweepResult): void => {
    if (this.stopped) return;
    const work = this.followUp(sweep)
      .catch((error: unknown) => this.options.log.warn('after-sweep work failed; the next sweep tries again', { error: describeError(error) }))
      .finally(() => this.running.delete(work));
    this.running.add(work);
  };

  /** Idempotent; waits up to `deadlineMs` for a retention pass in progress (deletion is safe to cut short). */
  async stop(deadlineMs: number): Promise<void> {
    this.stopped = true;
    if (this.running.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.running]), new Promise<void>((resolve) => (timer = setTimeout(resolve, deadlineMs)))]);
    clearTimeout(timer);
  }

  private async followUp(sweep: SweepResult): Promise<void> {
    const outcomes = await sweep.summary.uploads;
    if (this.stopped) return;
    const { retention, heartbeat } = this.options;
    if (retention !== undefined) {
      const index = await this.options.refreshIndex();
      if (this.stopped) return;
      const protectedNames = protectedSnapshots({
        local: sweep.local,
        uploading: sweep.uploading,
        conflicts: this.options.conflicts(),
        restoring: this.options.restoring(),
      });
      await retention.run(index, protectedNames);
    }
    if (heartbeat !== undefined && isHealthySweep(outcomes, sweep.summary.settling.length, this.options.failingUploads())) heartbeat.ping();
  }
}
