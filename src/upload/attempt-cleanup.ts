import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RemoteStore } from '../remote/store.js';
import { fileKey } from '../snapshot/manifest.js';
import { abandonUpload } from './abandon.js';
import type { FilePlan } from './file-plans.js';

/**
 * What an upload cancelled because its snapshot vanished or changed removes, before its manifest
 * was sent (a commit is never abandoned: commit-signal.ts). The snapshot is usually gone locally by
 * then, so every request here goes to a name the service has dropped: only those that can matter
 * are made.
 */
export interface CancelledAttempt {
  name: string;
  plans: readonly FilePlan[];
  /** Keys whose transfer began. */
  attempted: ReadonlySet<string>;
  /** Keys this attempt wrote and verified. */
  created: readonly string[];
  /** Whether it took a claim on the name (it did for files sent in parts). */
  claimed: boolean;
}

export async function cleanUpCancelledAttempt(store: RemoteStore, agentId: string, attempt: CancelledAttempt, log: Logger): Promise<void> {
  const created = new Set(attempt.created);
  // A transfer that began and did not end verified may have stored its object all the same.
  const uncertain = [...attempt.attempted].some((key) => !created.has(key));
  // Keys whose transfer never began hold what they held before: nothing, or (planned as a
  // replacement) an object of this agent's from an earlier attempt, which goes too.
  const begunOrOwn = attempt.plans.filter((plan) => {
    const action = plan.action;
    return action.action === 'upload' && (action.replace || attempt.attempted.has(fileKey(attempt.name, plan.file.path)));
  });
  if (attempt.claimed || uncertain) {
    await abandonUpload(store, agentId, attempt.name, begunOrOwn, attempt.created, log);
    return;
  }
  // Every object this attempt stored is known, and no claim or signatures were written: those and
  // the earlier attempt's are deleted, nothing else is asked.
  const toDelete = new Set([...attempt.created, ...begunOrOwn.map((plan) => fileKey(attempt.name, plan.file.path))]);
  let removed = 0;
  for (const key of toDelete) {
    try {
      await store.delete(key);
      removed += 1;
    } catch (error) {
      log.warn('could not remove abandoned object', { key, error: describeError(error) });
    }
  }
  if (removed > 0) log.info('abandoned partial upload', { objectsRemoved: removed });
}
