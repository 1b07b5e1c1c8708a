import { createHash } from 'node:crypto';
import { consumeBody } from '../remote/body.js';
import type { RemoteStore } from '../remote/store.js';
import type { ReadBackDigest } from './plan.js';

/**
 * Reads an object back whole and digests it as it streams past, in constant memory: how an
 * upload is proven where the store's ETag is no digest of the content (stored-verification.ts).
 * A connection that breaks mid-body fails as a retryable remote error, like any download.
 */
export async function readBack(store: RemoteStore, key: string, signal: AbortSignal | undefined): Promise<ReadBackDigest> {
  const hash = createHash('sha256');
  let size = 0;
  await consumeBody(await store.get(key, signal), `${key} (read back to verify it)`, (chunk) => {
    hash.update(chunk);
    size += chunk.length;
  });
  return { size, sha256: hash.digest('hex') };
}
