import type { Logger } from '../log.js';
import type { FileDigest } from '../snapshot/digest.js';
import type { FileStat, SnapshotStat } from '../snapshot/scan.js';

/**
 * How one file the plan says to write gets to its key. Each way (a server-side copy of an
 * identical object, a composition from its previous version, an upload of its bytes) is a
 * FileTransfer; the uploader tries them in order, cheapest first, and the upload, which always
 * applies, comes last.
 */

/** One file to write. */
export interface TransferInput {
  file: FileStat;
  /** Undefined until its upload has read it: a file hashed on the way out (see streamedDigestFiles). */
  digest: FileDigest | undefined;
  /** Whether the key holds an object of this agent's that is overwritten (see planFile). */
  replace: boolean;
}

/** What all files of one snapshot upload share. */
export interface TransferContext {
  stat: SnapshotStat;
  signal: AbortSignal;
  /** The snapshot's logger (its name as a field). */
  log: Logger;
  /**
   * Planned without a listing of the name (unlisted-upload.ts): a key found taken by a create-only
   * write means the upload starts over with a listing, not a race to resolve here. Default false.
   */
  unlisted?: boolean;
  /** Counts bytes of the file that have just gone out into the snapshot's progress, and reports it. */
  addSentBytes(bytes: number): void;
  /**
   * Called before the first request that may store an object at `key`: a transfer that failed
   * before it (a local file gone) left nothing to clean up there. Optional.
   */
  writing?(key: string): void;
}

export interface TransferResult {
  /**
   * copied: a server-side copy of an identical object; composed: from ranges of its previous
   * version plus the changed bytes; sent: uploaded whole; found: an identical object appeared at
   * the key meanwhile, nothing of this upload's is there. Sent and found bytes were counted into
   * the progress as they went out (addSentBytes); the others are counted once done.
   */
  kind: 'copied' | 'composed' | 'sent' | 'found';
  /** The ETag of the object at the key, as verified. */
  storedEtag: string;
  /** The file's digest when the transfer learned it: a file hashed on the way out, or read to compare after a race. */
  digest?: FileDigest;
  /** Bytes of the local file that went over the wire. */
  bytesSent: number;
  /** Bytes created by a server-side copy of an identical object. */
  bytesCopied: number;
  /** Bytes the server copied from the file's previous version. */
  bytesDelta: number;
}

export interface FileTransfer {
  /** Writes the file's object, or returns undefined when this way does not apply (the next one is tried). */
  attempt(input: TransferInput, context: TransferContext): Promise<TransferResult | undefined>;
}

/** The last way tried: it always applies. */
export interface FinalTransfer extends FileTransfer {
  attempt(input: TransferInput, context: TransferContext): Promise<TransferResult>;
}

/** Writes one file by the first way that applies. */
export async function transferFile(input: TransferInput, context: TransferContext, transfers: readonly FileTransfer[], last: FinalTransfer): Promise<TransferResult> {
  for (const transfer of transfers) {
    const result = await transfer.attempt(input, context);
    if (result !== undefined) return result;
  }
  return last.attempt(input, context);
}

/** What the files of one snapshot upload cost, by way (the SnapshotOutcome fields, in their order). */
export interface TransferTotals {
  bytesSent: number;
  filesSent: number;
  bytesCopied: number;
  filesCopied: number;
  bytesDelta: number;
  filesDelta: number;
}

export function noTransfers(): TransferTotals {
  return { bytesSent: 0, filesSent: 0, bytesCopied: 0, filesCopied: 0, bytesDelta: 0, filesDelta: 0 };
}

export function addTransfer(totals: TransferTotals, result: TransferResult): void {
  totals.bytesSent += result.bytesSent;
  totals.bytesCopied += result.bytesCopied;
  totals.bytesDelta += result.bytesDelta;
  if (result.kind === 'sent') totals.filesSent += 1;
  if (result.kind === 'copied') totals.filesCopied += 1;
  if (result.kind === 'composed') totals.filesDelta += 1;
}
