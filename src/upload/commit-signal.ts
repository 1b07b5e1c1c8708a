import { isAppError } from '../errors.js';

/**
 * The signal a snapshot's commit (the listing before its manifest, the manifest's PUT) runs under.
 * Once every file is stored and verified against the snapshot as it settled, the memory service
 * pruning or rewriting the folder no longer stops the upload: the manifest's PUT may already be at
 * the server, which stores it whether or not the client waits for the answer, and abandoning then
 * would delete the files a stored manifest lists. Finishing costs fewer requests than the clean-up
 * and leaves a complete copy of a snapshot as it existed. Shutdown and a lost claim still stop it.
 */
export interface CommitSignal {
  signal: AbortSignal;
  /** Stops following the upload's signal (call when the commit has ended). */
  dispose(): void;
}

export function commitSignal(upload: AbortSignal): CommitSignal {
  const controller = new AbortController();
  const follow = (): void => {
    if (!isAppError(upload.reason, 'snapshot_gone')) controller.abort(upload.reason);
  };
  if (upload.aborted) follow();
  else upload.addEventListener('abort', follow, { once: true });
  return { signal: controller.signal, dispose: () => upload.removeEventListener('abort', follow) };
}
