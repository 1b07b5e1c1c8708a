import { etagsAreDigests, type S3AtRest } from '../remote/s3-storage-settings.js';

/**
 * How memsync proves that an object it stored holds the bytes it sent, decided once from the
 * storage settings, so the uploader, the start log and /sync/status say the same thing.
 *
 * - `etag`: the server's ETag is the MD5 of the bytes it stored (of each part's, for a multipart
 *   upload), and must be the one predicted from the bytes sent. Server-side copies and delta
 *   compositions are proven the same way.
 * - `read-back-sha256`: the ETag proves nothing (SSE-KMS on AWS S3: it is not an MD5 of the
 *   content), so each uploaded object is read back whole and its SHA-256 compared with that of
 *   the bytes sent: the manifest's for a plain file. A download per upload; never less checked.
 *   A copy or composition could only be proven the same way, by downloading what it saved
 *   sending, so both are off.
 *
 * A checksum the server computes (x-amz-checksum-sha256) is not relied on: Ceph RGW 16 takes the
 * header and ignores it, so a wrong value is stored without complaint and nothing would be proven.
 */

export type StoredVerificationMethod = 'etag' | 'read-back-sha256';

export interface StoredVerification {
  method: StoredVerificationMethod;
  /** Whether server-side copies and delta compositions may be used: they are proven by their ETag only. */
  serverSideCopies: boolean;
  /** How stored objects are verified, in one sentence: for the start log and /sync/status. */
  description: string;
}

export const ETAG_VERIFICATION: StoredVerification = {
  method: 'etag',
  serverSideCopies: true,
  description: "each stored object's ETag must be the MD5 predicted from the bytes sent (of each part, for multipart uploads); copies and compositions likewise",
};

const READ_BACK_VERIFICATION: StoredVerification = {
  method: 'read-back-sha256',
  serverSideCopies: false,
  description:
    'SSE-KMS: ETags are not MD5s of the content, so each uploaded object is read back and its SHA-256 compared with that of the bytes sent; server-side copies and delta uploads are off (they could only be proven by downloading them)',
};

/** Undefined settings: not an S3 store, or nothing asked for at rest. */
export function storedVerification(atRest: S3AtRest | undefined): StoredVerification {
  return etagsAreDigests(atRest) ? ETAG_VERIFICATION : READ_BACK_VERIFICATION;
}
