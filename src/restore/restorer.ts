import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, rename, rm, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { AppError, describeError, isAppError } from '../errors.js';
import type { Keyring } from '../crypto/keys.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { PartRetryOptions, RemoteStore } from '../remote/store.js';
import { withRetry, type RetryPolicy } from '../retry.js';
import { buildManifest, diffManifests, fileKey, manifestDigest, sameContent, type Manifest } from '../snapshot/manifest.js';
import { requireSnapshotName } from '../snapshot/naming.js';
import { statSnapshot } from '../snapshot/scan.js';
import { fsyncDirectory } from '../state/atomic-file.js';
import { downloadVerified, type Verification } from './download-file.js';
import type { LocalBase } from './local-base.js';
import { LocalBaseFinder } from './local-base-finder.js';
import { sha256OfLocalFile } from './local-sha256.js';
import { planRemoteSnapshot, type RemoteSnapshotPlan } from './remote-snapshot.js';

/**
 * Brings a remote snapshot back into the backup directory without ever overwriting or
 * exposing a partial one: download into a dot-named staging directory on the same file
 * system (ignored by memsync's watcher), verify every file, fsync, then rename into place.
 */

export const STAGING_PREFIX = '.memsync-staging-';

export type RestoreOutcome =
  | { outcome: 'restored'; snapshot: string; files: number; bytes: number; verification: Verification; durationMs: number }
  | { outcome: 'already-present'; snapshot: string; files: number; bytes: number };

export interface RestoreProgress {
  snapshot: string;
  totalBytes: number;
  receivedBytes: number;
  startedAtMs: number;
}

export interface RestorerOptions {
  store: RemoteStore;
  backupDir: string;
  multipartThresholdBytes: number;
  retry: RetryPolicy;
  log: Logger;
  now: () => number;
  /** Omitted: nothing is recorded (tests, one-shot commands). */
  metrics?: Metrics;
  /** The configured encryption key; omitted: encrypted snapshots are refused with a clear error. */
  keyring?: Keyring;
  /**
   * Files at least this large are restored from an earlier version in another local snapshot
   * where one is there, fetching only what differs (CLOUD_SYNC_DELTA_MIN_MB); omitted: never.
   */
  localBaseMinFileBytes?: number | undefined;
}

export class Restorer {
  private readonly running = new Map<string, { promise: Promise<RestoreOutcome>; progress: RestoreProgress }>();

  constructor(private readonly options: RestorerOptions) {}

  /** Restores in progress, for status. */
  active(): RestoreProgress[] {
    return [...this.running.values()].map((r) => ({ ...r.progress }));
  }

  isRestoring(name: string): boolean {
    return this.running.has(name);
  }

  /** Names of the staging directories of restores running now. */
  private readonly stagingInUse = new Set<string>();

  /**
   * Removes staging directories a crash left behind; they never held a complete, renamed snapshot.
   * Not those of restores running now: the API answers before start-up cleans, so a restore may
   * already be filling its staging directory.
   */
  async cleanStaging(): Promise<number> {
    let entries: string[];
    try {
      entries = await readdir(this.options.backupDir);
    } catch {
      return 0;
    }
    const leftovers = entries.filter((entry) => entry.startsWith(STAGING_PREFIX) && !this.stagingInUse.has(entry));
    for (const entry of leftovers) await rm(path.join(this.options.backupDir, entry), { recursive: true, force: true });
    if (leftovers.length > 0) this.options.log.info('removed staging leftovers of interrupted restores', { count: leftovers.length });
    return leftovers.length;
  }

  /** Concurrent requests for the same snapshot share one restore. */
  restore(name: string, signal?: AbortSignal): Promise<RestoreOutcome> {
    requireSnapshotName(name);
    const existing = this.running.get(name);
    if (existing !== undefined) return existing.promise;
    const progress: RestoreProgress = { snapshot: name, totalBytes: 0, receivedBytes: 0, startedAtMs: this.options.now() };
    const promise = this.run(name, progress, signal).finally(() => this.running.delete(name));
    // Counted once per restore, not per caller sharing it.
    const { metrics } = this.options;
    if (metrics !== undefined) void promise.then(() => metrics.restoreFinished('ok'), () => metrics.restoreFinished('failed'));
    this.running.set(name, { promise, progress });
    return promise;
  }

