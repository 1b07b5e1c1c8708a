import { watch } from 'chokidar';

/**
 * Levels below a snapshot folder that are watched. The folder sits one level under the backup
 * directory, so this reaches as deep as watching the backup directory 8 levels down did; the
 * memory service's own layout is one level.
 */
const DEPTH_BELOW_FOLDER = 7;

export interface FolderWatch {
  /** Resolves once every file and directory below the folder is watched. */
  ready: Promise<void>;
  close(): Promise<void>;
}

/**
 * chokidar over one snapshot folder: `onChange` for anything written, added or removed below
 * it. Files already there when watching begins are not reported.
 */
export function watchFolder(folder: string, onChange: () => void, onError: (error: unknown) => void): FolderWatch {
  const watcher = watch(folder, { ignoreInitial: true, depth: DEPTH_BELOW_FOLDER, followSymlinks: false });
  let ready = false;
  let markReady = (): void => undefined;
  const readyPromise = new Promise<void>((resolve) => {
    markReady = () => {
      ready = true;
      resolve();
    };
  });
  watcher.on('all', (_event, _path, stats) => {
    // With followSymlinks off, chokidar reports the links its first scan finds despite
    // ignoreInitial; links are skipped by the scan anyway, and they are not a change.
    if (!ready && stats?.isSymbolicLink() === true) return;
    onChange();
  });
  watcher.on('error', onError);
  watcher.once('ready', markReady);
  return {
    ready: readyPromise,
    close: () => {
      // No 'ready' comes after close: whoever waits for it must not wait forever.
      markReady();
      return watcher.close();
    },
  };
}
