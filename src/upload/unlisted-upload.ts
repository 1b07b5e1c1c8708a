import { AppError, isAppError } from '../errors.js';
import type { RemoteIndex } from '../remote/remote-index.js';

/**
 * When a snapshot's upload may start without a listing of its own name. The listing tells what
 * the bucket holds under the name (an earlier attempt's objects, another writer's, a complete
 * snapshot); a server that refuses a conditional PUT over an existing key tells the same, as a
 * 412, on the first write that meets such an object. The upload then starts over with a listing,
 * which decides as for any other snapshot. During a burst of small snapshots this is one request
 * in six.
 */
export interface ListingQuestion {
  /** The bucket's listing as sweeps keep it and uploads extend it; undefined: not kept. */
  index: RemoteIndex | undefined;
  name: string;
  /** This process tried the name before and has not completed it: a failed attempt may have left objects. */
  triedBefore: boolean;
  /** The start probe found If-None-Match honoured on PUT. */
  conditionalWritesHonoured: boolean;
  /**
   * A file goes in parts or may be composed from its previous version: the name claim and the
   * large-file decisions rest on the listing, and a completed multipart upload is not create-only
   * on every server.
   */
  largeFiles: boolean;
}

export function listingNeeded(q: ListingQuestion): boolean {
  if (q.index === undefined || q.index.listedAtMs === 0 || q.index.snapshots.has(q.name)) return true;
  return q.triedBefore || !q.conditionalWritesHonoured || q.largeFiles;
}

/** A create-only write found its key taken while the upload ran without a listing. */
export function nameTaken(key: string, cause: unknown): AppError {
  return new AppError('conflict', `${key} exists although the bucket listing showed nothing under its snapshot`, { cause, details: { nameTaken: true } });
}

export function isNameTaken(error: unknown): boolean {
  return isAppError(error, 'conflict') && error.details?.nameTaken === true;
}
