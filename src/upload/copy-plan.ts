import type { AppError } from '../errors.js';
import type { RemoteHead } from '../remote/store.js';
import type { RemoteIndex } from '../remote/remote-index.js';
import { normalizeEtag, producesEtag, type FileDigest } from '../snapshot/digest.js';
import { fileKey, type Manifest } from '../snapshot/manifest.js';
import { compareNewestFirst } from '../snapshot/naming.js';
import { METADATA_AGENT, METADATA_SHA256 } from './plan.js';

/**
 * Pure decisions of differential uploads: which complete remote snapshots are worth knowing
 * the manifests of, which stored object a file can be copied from, whether a source and a
 * finished copy are what they should be, and why a refused copy falls back to an upload.
 */

/** S3 refuses CopyObject above 5 GiB; bigger sources are copied in parts (UploadPartCopy). */
export const MAX_SINGLE_COPY_BYTES = 5 * 1024 * 1024 * 1024;

/** A complete remote snapshot whose manifest is known. */
export interface KnownSnapshot {
  name: string;
  timeMs: number;
  manifest: Manifest;
}

export interface CopySource {
  snapshot: string;
  /** Relative to the prefix, as RemoteStore takes it. */
  key: string;
  path: string;
}

/**
 * The complete remote snapshots to know manifests of: the `limit` newest, other than the one
 * being uploaded. Older ones would only add candidates that retention deletes first.
 */
export function copySourceSnapshots(index: RemoteIndex, limit: number, exclude: string): { name: string; timeMs: number; manifestEtag: string }[] {
  const complete = [...index.snapshots.values()].filter(
    // Only plain snapshots: an encrypted object copied into a plain snapshot would hold ciphertext.
    (s): s is typeof s & { manifestEtag: string } => s.complete && !s.encrypted && s.manifestEtag !== undefined && s.name !== exclude,
  );
  return complete.sort(compareNewestFirst).slice(0, limit).map(({ name, timeMs, manifestEtag }) => ({ name, timeMs, manifestEtag }));
}

/**
 * Objects holding the same bytes as `file` (same SHA-256 and size in a complete manifest), best
 * first: the newest snapshot (the last one retention would delete), and within it the same path.
 */
export function selectCopySources(file: { path: string; size: number; sha256: string }, known: readonly KnownSnapshot[], exclude: string): CopySource[] {
  if (file.size === 0) return []; // nothing to save: an empty PUT is cheaper than a copy
  const candidates: (CopySource & { timeMs: number })[] = [];
  for (const snapshot of known) {
    if (snapshot.name === exclude) continue;
    for (const entry of snapshot.manifest.files) {
      if (entry.sha256 !== file.sha256 || entry.size !== file.size) continue;
      candidates.push({ snapshot: snapshot.name, key: fileKey(snapshot.name, entry.path), path: entry.path, timeMs: snapshot.timeMs });
    }
  }
  candidates.sort((a, b) => b.timeMs - a.timeMs || Number(b.path === file.path) - Number(a.path === file.path) || (a.key < b.key ? -1 : 1));
  return candidates.map(({ snapshot, key, path }) => ({ snapshot, key, path }));
}

/**
 * Whether a source object still holds the local file's bytes. A manifest says what a snapshot
 * held when it was written; since then retention may have deleted it or someone replaced it.
 * The ETag must be one the local bytes produce, so a source in another part layout is not used.
 */
export function checkCopySource(local: FileDigest, head: RemoteHead | undefined, composedEtags: ReadonlySet<string> = new Set()): string | undefined {
  if (head === undefined) return 'source gone';
  if (head.size !== local.size) return `source has ${head.size} bytes, local file ${local.size}`;
  const etag = normalizeEtag(head.etag);
  // An object composed from ranges of an earlier version (delta-transfer.ts) has the ETag of its
  // own part layout, which the digest cannot reproduce: memsync noted it when it verified it.
  if (!producesEtag(local, etag) && !composedEtags.has(etag)) return `source ETag ${etag || '(empty)'} is not one of the local file's`;
  return undefined;
}

/**
 * Whether a finished copy holds the local file's bytes and memsync's metadata. A copy in one
 * request may get the plain MD5 (AWS S3) or keep the source's multipart ETag (Ceph RGW), so
 * both predictions are accepted; a copy in parts gets the multipart ETag of memsync's part size.
 * Metadata is checked too: a server that ignored MetadataDirective REPLACE left the source's.
 */
export function verifyCopy(local: FileDigest, agentId: string, stored: RemoteHead | undefined, sourceEtag?: string): string | undefined {
  if (stored === undefined) return 'object missing after copy';
  if (stored.size !== local.size) return `copy has ${stored.size} bytes, expected ${local.size}`;
  const etag = normalizeEtag(stored.etag);
  // A copy that shares the source's data keeps its ETag (Ceph RGW): the source was checked before.
  const keptSourceEtag = sourceEtag !== undefined && etag !== '' && etag === normalizeEtag(sourceEtag);
  if (!producesEtag(local, etag) && !keptSourceEtag) return `copy's ETag ${etag || '(empty)'} is neither ${local.md5 || '(MD5 not computed)'} nor ${local.etag}`;
  if (stored.metadata[METADATA_AGENT] !== agentId || stored.metadata[METADATA_SHA256] !== local.sha256) return 'copy did not get memsync metadata (MetadataDirective REPLACE ignored)';
  return undefined;
}

/**
 * The part size of a copy: one request up to S3's limit, memsync's own part size above it (so
 * the ETag is predicted). Also in parts when the whole-file MD5 was never computed: a copy in
 * one request may get that MD5 as its ETag (AWS S3), which then could not be checked.
 */
export function copyPartSize(local: FileDigest): number | undefined {
  return local.size > MAX_SINGLE_COPY_BYTES || (local.md5 === '' && local.multipart) ? local.partSizeBytes : undefined;
}

/**
 * What a refused copy means: `source` (that object is gone or changed: try another source),
 * `file` (upload this file), or `all` (the server does not implement copies and will not
 * start to: upload this and every later file for the rest of the process).
 */
export type CopyFallback = { reason: string; scope: 'source' | 'file' | 'all' };

/**
 * Why a failed copy falls back to an upload, or undefined when the failure is not about copying
 * (unreachable store after retries, cancelled) and must surface as it is.
 */
export function copyFallback(error: AppError): CopyFallback | undefined {
  const code = typeof error.details?.code === 'string' ? error.details.code : undefined;
  switch (error.kind) {
    case 'not_found':
      return { reason: 'source gone', scope: 'source' };
    case 'conflict':
      return { reason: 'source changed', scope: 'source' };
    case 'remote_rejected':
    case 'object_refused':
      if (code === 'NotImplemented' || /\(HTTP 501\)/.test(error.message)) return { reason: 'copies not implemented by the server', scope: 'all' };
      return { reason: `copy refused (${code ?? 'rejected'})`, scope: 'file' };
    default:
      return undefined;
  }
}
