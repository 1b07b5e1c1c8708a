import { AppError, describeError, isAppError } from '../errors.js';
import type { Logger } from '../log.js';
import { listAllObjects, type RemoteIndex } from '../remote/remote-index.js';
import type { RemoteStore } from '../remote/store.js';
import { manifestFormatOf } from '../snapshot/manifest-codec.js';
import { notedDeletions, removeDeletionNote, writeDeletionNote } from './deletion-notes.js';
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
}

export interface RetentionReport {
  deleted: string[];
  wouldDelete: string[];
  kept: number;
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
    };
  }

  private async pass(index: RemoteIndex, protectedNames: ReadonlyMap<string, ProtectionReason>): Promise<RetentionReport> {
    const { log } = this.options;
    const policy = formatPolicy(this.settings.policy);
    const decision = decideRetention([...index.snapshots.values()], this.settings.policy, protectedNames);
    const kept = decision.keep.length;
    if (this.settings.dryRun) {
      for (const snapshot of decision.delete) log.info('retention dry run: would delete snapshot', { snapshot: snapshot.name, policy, reason: snapshot.reason });
      return { deleted: [], wouldDelete: decision.delete.map((s) => s.name), kept };
    }
    await this.finishInterrupted(index, protectedNames);
    const deleted: string[] = [];
    const failed: string[] = [];
    for (const snapshot of decision.delete) {
      if (this.options.isBusy?.(snapshot.name) === true) {
        log.info('retention skipped snapshot in use; next run decides again', { snapshot: snapshot.name });
        failed.push(snapshot.name);
        continue;
      }
      try {
        const objects = await this.deleteSnapshot(snapshot);
        // The in-memory index is what status and listings answer from until the next sweep.
        index.snapshots.delete(snapshot.name);
        deleted.push(snapshot.name);
        this.options.onDeleted?.(1);
        log.info('retention deleted snapshot', { snapshot: snapshot.name, policy, reason: snapshot.reason, objects });
      } catch (error) {
        failed.push(snapshot.name);
        const appError = isAppError(error) ? error : new AppError('remote_unavailable', describeError(error), { cause: error });
        log.warn('retention could not delete snapshot; next run retries', { snapshot: snapshot.name, error: appError.message, hint: appError.hint });
        // An unreachable store fails every other deletion the same way: stop early.
        if (appError.kind === 'remote_unavailable' || appError.kind === 'remote_rejected') break;
      }
    }
    if (deleted.length > 0 || failed.length > 0) log.info('retention finished', { policy, kept, deleted: deleted.length, failed: failed.length });
    return { deleted, wouldDelete: failed, kept };
  }

  /** A note first, then the manifest, then the files, then the note; returns how many objects of the snapshot went. */
  private async deleteSnapshot(snapshot: DeletedSnapshot): Promise<number> {
    const all = await this.keysOf(snapshot.name);
    const manifests = all.filter((key) => isManifestOf(snapshot.name, key));
    const files = all.filter((key) => !isManifestOf(snapshot.name, key));
    await writeDeletionNote(this.options.store, snapshot.name, this.options.now());
    for (const key of manifests) await this.options.store.delete(key);
    for (const key of files) await this.options.store.delete(key);
    await removeDeletionNote(this.options.store, snapshot.name);
    return all.length;
  }

  /** Deletions an earlier pass (of this process or one before a restart) noted and did not finish. */
  private async finishInterrupted(index: RemoteIndex, protectedNames: ReadonlyMap<string, ProtectionReason>): Promise<void> {
    const { log } = this.options;
    for (const name of await notedDeletions(this.options.store)) {
      try {
        const keys = await this.keysOf(name);
        if (keys.some((key) => isManifestOf(name, key))) {
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
        for (const key of keys) await this.options.store.delete(key);
        await removeDeletionNote(this.options.store, name);
        index.snapshots.delete(name);
        log.info('retention finished deleting snapshot', { snapshot: name, objects: keys.length });
      } catch (error) {
        log.warn('retention could not finish deleting snapshot; next run retries', { snapshot: name, error: describeError(error) });
      }
    }
  }

  private async keysOf(name: string): Promise<string[]> {
    return (await listAllObjects(this.options.store, `${name}/`)).map((object) => object.key);
  }
}

function isManifestOf(name: string, key: string): boolean {
  return manifestFormatOf(key.slice(name.length + 1)) !== undefined;
}
