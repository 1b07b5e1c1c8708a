import { AppError, describeError, isAppError } from '../errors.js';
import type { Logger } from '../log.js';
import { listAllObjects, type RemoteIndex } from '../remote/remote-index.js';
import type { RemoteStore } from '../remote/store.js';
import { manifestFormatOf } from '../snapshot/manifest-codec.js';
import { notedDeletions, removeDeletionNote, writeDeletionNote } from './deletion-notes.js';
import { locksExpireAtMs, lockWaitOf, type LockWait } from './object-locks.js';
import { decideRetention, formatPolicy, type DeletedSnapshot, type ProtectionReason, type RetentionPolicy } from './policy.js';

/**
 * Applies the retention policy to the bucket: decides with policy.ts, then deletes each
 * dropped snapshot manifest first. Without its manifest a snapshot is listed as incomplete,
 * which retention, restores and sweeps all leave alone, so a deletion cut short (crash,
 * outage) never leaves something that looks like a complete snapshot with files missing.
 * A note written before the manifest goes (deletion-notes.ts) lets the next pass, in this
 * process or after a restart, finish such a deletion.
 */

export interface RetentionSettings {
  policy: RetentionPolicy;
  dryRun: boolean;
  /** CLOUD_SYNC_OBJECT_LOCK_DAYS: a snapshot is not deleted before its objects' locks expire. */
  objectLockDays?: number | undefined;
}

export interface RetentionStatus {
  /** Canonical policy text; null when retention is off. */
  policy: string | null;
  dryRun: boolean;
  lastRunAt: string | null;
  /** Complete snapshots the last run kept. */
  kept: number;
  /** Snapshots the last run deleted (always empty in a dry run). */
  lastDeleted: string[];
  /** Snapshots the last run would have deleted: the dry-run answer, or deletions that failed. */
  wouldDelete: string[];
  lastError: string | null;
  /** Snapshots the rules drop that stay until their Object Lock expires (until: ISO time, null when the store gives none). */
  waitingForLocks: { snapshot: string; until: string | null }[];
}

export interface RetentionReport {
  deleted: string[];
  wouldDelete: string[];
  kept: number;
  waitingForLocks: LockWait[];
}

export interface RetentionOptions {
  store: RemoteStore;
  log: Logger;
  now: () => number;
  /** Checked again just before each deletion: a restore may have started since the decision. */
  isBusy?: (name: string) => boolean;
  /** Called with the number of snapshots deleted (the metrics counter). */
  onDeleted?: (count: number) => void;
}

/** Long name lists are cut in status; the log has every name. */
const STATUS_LIST_LIMIT = 100;

export class RetentionRunner {
  private running: Promise<RetentionReport> | undefined;
  private last: { atMs: number; report: RetentionReport | undefined; error: string | undefined } | undefined;
  /** Snapshots whose wait for a lock was logged, with the expiry logged. */
  private readonly waitsTold = new Map<string, number | undefined>();
  private currentOnlyTold = false;
  private keepsVersions: boolean | undefined;

  constructor(
    private readonly settings: RetentionSettings,
    private readonly options: RetentionOptions,
  ) {}

