import { existsSync, watch as watchDirectory, type FSWatcher } from 'node:fs';
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { isIgnoredEntryName } from '../snapshot/naming.js';
import { watchFolder, type FolderWatch } from './folder-watch.js';

export interface WatcherOptions {
  backupDir: string;
  log: Logger;
  /** Called with the top-level entry name for any change at or below it (below: only where watched inside). */
  onActivity: (name: string) => void;
  /** How long an uploaded snapshot is still watched inside after its last change; default RECENTLY_CHANGED_MS. */
  watchAfterChangeMs?: number;
  now?: () => number;
}

/**
 * The service may extend a snapshot it wrote a moment ago (a file that grows again after a pause
 * longer than the settle window, a rewrite in the same second): an uploaded snapshot is watched
 * inside until it has been quiet this long, so such a change is seen and judged at once. Quiet
 * for longer, it is finished; a change after that is the next sweep's to find.
 */
export const RECENTLY_CHANGED_MS = 10 * 60_000;

interface Inside {
  /** Set once the folder is known to be a directory; undefined while that is being checked. */
  folder: FolderWatch | undefined;
  ready: Promise<void>;
  /** Watching ends then unless activity inside comes first (see releaseInside). */
  release: NodeJS.Timeout | undefined;
}

/**
 * The backup directory, reduced to "something happened to snapshot NAME". It knows nothing of
 * settling or storage; dotfiles (memsync's own staging) and temp names are ignored so a restore
 * in progress never looks like a new backup.
 *
 * The directory itself is watched with one plain fs.watch: the kernel names every entry created,
 * removed or renamed, even one gone again before anything could look at it, so each name that
 * appeared is reported. Inside a snapshot folder it watches only where asked to (snapshots not
 * yet uploaded, or changed recently) and in folders it sees appear: thousands of uploaded
 * snapshots cost no watches, and a change to one long quiet is the next sweep's to find.
 */
export class BackupWatcher {
  private directory: FSWatcher | undefined;
  private readonly inside = new Map<string, Inside>();
  private running = false;

  constructor(private readonly options: WatcherOptions) {}

  get isRunning(): boolean {
    return this.running;
  }

  /** Snapshot folders watched inside now (or about to be). */
  get watchingInside(): number {
    return this.inside.size;
  }

  isWatchingInside(name: string): boolean {
    return this.inside.has(name);
  }

  /** Watching has begun when this resolves: a change made after it is reported. */
  async start(): Promise<void> {
    const directory = watchDirectory(this.options.backupDir, (_event, name) => {
      // Linux and macOS always name the entry; elsewhere a nameless event is left to the sweeps.
      if (name !== null) this.onEntry(name);
    });
    directory.on('error', (error) => this.options.log.error('watcher error', { error: describeError(error) }));
    this.directory = directory;
    this.running = true;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.directory?.close();
    this.directory = undefined;
    const closing = [...this.inside.values()].map((entry) => {
      clearTimeout(entry.release);
      return entry.folder?.close();
    });
    this.inside.clear();
    await Promise.all(closing);
  }

  /**
   * Watches inside a snapshot folder (not yet uploaded, or being settled or uploaded) until
   * stopWatchingInside; resolves once watching, or at once for a name that is no folder.
   */
  watchInside(name: string): Promise<void> {
    return (this.inside.get(name) ?? this.beginInside(name)).ready;
  }

  /**
   * The snapshot is in sync with the bucket: watching inside it ends once it has been quiet for
   * watchAfterChangeMs since `lastChangeMs` (at once if it has been), unless activity inside
   * comes first. A snapshot not watched inside stays so.
   */
  releaseInside(name: string, lastChangeMs: number): void {
    const entry = this.inside.get(name);
    if (entry === undefined) return;
    const windowMs = this.options.watchAfterChangeMs ?? RECENTLY_CHANGED_MS;
    // A change time ahead of the clock (skew) counts as a change now.
    const remainingMs = Math.min(windowMs, lastChangeMs + windowMs - (this.options.now ?? Date.now)());
    clearTimeout(entry.release);
    if (remainingMs <= 0) {
      this.stopWatchingInside(name);
      return;
    }
    entry.release = setTimeout(() => {
      if (this.inside.get(name) === entry) this.stopWatchingInside(name);
    }, remainingMs);
    entry.release.unref();
  }

  /** Gone, or no longer of interest: changes inside it are no longer reported. */
  stopWatchingInside(name: string): void {
    const entry = this.inside.get(name);
    if (entry === undefined) return;
    this.inside.delete(name);
    clearTimeout(entry.release);
    void entry.folder?.close();
  }

  private onEntry(name: string): void {
    if (!this.running || isIgnoredEntryName(name)) return;
    // The directory itself removed or moved: the event names it, and it is no snapshot.
    if (name === path.basename(this.options.backupDir) && !existsSync(this.options.backupDir)) {
      this.options.log.error('backup directory removed or moved; restart memsync once it is back', { backupDir: this.options.backupDir });
      return;
    }
    this.options.onActivity(name);
    // Created, removed or replaced: a folder created anew under a watched name is another directory.
    this.stopWatchingInside(name);
    this.beginInside(name);
  }

  private beginInside(name: string): Inside {
    const entry: Inside = { folder: undefined, ready: Promise.resolve(), release: undefined };
    this.inside.set(name, entry);
    entry.ready = this.openInside(name, entry);
    return entry;
  }

  private async openInside(name: string, entry: Inside): Promise<void> {
    const absolute = path.join(this.options.backupDir, name);
    // A single-file snapshot is covered by the directory's own watch; a link is never followed.
    const isFolder = await lstat(absolute).then(
      (stats) => stats.isDirectory(),
      () => false,
    );
    // Stopped, or begun anew, while the check ran.
    if (this.inside.get(name) !== entry) return;
    if (!isFolder) {
      this.inside.delete(name);
      return;
    }
    entry.folder = watchFolder(
      absolute,
      () => {
        // Changing again: watched until the agent finds it in sync once more.
        clearTimeout(entry.release);
        entry.release = undefined;
        this.options.onActivity(name);
      },
      (error) => this.options.log.error('watcher error', { snapshot: name, error: describeError(error) }),
    );
    await entry.folder.ready;
  }
}
