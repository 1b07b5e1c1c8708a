import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RemoteStore } from '../remote/store.js';
import { claimKey, fileKey } from '../snapshot/manifest.js';
import type { FilePlan } from './file-plans.js';
import { signaturesKey } from './manifest-commit.js';
import { METADATA_AGENT } from './plan.js';

/**
 * Removes what this upload wrote. A request cancelled in flight may have been stored by the
 * server all the same, so every key this upload meant to write is looked at: removed when
 * sent by this upload, or when it carries this agent's id (never someone else's object).
 */
export async function abandonUpload(store: RemoteStore, agentId: string, name: string, plans: readonly FilePlan[], created: readonly string[], log: Logger): Promise<void> {
  const sent = new Set(created);
  let removed = 0;
  // The claim goes too (when it is this agent's): a name that is no longer being uploaded is free.
  const keys = [...plans.filter((plan) => plan.action.action === 'upload').map((plan) => fileKey(name, plan.file.path)), claimKey(name), signaturesKey(name)];
  for (const key of keys) {
    try {
      if (!sent.has(key) && (await store.head(key))?.metadata[METADATA_AGENT] !== agentId) continue;
      await store.delete(key);
      removed += 1;
    } catch (error) {
      log.warn('could not remove abandoned object', { key, error: describeError(error) });
    }
  }
  if (removed > 0) log.info('abandoned partial upload', { objectsRemoved: removed });
}
