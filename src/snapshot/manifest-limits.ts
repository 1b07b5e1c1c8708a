import { encryptedSize } from '../crypto/format.js';
import type { ManifestFormat } from './manifest-codec.js';

/**
 * How large a manifest memsync writes can be. A bucket can hold anything under a manifest's
 * name, and a manifest is read whole into memory and parsed, so every read of one is bounded by
 * what the format can legitimately need: a larger object is not memsync's, and is refused
 * (before the GET when the listing already says so) instead of taking the agent's memory.
 */

/** Format, version, kind and a snapshot name of at most MAX_SNAPSHOT_NAME_LENGTH (200) characters, with JSON's punctuation. */
const HEADER_MAX_BYTES = 1024;

/**
 * One file's entry as serializeManifest prints it: about 130 bytes of keys, indentation and
 * punctuation, a 64-digit SHA-256, a size of at most 16 digits, and a path of at most 1,024
 * characters (isSafeRelativePath), none of which JSON prints in more than 3 bytes (a quote,
 * escaped, takes 2).
 */
const ENTRY_OVERHEAD_MAX_BYTES = 160;
const MANIFEST_ENTRY_MAX_BYTES = ENTRY_OVERHEAD_MAX_BYTES + 1024 * 3;

/**
 * No manifest is read beyond this, whatever its listing says. The format sets no limit on the
 * number of files; 16 MiB holds over 5,000 entries with the longest paths and about 90,000 with
 * 40-character ones, many times what a memory-service backup holds, while parsing one stays
 * within tens of MiB of heap.
 */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

/**
 * The largest manifest of `format` that a snapshot of `fileCount` files can have (a manifest lists
 * only files its snapshot holds); without a count, the absolute limit.
 */
export function manifestByteLimit(format: ManifestFormat, fileCount?: number): number {
  const plain = fileCount === undefined ? MAX_MANIFEST_BYTES : Math.min(MAX_MANIFEST_BYTES, HEADER_MAX_BYTES + fileCount * MANIFEST_ENTRY_MAX_BYTES);
  // Manifests are encrypted in the default chunk size (see encryptedManifestCodec).
  return format === 'plain' ? plain : encryptedSize(plain);
}

/**
 * An upper bound on the plain manifest of a snapshot holding `paths`: a snapshot whose manifest
 * would exceed MAX_MANIFEST_BYTES could be uploaded but never restored, so it is refused first.
 */
export function manifestSizeBound(paths: readonly string[]): number {
  let bytes = HEADER_MAX_BYTES;
  for (const path of paths) bytes += ENTRY_OVERHEAD_MAX_BYTES + Buffer.byteLength(JSON.stringify(path));
  return bytes;
}
