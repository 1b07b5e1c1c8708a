import { watch, type FSWatcher } from 'node:fs';

export interface FolderWatch {
  /** Resolves once changes below the folder are reported. */
  ready: Promise<void>;
  close(): Promise<void>;
}

/**
 * Watches one snapshot folder and what is below it: `onChange` for anything written, added,
 * removed or renamed there. One kernel watch per directory (Node's recursive fs.watch), nothing
 * kept per file, and links are never followed: a snapshot watched while it settles or uploads
 * costs a few watches, and closing it frees them.
 */
export function watchFolder(folder: string, onChange: () => void, onError: (error: unknown) => void): FolderWatch {
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(folder, { recursive: true, persistent: false }, () => onChange());
    watcher.on('error', onError);
  } catch (error) {
    // Gone (or replaced by a file) before it could be watched: the directory's own watch reports that.
    onError(error);
  }
  return {
    ready: Promise.resolve(),
    close: async () => watcher?.close(),
  };
}
