import { AppError, isAppError } from '../errors.js';
import type { RemoteObject, RemoteStore } from '../remote/store.js';
import { claimKey } from '../snapshot/manifest.js';
import { METADATA_AGENT } from './plan.js';
import { putIfAbsent, type Retrying } from './requests.js';

export interface NameClaimOptions {
  store: RemoteStore;
  agentId: string;
  now: () => number;
  retrying: Retrying;
}

/**
 * Claims the snapshot's name before its first multipart upload (see CLAIM_FILE_NAME). Another
 * agent's claim means that agent is uploading this name: nothing is sent, and the upload is
 * retried later, when the other's manifest says whether the contents are the same.
 */
export async function claimName(name: string, listed: ReadonlyMap<string, RemoteObject>, signal: AbortSignal, options: NameClaimOptions): Promise<void> {
  const { store, agentId, retrying } = options;
  const key = claimKey(name);
  if (!listed.has(key)) {
    const body = Buffer.from(`${JSON.stringify({ agent: agentId, atMs: options.now() })}\n`);
    try {
      await retrying(() => putIfAbsent(store, key, body, undefined, agentId, signal), `upload ${key}`, signal);
      return;
    } catch (error) {
      if (!isAppError(error, 'conflict')) throw error;
    }
  }
  const owner = (await retrying(() => store.head(key), `head ${key}`, signal))?.metadata[METADATA_AGENT];
  if (owner === agentId || owner === undefined) return;
  throw new AppError('conflict', `${name} is being uploaded by another memsync (agent ${owner}); this one waits for its manifest to compare contents`, {
    retryable: false,
    details: { claimedBy: owner },
    hint: 'two machines write backups under the same prefix and name: give each its own CLOUD_SYNC_PREFIX',
  });
}
