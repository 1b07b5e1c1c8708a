import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { isIgnoredEntryName } from '../snapshot/naming.js';

export interface WatcherOptions {
  backupDir: string;
  log: Logger;
  /** Called with the top-level entry name for any change at or below it. */
  onActivity: (name: string) => void;
}

/** Deep enough for any snapshot layout; the memory service's own is one level. */
const WATCH_DEPTH = 8;

/**
 * chokidar over the backup directory, reduced to "something happened to snapshot NAME".
 * It knows nothing of settling or storage; dotfiles (memsync's own staging) and temp names
 * are ignored at the top level so a restore in progress never looks like a new backup.
 */
export class BackupWatcher {
  private watcher: FSWatcher | undefined;
  private running = false;

  constructor(private readonly options: WatcherOptions) {}

  get isRunning(): boolean {
    return this.running;
  }

  async start(): Promise<void> {
    const { backupDir } = this.options;
    const topLevelName = (absolute: string): string | undefined => {
      const relative = path.relative(backupDir, absolute);
      if (relative === '' || relative.startsWith('..')) return undefined;
      return relative.split(path.sep)[0];
    };
    const watcher = watch(backupDir, {
      ignoreInitial: true,
      depth: WATCH_DEPTH,
      followSymlinks: false,
      ignored: (absolute: string) => {
        const name = topLevelName(absolute);
        return name !== undefined && isIgnoredEntryName(name);
      },
    });
    // With followSymlinks off, chokidar reports the links it finds during its initial scan as
    // 'add' events despite ignoreInitial. What exists at start is the start sweep's to judge.
    let ready = false;
    watcher.on('all', (_event, absolute) => {
      const name = topLevelName(absolute);
      if (ready && name !== undefined) this.options.onActivity(name);
    });
    watcher.on('error', (error) => this.options.log.error('watcher error', { error: describeError(error) }));
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    ready = true;
    this.watcher = watcher;
    this.running = true;
  }

  async stop(): Promise<void> {
    this.running = false;
    const watcher = this.watcher;
    this.watcher = undefined;
    await watcher?.close();
  }
}