  private async run(name: string, progress: RestoreProgress, signal: AbortSignal | undefined): Promise<RestoreOutcome> {
    const log = this.options.log.child({ snapshot: name });
    const retry = <T>(operation: () => Promise<T>, what: string): Promise<T> =>
      withRetry(operation, { policy: this.options.retry, signal, onRetry: (error, attempt, delayMs) => log.warn('retrying', { operation: what, attempt, delayMs, error: error.message }) });

    // A range cut in transit is asked for again in place, from its first missing byte; once its
    // tries are used up, the file's own retry below starts the file again.
    const rangeRetry: PartRetryOptions = {
      policy: this.options.retry,
      onRetry: ({ what, attempt, delayMs, error }) => log.warn('retrying', { operation: what, attempt, delayMs, error: error.message }),
    };
    const plan = await retry(() => planRemoteSnapshot(this.options.store, name, signal, this.options.keyring), `read remote snapshot ${name}`);
    progress.totalBytes = plan.totalBytes;
    const target = path.join(this.options.backupDir, name);
    if (plan.manifest !== undefined && (await exists(target))) return this.compareExisting(plan, plan.manifest, log);

    await mkdir(this.options.backupDir, { recursive: true });
    const stagingName = `${STAGING_PREFIX}${name}-${randomBytes(4).toString('hex')}`;
    const staging = path.join(this.options.backupDir, stagingName);
    this.stagingInUse.add(stagingName);
    await mkdir(staging);
    try {
      const verifications: Verification[] = [];
      const bases = this.localBases(plan, signal, log);
      for (const file of plan.files) {
        const localPath = path.join(staging, ...file.path.split('/'));
        await mkdir(path.dirname(localPath), { recursive: true });
        const before = progress.receivedBytes;
        const download = (localBase: LocalBase | undefined): Promise<Verification> =>
          retry(async () => {
            // A failed attempt leaves a partial file; start each attempt from nothing.
            await unlink(localPath).catch(() => undefined);
            progress.receivedBytes = before;
            return downloadVerified(this.options.store, fileKey(name, file.path), localPath, file, {
              signal,
              onBytes: (bytes) => {
                progress.receivedBytes += bytes;
              },
              keyring: this.options.keyring,
              rangeRetry,
              localBase,
              onLocalReuse: (reuse) => log.info('restoring from an earlier version on disk', { file: file.path, ...reuse }),
            });
          }, `download ${name}/${file.path}`);
        const base = await bases?.baseFor(file);
        let verification: Verification;
        try {
          verification = await download(base);
        } catch (error) {
          // The earlier version changed under the restore, or did not hold what its chunks said.
          if (base === undefined || !(isAppError(error, 'integrity') || isAppError(error, 'local_io'))) throw error;
          log.warn('the earlier version on disk did not give the file; fetching it whole', { file: file.path, base: base.path, error: describeError(error) });
          verification = await download(undefined);
        }
        verifications.push(verification);
      }
      await fsyncTree(staging);
      await requireStaged(plan, staging);
      if (plan.manifest === undefined && (await exists(target))) {
        return await this.compareExistingToStaged(plan, staging, log);
      }
      await this.moveIntoPlace(plan, staging, target);
      const verification = weakest(verifications);
      log.info('snapshot restored', { files: plan.files.length, bytes: plan.totalBytes, verification, durationMs: this.options.now() - progress.startedAtMs });
      return { outcome: 'restored', snapshot: name, files: plan.files.length, bytes: plan.totalBytes, verification, durationMs: this.options.now() - progress.startedAtMs };
    } finally {
      await rm(staging, { recursive: true, force: true }).catch((error: unknown) => log.warn('cannot remove staging directory', { staging, error: describeError(error) }));
      this.stagingInUse.delete(stagingName);
    }
  }

  private localBases(plan: RemoteSnapshotPlan, signal: AbortSignal | undefined, log: Logger): LocalBaseFinder | undefined {
    const minFileBytes = this.options.localBaseMinFileBytes;
    if (minFileBytes === undefined) return undefined;
    return new LocalBaseFinder({ store: this.options.store, backupDir: this.options.backupDir, snapshot: plan.name, manifest: plan.manifest, minFileBytes, log, signal });
  }