  /**
   * One pass over `index` (a fresh listing). Runs triggered while one is going on share it:
   * two passes deleting the same snapshot would only race each other.
   */
  run(index: RemoteIndex, protectedNames: ReadonlyMap<string, ProtectionReason>): Promise<RetentionReport> {
    this.running ??= this.pass(index, protectedNames)
      .then(
        (report) => {
          this.last = { atMs: this.options.now(), report, error: undefined };
          return report;
        },
        (error: unknown) => {
          this.last = { atMs: this.options.now(), report: this.last?.report, error: describeError(error) };
          throw error;
        },
      )
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  status(): RetentionStatus {
    const report = this.last?.report;
    return {
      policy: formatPolicy(this.settings.policy),
      dryRun: this.settings.dryRun,
      lastRunAt: this.last === undefined ? null : new Date(this.last.atMs).toISOString(),
      kept: report?.kept ?? 0,
      lastDeleted: (report?.deleted ?? []).slice(0, STATUS_LIST_LIMIT),
      wouldDelete: (report?.wouldDelete ?? []).slice(0, STATUS_LIST_LIMIT),
      lastError: this.last?.error ?? null,
      waitingForLocks: (report?.waitingForLocks ?? [])
        .slice(0, STATUS_LIST_LIMIT)
        .map((wait) => ({ snapshot: wait.snapshot, until: wait.untilMs === undefined ? null : new Date(wait.untilMs).toISOString() })),
    };
  }

  private async pass(index: RemoteIndex, protectedNames: ReadonlyMap<string, ProtectionReason>): Promise<RetentionReport> {
    const { log } = this.options;
    const policy = formatPolicy(this.settings.policy);
    const decision = decideRetention([...index.snapshots.values()], this.settings.policy, protectedNames);
    const kept = decision.keep.length;
    if (this.settings.dryRun) {
      for (const snapshot of decision.delete) log.info('retention dry run: would delete snapshot', { snapshot: snapshot.name, policy, reason: snapshot.reason });
      return { deleted: [], wouldDelete: decision.delete.map((s) => s.name), kept, waitingForLocks: [] };
    }
    await this.finishInterrupted(index, protectedNames);
    const deleted: string[] = [];
    const failed: string[] = [];
    const waiting: LockWait[] = [];
    for (const snapshot of decision.delete) {
      if (this.options.isBusy?.(snapshot.name) === true) {
        log.info('retention skipped snapshot in use; next run decides again', { snapshot: snapshot.name });
        failed.push(snapshot.name);
        continue;
      }
      try {
        const objects = await this.deleteSnapshot(snapshot);
        if (typeof objects !== 'number') {
          waiting.push(objects);
          continue;
        }
        // The in-memory index is what status and listings answer from until the next sweep.
        index.snapshots.delete(snapshot.name);
        deleted.push(snapshot.name);
        this.options.onDeleted?.(1);
        log.info('retention deleted snapshot', { snapshot: snapshot.name, policy, reason: snapshot.reason, objects });
      } catch (error) {
        const wait = lockWaitOf(snapshot.name, error);
        if (wait !== undefined) {
          // Locked in a way memsync did not set (the bucket's default retention): the next pass tries again.
          waiting.push(wait);
          this.tellWaiting(wait);
          continue;
        }
        failed.push(snapshot.name);
        const appError = isAppError(error) ? error : new AppError('remote_unavailable', describeError(error), { cause: error });
        log.warn('retention could not delete snapshot; next run retries', { snapshot: snapshot.name, error: appError.message, hint: appError.hint });
        // An unreachable store fails every other deletion the same way: stop early.
        if (appError.kind === 'remote_unavailable' || appError.kind === 'remote_rejected') break;
      }
    }
    if (deleted.length > 0 || failed.length > 0) log.info('retention finished', { policy, kept, deleted: deleted.length, failed: failed.length, waitingForLocks: waiting.length });
    return { deleted, wouldDelete: failed, kept, waitingForLocks: waiting };
  }

  /**
   * A note first, then the manifest, then the files, then the note; returns how many objects of
   * the snapshot went, or the wait when its locks have not expired yet (nothing is touched then).
   */
  private async deleteSnapshot(snapshot: DeletedSnapshot): Promise<number | LockWait> {
    const objects = await listAllObjects(this.options.store, `${snapshot.name}/`);
    const lockDays = this.settings.objectLockDays;
    if (lockDays !== undefined) {
      const untilMs = locksExpireAtMs(objects, lockDays);
      if (untilMs > this.options.now()) {
        const wait = { snapshot: snapshot.name, untilMs };
        this.tellWaiting(wait);
        return wait;
      }
    }
    const all = objects.map((object) => object.key);
    const manifests = all.filter((key) => isManifestOf(snapshot.name, key));
    const files = all.filter((key) => !isManifestOf(snapshot.name, key));
    await writeDeletionNote(this.options.store, snapshot.name, this.options.now());
    try {
      // The manifest is the newest object: when its lock holds, nothing of the snapshot goes.
      for (const key of manifests) await this.remove(key);
    } catch (error) {
      if (lockWaitOf(snapshot.name, error) !== undefined) await removeDeletionNote(this.options.store, snapshot.name);
      throw error;
    }
    for (const key of files) await this.remove(key);
    await removeDeletionNote(this.options.store, snapshot.name);
    this.waitsTold.delete(snapshot.name);
    return all.length;
  }

  /**
   * Removes the key for good where the store keeps versions: a plain DELETE in a versioned bucket
   * (every bucket with Object Lock) only hides the object behind a delete marker.
   */
  private async remove(key: string): Promise<void> {
    const { store, log } = this.options;
    if (store.purge === undefined || !(await this.versioned())) return store.delete(key);
    const outcome = await store.purge(key);
    if (outcome === 'current-only' && !this.currentOnlyTold) {
      this.currentOnlyTold = true;
      log.warn('retention cannot list object versions (s3:ListBucketVersions denied): it deletes current versions only; in a versioned bucket the data stays as noncurrent versions', {
        key,
        hint: 'allow s3:ListBucketVersions and s3:DeleteObjectVersion, or expire noncurrent versions with a lifecycle rule',
      });
    }
  }

  /** Asked once the store answers; a refusal to say is logged once and counts as no versions (plain deletes, as before). */
  private async versioned(): Promise<boolean> {
    if (this.keepsVersions !== undefined) return this.keepsVersions;
    try {
      this.keepsVersions = (await this.options.store.keepsVersions?.()) ?? false;
    } catch (error) {
      if (!isAppError(error, 'remote_rejected')) throw error;
      this.keepsVersions = false;
      this.options.log.warn('retention cannot tell whether the bucket keeps versions; it deletes with plain DELETEs, which in a versioned bucket only hide objects', { error: error.message });
    }
    return this.keepsVersions;
  }

  /** Once per snapshot and lock: a snapshot waiting for weeks is not a line in every pass. */
  private tellWaiting(wait: LockWait): void {
    if (this.waitsTold.get(wait.snapshot) === wait.untilMs) return;
    this.waitsTold.set(wait.snapshot, wait.untilMs);
    this.options.log.info('retention leaves a snapshot until its Object Lock expires', {
      snapshot: wait.snapshot,
      until: wait.untilMs === undefined ? 'not given by the store' : new Date(wait.untilMs).toISOString(),
    });
  }

  /** Deletions an earlier pass (of this process or one before a restart) noted and did not finish. */
  private async finishInterrupted(index: RemoteIndex, protectedNames: ReadonlyMap<string, ProtectionReason>): Promise<void> {
    const { log } = this.options;
    for (const { snapshot: name, notedAtMs } of await notedDeletions(this.options.store)) {
      try {
        const objects = await listAllObjects(this.options.store, `${name}/`);
        if (objects.some((object) => isManifestOf(name, object.key))) {
          // Cut short before its manifest went, or uploaded anew since: a complete snapshot is
          // only ever deleted by a decision of the rules, so the note goes and the rules decide again.
          await removeDeletionNote(this.options.store, name);
          continue;
        }
        if (protectedNames.has(name) || this.options.isBusy?.(name) === true) {
          // Local again (being uploaded anew) or being restored: its files are not leftovers now.
          log.info('retention leaves an unfinished deletion for later: the snapshot is in use', { snapshot: name });
          continue;
        }
        // Only what was there when the deletion began is its leftover (both times by the store's
        // clock): a newer object belongs to an upload of the name under way, maybe another agent's.
        const leftovers = objects.filter((object) => object.lastModifiedMs <= notedAtMs);
        for (const { key } of leftovers) await this.remove(key);
        await removeDeletionNote(this.options.store, name);
        index.snapshots.delete(name);
        const newer = objects.length - leftovers.length;
        log.info('retention finished deleting snapshot', { snapshot: name, objects: leftovers.length, ...(newer > 0 ? { newerObjectsLeft: newer } : {}) });
      } catch (error) {
        log.warn('retention could not finish deleting snapshot; next run retries', { snapshot: name, error: describeError(error) });
      }
    }
  }

}

function isManifestOf(name: string, key: string): boolean {
  return manifestFormatOf(key.slice(name.length + 1)) !== undefined;
}
