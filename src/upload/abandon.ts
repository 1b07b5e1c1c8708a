import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { discardObject } from '../remote/discard.js';
import { listAllObjects } from '../remote/remote-index.js';
import type { RemoteStore } from '../remote/store.js';
import { manifestFormatOf } from '../snapshot/manifest-codec.js';
import { claimKey, fileKey, MANIFEST_FILE_NAME } from '../snapshot/manifest.js';
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
  const claim = claimKey(name);
  const keys = [...plans.filter((plan) => plan.action.action === 'upload').map((plan) => fileKey(name, plan.file.path)), claim, signaturesKey(name)];
  for (const key of keys) {
    try {
      if (!sent.has(key) && (await store.head(key))?.metadata[METADATA_AGENT] !== agentId) continue;
      // A claim holds no backup data: every version of it goes. Files are only hidden, never
      // purged: on a server that ignores If-None-Match on multipart completion, an earlier
      // version under the key may be another writer's object.
      await (key === claim ? discardObject(store, key) : store.delete(key));
      removed += 1;
    } catch (error) {
      log.warn('could not remove abandoned object', { key, error: describeError(error) });
    }
  }
  if (removed > 0) log.info('abandoned partial upload', { objectsRemoved: removed });
}

/**
 * Removes what earlier, failed attempts at a snapshot left under its name, once the snapshot is
 * gone locally and will not be retried. Only objects carrying this agent's id go, and nothing at
 * all while the name holds a manifest: a complete snapshot is never touched. Throws when the
 * store cannot be listed or an object cannot be removed (the caller tries again later).
 */
export async function removeAbandonedAttempt(store: RemoteStore, agentId: string, name: string, log: Logger): Promise<number> {
  const objects = await listAllObjects(store, `${name}/`);
  if (holdsManifest(name, objects)) return 0;
  let removed = 0;
  for (const { key } of objects) {
    if ((await store.head(key))?.metadata[METADATA_AGENT] !== agentId) continue;
    // Another agent uploading the same content may have adopted this object meanwhile and
    // completed the name: asked again before each delete, so its snapshot never loses a file.
    if (holdsManifest(name, await listAllObjects(store, `${name}/${MANIFEST_STEM}`))) break;
    await (key === claimKey(name) ? discardObject(store, key) : store.delete(key));
    removed += 1;
  }
  if (removed > 0) log.info('removed what failed upload attempts left of a pruned snapshot', { snapshot: name, objectsRemoved: removed });
  return removed;
}

/** Both manifest formats start with this: one listing shows whether the name is complete in either. */
const MANIFEST_STEM = MANIFEST_FILE_NAME.replace(/\.json$/, '');

function holdsManifest(name: string, objects: readonly { key: string }[]): boolean {
  return objects.some((object) => manifestFormatOf(object.key.slice(name.length + 1)) !== undefined);
}
