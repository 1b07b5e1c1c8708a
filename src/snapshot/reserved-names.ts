/**
 * Object names memsync keeps directly under a snapshot for itself. They are dot names the
 * memory service never writes, and no file of a snapshot may have one at the top (see
 * file-path-rule.ts): a file stored there would be taken for memsync's own object.
 */

/** The plain manifest: stored next to the snapshot's files, written last. */
export const MANIFEST_FILE_NAME = '.memsync-manifest.json';

/** The encrypted manifest: another name, so a listing alone tells plain snapshots from encrypted ones. */
export const ENCRYPTED_MANIFEST_FILE_NAME = '.memsync-manifest.enc';

/**
 * Written (conditionally) before a snapshot's first multipart upload, naming the agent that
 * uploads it: servers that ignore If-None-Match when a multipart upload completes would let a
 * second writer replace the first one's large files, so the name is claimed with a single PUT,
 * which they do honour. Not a file of the snapshot: never listed, restored or counted.
 */
export const CLAIM_FILE_NAME = '.memsync-claim';

/**
 * The chunk signatures of the snapshot's large files (see delta/signature-bundle.ts), written
 * before the manifest, so a later version of those files can be composed from this one by an
 * agent with no state of its own. Not a file of the snapshot: never listed, restored or counted.
 */
export const SIGNATURES_FILE_NAME = '.memsync-signatures';

export const RESERVED_FILE_NAMES: ReadonlySet<string> = new Set([MANIFEST_FILE_NAME, ENCRYPTED_MANIFEST_FILE_NAME, CLAIM_FILE_NAME, SIGNATURES_FILE_NAME]);

/** memsync's bookkeeping objects under a snapshot (not its manifest): no content of the snapshot. */
export function isBookkeepingName(relative: string): boolean {
  return relative === CLAIM_FILE_NAME || relative === SIGNATURES_FILE_NAME;
}