  /** The rename is the commit point: before it nothing exists under the real name, after it everything does. */
  private async moveIntoPlace(plan: RemoteSnapshotPlan, staging: string, target: string): Promise<void> {
    if (await exists(target)) throw new AppError('conflict', `${plan.name} appeared locally during the restore; nothing was overwritten`);
    if (plan.kind === 'file') {
      await rename(path.join(staging, plan.name), target);
      await rmdir(staging).catch(() => undefined);
    } else {
      await rename(staging, target);
    }
    await fsyncDirectory(this.options.backupDir);
  }

  private async localManifest(name: string): Promise<Manifest> {
    const stat = await statSnapshot(this.options.backupDir, name);
    const files = [];
    for (const file of stat.files) {
      const absolute = stat.kind === 'file' ? path.join(this.options.backupDir, name) : path.join(this.options.backupDir, name, ...file.path.split('/'));
      files.push({ path: file.path, size: file.size, sha256: await sha256OfLocalFile(absolute, file.size) });
    }
    return buildManifest(name, stat.kind, files);
  }

  private async compareExisting(plan: RemoteSnapshotPlan, remote: Manifest, log: Logger): Promise<RestoreOutcome> {
    const local = await this.localManifest(plan.name);
    if (sameContent(local, remote)) return { outcome: 'already-present', snapshot: plan.name, files: remote.files.length, bytes: plan.totalBytes };
    throw this.conflict(local, remote, log);
  }

  /** Without a remote manifest the remote SHA-256s are only known once downloaded. */
  private async compareExistingToStaged(plan: RemoteSnapshotPlan, staging: string, log: Logger): Promise<RestoreOutcome> {
    const local = await this.localManifest(plan.name);
    const stagedFiles = [];
    for (const file of plan.files) {
      stagedFiles.push({ path: file.path, size: file.size, sha256: await sha256OfLocalFile(path.join(staging, ...file.path.split('/')), file.size) });
    }
    const remote = buildManifest(plan.name, plan.kind, stagedFiles);
    if (sameContent(local, remote)) return { outcome: 'already-present', snapshot: plan.name, files: plan.files.length, bytes: plan.totalBytes };
    throw this.conflict(local, remote, log);
  }

  private conflict(local: Manifest, remote: Manifest, log: Logger): AppError {
    const details = { snapshot: local.snapshot, localSha256: manifestDigest(local), remoteSha256: manifestDigest(remote), differingFiles: diffManifests(local, remote).slice(0, 50) };
    log.warn('restore refused: a local snapshot of that name has different content; nothing was written', details);
    return new AppError('conflict', `local snapshot ${local.snapshot} differs from the remote one; nothing was overwritten`, {
      details,
      hint: 'move the local snapshot aside first if the remote one should replace it',
    });
  }
}

/**
 * Every file verified into the staging directory is still there, at its size, right before the
 * rename: each was checked as it was written, and something else in the directory (a cleanup, an
 * operator) must not turn a verified restore into a partial one reported as complete.
 */
async function requireStaged(plan: RemoteSnapshotPlan, staging: string): Promise<void> {
  for (const file of plan.files) {
    const staged = path.join(staging, ...file.path.split('/'));
    const found = await lstat(staged).catch(() => undefined);
    if (found === undefined || !found.isFile() || found.size !== file.size) {
      throw new AppError('local_io', `restore ${plan.name}: ${file.path} is ${found === undefined ? 'gone' : 'not as verified'} in the staging directory before the rename; nothing was put in place`, { retryable: true });
    }
  }
}

async function exists(target: string): Promise<boolean> {
  try {
    await lstat(target);
    return true;
  } catch {
    return false;
  }
}

async function fsyncTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) await fsyncTree(path.join(dir, entry.name));
  }
  await fsyncDirectory(dir);
}

function weakest(verifications: readonly Verification[]): Verification {
  if (verifications.includes('size-only')) return 'size-only';
  if (verifications.includes('etag')) return 'etag';
  return 'sha256';
}
