import { createHash } from 'node:crypto';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { FILE_PATH_RULE, isAllowedFilePath, refusedFilePaths } from './file-path-rule.js';
import { isSnapshotName } from './naming.js';
import { CLAIM_FILE_NAME, MANIFEST_FILE_NAME } from './reserved-names.js';

/**
 * The per-snapshot manifest: the list of files with size and SHA-256, written last. Its
 * presence is what makes a remote snapshot complete. It is deterministic (sorted, no
 * timestamps), so the same local content always serialises to the same bytes and therefore
 * the same ETag: a sweep can recognise an already uploaded snapshot from a listing alone.
 */

// Re-exported: every reader of manifests knows them by these names.
export { CLAIM_FILE_NAME, MANIFEST_FILE_NAME } from './reserved-names.js';

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

/** A relative path memsync can write back inside its snapshot directory: the file path rule (file-path-rule.ts). */
export function isSafeRelativePath(relativePath: string): boolean {
  return isAllowedFilePath(relativePath);
}

const manifestSchema = z.object({
  format: z.literal('memsync-manifest'),
  version: z.literal(1),
  snapshot: z.string().refine(isSnapshotName, 'invalid snapshot name'),
  kind: z.enum(['directory', 'file']),
  files: z.array(
    z.object({
      // Checked below with the other paths, so that the error can name the file.
      path: z.string(),
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
  requireRestorableFiles(expectedSnapshot, parsed.data.kind, parsed.data.files.map((file) => file.path));
  return buildManifest(parsed.data.snapshot, parsed.data.kind, parsed.data.files);
}

/**
 * Refuses, as an integrity error naming the file, a remote snapshot whose files could not all
 * be written back: a path outside the file path rule, one listed twice, or one that another
 * needs as its directory. A single-file snapshot is its one file, named like the snapshot.
 */
export function requireRestorableFiles(snapshot: string, kind: SnapshotKind, paths: readonly string[]): void {
  const refused = refusedFilePaths(paths)[0];
  if (refused !== undefined) {
    throw new AppError('integrity', `remote snapshot ${snapshot} lists a file that cannot be restored: ${JSON.stringify(refused.path)} ${refused.problem}`, {
      retryable: false,
      hint: FILE_PATH_RULE,
      details: { snapshot, file: refused.path, problem: refused.problem },
    });
  }
  if (kind === 'file' && (paths.length !== 1 || paths[0] !== snapshot)) {
    throw new AppError('integrity', `remote snapshot ${snapshot} is a single file but lists ${paths.length === 1 ? JSON.stringify(paths[0]) : `${paths.length} files`}`, {
      retryable: false,
      details: { snapshot },
    });
  }
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
