import { manifestSizeBound, MAX_MANIFEST_BYTES } from '../snapshot/manifest-limits.js';
import { AppError } from '../errors.js';
import { normalizeEtag, producesEtag, type FileDigest } from '../snapshot/digest.js';
import { FILE_PATH_RULE, refusedFilePaths } from '../snapshot/file-path-rule.js';
import { sameContent, type Manifest } from '../snapshot/manifest.js';
import type { RemoteHead } from '../remote/store.js';

/**
 * Pure decisions of an upload: what the remote side means for a snapshot and for each of
 * its files. Nothing here does I/O, so every rule is tested with tables.
 */

/** Object metadata memsync sets on every file it uploads. */
export const METADATA_AGENT = 'memsync-agent';
export const METADATA_SHA256 = 'memsync-sha256';
/** On encrypted objects instead of the SHA-256: a keyed tag of it (see crypto/keys.ts contentTag). */
export const METADATA_CONTENT_TAG = 'memsync-content-tag';

export type SnapshotDecision = 'upload' | 'already-remote' | 'conflict';

/**
 * Refuses a snapshot holding a file that a restore would refuse (the file path rule), before
 * anything of it is written: uploaded, it would be marked complete and still never come back.
 * Not retryable: only renaming the file in the backup changes the answer.
 */
export function requireUploadablePaths(snapshot: string, paths: readonly string[]): void {
  const manifestBytes = manifestSizeBound(paths);
  if (manifestBytes > MAX_MANIFEST_BYTES) {
    throw new AppError('bad_input', `snapshot ${snapshot} not uploaded: its ${paths.length} files need a manifest of up to ${manifestBytes} bytes, over the ${MAX_MANIFEST_BYTES} bytes any memsync reads back; it could not be restored, so nothing was written`, {
      retryable: false,
      hint: 'a memory-service backup holds a handful of files; check what else is written into the backup directory',
    });
  }
  const refused = refusedFilePaths(paths);
  const first = refused[0];
  if (first === undefined) return;
  const more = refused.length > 1 ? ` (and ${refused.length - 1} more)` : '';
  throw new AppError('bad_input', `snapshot ${snapshot} not uploaded: file path ${JSON.stringify(first.path)} ${first.problem}${more}; it could not be restored, so nothing was written`, {
    retryable: false,
    hint: `${FILE_PATH_RULE}. Rename or remove that file in the snapshot`,
    details: { snapshot, files: refused.slice(0, 20).map(({ path, problem }) => ({ path, problem })) },
  });
}

/** A remote manifest settles the question: same content is done, anything else is a conflict. */
export function decideSnapshot(local: Manifest, remote: Manifest | undefined): SnapshotDecision {
  if (remote === undefined) return 'upload';
  return sameContent(local, remote) ? 'already-remote' : 'conflict';
}

export type FileAction =
  | { action: 'upload'; replace: boolean }
  | { action: 'skip' }
  | { action: 'verify-remote' }
  | { action: 'conflict'; reason: string };

const PLAIN_MD5 = /^[0-9a-f]{32}$/;

/**
 * What to do with one file of a snapshot that has no manifest yet. An object already at the
 * key is kept when it provably holds the same bytes, replaced only when this agent wrote it
 * in an attempt that never completed, and otherwise left alone as a conflict.
 */
export function planFile(local: FileDigest, remote: RemoteHead | undefined, agentId: string, etagsAreDigests = true): FileAction {
  if (remote === undefined) return { action: 'upload', replace: false };
  const remoteEtag = normalizeEtag(remote.etag);
  if (remote.size === local.size && remoteEtag === local.etag) return { action: 'skip' };
  if (remote.metadata[METADATA_AGENT] === agentId) return { action: 'upload', replace: true };
  if (remote.size !== local.size) return { action: 'conflict', reason: `remote object has ${remote.size} bytes, local file ${local.size}` };
  // Another tool's part size, or server-side encryption (an ETag that only looks like an MD5,
  // etagsAreDigests false), gives an ETag that is not comparable: read it to know.
  if (!etagsAreDigests || !PLAIN_MD5.test(remoteEtag) || local.multipart) return { action: 'verify-remote' };
  return { action: 'conflict', reason: `remote object's MD5 ${remoteEtag} differs from local ${local.md5}` };
}

/** An object as it was read back whole from the store (see upload/read-back.ts). */
export interface ReadBackDigest {
  size: number;
  sha256: string;
}

/**
 * Whether the server's account of a finished upload matches what memsync read from disk: its
 * ETag, or, when the object was read back (ETags that are no MD5s: see stored-verification.ts),
 * the SHA-256 of those bytes against that of the bytes sent.
 */
export function verifyStored(local: FileDigest, stored: RemoteHead | undefined, readBack?: ReadBackDigest): string | undefined {
  if (stored === undefined) return 'object missing after upload';
  if (stored.size !== local.size) return `stored ${stored.size} bytes, sent ${local.size}`;
  if (readBack !== undefined) {
    // Never passed for want of something to compare with: that would verify nothing.
    if (local.sha256 === '') return 'object read back, but the SHA-256 of the bytes sent was not taken';
    if (readBack.size !== local.size) return `read back ${readBack.size} bytes, sent ${local.size}`;
    if (readBack.sha256 !== local.sha256) return `SHA-256 ${readBack.sha256} read back, sent ${local.sha256}`;
    return undefined;
  }
  const etag = normalizeEtag(stored.etag);
  // Some servers report the whole object's MD5 for a multipart upload too: that proves as much.
  if (!producesEtag(local, etag)) return `stored ETag ${etag || '(empty)'}, expected ${local.etag}`;
  return undefined;
}

/**
 * planFile for an encrypted upload. Encrypted objects of the same file differ byte for byte
 * (each has its own key), so an object is recognised as this file's by the keyed content tag
 * memsync stores with it and by the size encryption gives it.
 */
export function planEncryptedFile(expected: { sizeBytes: number; contentTag: string }, remote: RemoteHead | undefined, agentId: string): FileAction {
  if (remote === undefined) return { action: 'upload', replace: false };
  if (sameEncryptedContent(expected, remote)) return { action: 'skip' };
  if (remote.metadata[METADATA_AGENT] === agentId) return { action: 'upload', replace: true };
  return { action: 'conflict', reason: 'remote object is not this file encrypted with the configured key' };
}

export function sameEncryptedContent(expected: { sizeBytes: number; contentTag: string }, remote: RemoteHead | undefined): boolean {
  return remote !== undefined && remote.size === expected.sizeBytes && remote.metadata[METADATA_CONTENT_TAG] === expected.contentTag;
}
