import { createHash } from 'node:crypto';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { isSnapshotName } from './naming.js';

/**
 * The per-snapshot manifest: the list of files with size and SHA-256, written last. Its
 * presence is what makes a remote snapshot complete. It is deterministic (sorted, no
 * timestamps), so the same local content always serialises to the same bytes and therefore
 * the same ETag: a sweep can recognise an already uploaded snapshot from a listing alone.
 */

/** Stored next to the snapshot's files; a dot name the memory service never writes. */
export const MANIFEST_FILE_NAME = '.memsync-manifest.json';

/**
 * Written (conditionally) before a snapshot's first multipart upload, naming the agent that
 * uploads it: servers that ignore If-None-Match when a multipart upload completes would let a
 * second writer replace the first one's large files, so the name is claimed with a single PUT,
 * which they do honour. Not a file of the snapshot: never listed, restored or counted.
 */
export const CLAIM_FILE_NAME = '.memsync-claim';

export function claimKey(snapshot: string): string {
  return `${snapshot}/${CLAIM_FILE_NAME}`;
}

export type SnapshotKind = 'directory' | 'file';

export interface ManifestFile {
  /** Relative path with '/' separators; for a single-file snapshot, the snapshot name. */
  path: string;
  size: number;
  sha256: string;
}

export interface Manifest {
  format: 'memsync-manifest';
  version: 1;
  snapshot: string;
  kind: SnapshotKind;
  files: ManifestFile[];
}

/** A relative path that cannot escape its snapshot directory once joined to it. */
export function isSafeRelativePath(relativePath: string): boolean {
  if (relativePath.length === 0 || relativePath.length > 1024) return false;
  if (relativePath.startsWith('/') || /[\u0000-\u001f\\]/.test(relativePath)) return false;
  return relativePath.split('/').every((segment) => segment.length > 0 && segment !== '.' && segment !== '..');
}

const manifestSchema = z.object({
  format: z.literal('memsync-manifest'),
  version: z.literal(1),
  snapshot: z.string().refine(isSnapshotName, 'invalid snapshot name'),
  kind: z.enum(['directory', 'file']),
  files: z.array(
    z.object({
      path: z.string().refine(isSafeRelativePath, 'unsafe path'),
      size: z.number().int().nonnegative(),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
    }),
  ),
});

export function buildManifest(snapshot: string, kind: SnapshotKind, files: readonly ManifestFile[]): Manifest {
  const sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return {
    format: 'memsync-manifest',
    version: 1,
    snapshot,
    kind,
    files: sorted.map(({ path, size, sha256 }) => ({ path, size, sha256 })),
  };
}

export function serializeManifest(manifest: Manifest): Buffer {
  const ordered = buildManifest(manifest.snapshot, manifest.kind, manifest.files);
  return Buffer.from(`${JSON.stringify(ordered, null, 2)}\n`, 'utf8');
}

/** Parses and validates a manifest read from the store; a hostile one cannot name unsafe paths. */
export function parseManifest(bytes: Buffer, expectedSnapshot: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new AppError('integrity', `manifest of ${expectedSnapshot} is not JSON`, { cause: error, retryable: false });
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    throw new AppError('integrity', `manifest of ${expectedSnapshot} is invalid: ${parsed.error.issues[0]?.message ?? 'unknown'}`, { retryable: false });
  }
  if (parsed.data.snapshot !== expectedSnapshot) {
    throw new AppError('integrity', `manifest under ${expectedSnapshot} names another snapshot (${parsed.data.snapshot})`, { retryable: false });
  }
  return buildManifest(parsed.data.snapshot, parsed.data.kind, parsed.data.files);
}

/** The ETag S3 reports for the manifest object memsync writes (one PUT: the MD5 of its bytes). */
export function manifestEtag(manifest: Manifest): string {
  return createHash('md5').update(serializeManifest(manifest)).digest('hex');
}

/** A short content checksum of a whole manifest, shown to operators on conflicts. */
export function manifestDigest(manifest: Manifest): string {
  return createHash('sha256').update(serializeManifest(manifest)).digest('hex');
}

export function sameContent(a: Manifest, b: Manifest): boolean {
  if (a.kind !== b.kind || a.files.length !== b.files.length) return false;
  const left = buildManifest(a.snapshot, a.kind, a.files).files;
  const right = buildManifest(b.snapshot, b.kind, b.files).files;
  return left.every((file, i) => {
    const other = right[i];
    return other !== undefined && other.path === file.path && other.size === file.size && other.sha256 === file.sha256;
  });
}

export interface FileDifference {
  path: string;
  local: { size: number; sha256: string } | undefined;
  remote: { size: number; sha256: string } | undefined;
}

/** Per-file differences between two manifests, for conflict reports. */
export function diffManifests(local: Manifest, remote: Manifest): FileDifference[] {
  const remoteByPath = new Map(remote.files.map((f) => [f.path, f]));
  const differences: FileDifference[] = [];
  for (const file of local.files) {
    const other = remoteByPath.get(file.path);
    remoteByPath.delete(file.path);
    if (other === undefined || other.sha256 !== file.sha256 || other.size !== file.size) {
      differences.push({ path: file.path, local: { size: file.size, sha256: file.sha256 }, remote: other && { size: other.size, sha256: other.sha256 } });
    }
  }
  for (const other of remoteByPath.values()) differences.push({ path: other.path, local: undefined, remote: { size: other.size, sha256: other.sha256 } });
  return differences;
}

/** Object key of a file relative to the configured prefix: `{snapshot}/{path}`. */
export function fileKey(snapshot: string, relativePath: string): string {
  return `${snapshot}/${relativePath}`;
}

export function manifestKey(snapshot: string): string {
  return `${snapshot}/${MANIFEST_FILE_NAME}`;
}

export function totalBytes(manifest: Manifest): number {
  return manifest.files.reduce((sum, file) => sum + file.size, 0);
}
