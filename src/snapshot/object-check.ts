import { createHash, type Hash } from 'node:crypto';
import { PartHasher } from './digest.js';

/**
 * Whether the bytes read back from the store are the bytes a snapshot says they are. With
 * memsync's manifest that is the size and SHA-256; for objects other tools wrote, only the
 * size and the ETag the store reported (a plain MD5, or a multipart ETag whose part size has
 * to be guessed). Restore and verify both stream an object through an ObjectDigester and
 * judge it with checkObject, so the rules live here once.
 */

/** What an object must be. */
export interface ExpectedObject {
  size: number;
  /** From memsync's manifest; undefined for objects without one. */
  sha256: string | undefined;
  /** As listed by the store, normalized (no quotes, lower case). */
  etag: string;
}

/** How strongly an object was checked: by SHA-256 against a manifest, by its ETag, or only by its length. */
export type Verification = 'sha256' | 'etag' | 'size-only';

export interface ObjectDigest {
  size: number;
  sha256: string;
  /** '' when checked against a manifest's SHA-256 (not computed). */
  md5: string;
  /** Multipart ETags for every part size that could have produced the expected one. */
  partEtags: readonly string[];
}

export type ObjectCheck = { ok: true; verification: Verification } | { ok: false; reason: string };

const MIB = 1024 * 1024;
/** Part sizes other tools commonly use, tried when only a multipart ETag can verify a file. */
const COMMON_PART_SIZES_MIB = [5, 8, 15, 16, 64, 100];
const PLAIN_MD5 = /^[0-9a-f]{32}$/;

/** The N of a multipart ETag `md5-N`; 0 for a plain one. */
export function multipartPartCount(etag: string): number {
  return Number(/-(\d+)$/.exec(etag)?.[1] ?? 0);
}

export function candidatePartSizes(sizeBytes: number, parts: number): number[] {
  const exact = Math.ceil(sizeBytes / parts);
  const roundedToMib = Math.ceil(exact / MIB) * MIB;
  const candidates = new Set([roundedToMib, ...COMMON_PART_SIZES_MIB.map((mib) => mib * MIB)]);
  // Only part sizes that yield exactly `parts` parts can have produced this ETag.
  return [...candidates].filter((partSize) => Math.ceil(sizeBytes / partSize) === parts);
}

/** Digests an object's bytes as they stream past, in constant memory whatever its size. */
export class ObjectDigester {
  private size = 0;
  private readonly sha256: Hash = createHash('sha256');
  /** Only without a manifest: with one, the SHA-256 decides and an MD5 pass would double the hashing cost. */
  private readonly md5: Hash | undefined;
  private readonly partHashers: PartHasher[];

  constructor(expected: ExpectedObject) {
    this.md5 = expected.sha256 === undefined ? createHash('md5') : undefined;
    const parts = multipartPartCount(expected.etag);
    // With a manifest the SHA-256 decides; guessing part sizes is only worth it without one.
    this.partHashers = expected.sha256 === undefined && parts > 0 ? candidatePartSizes(expected.size, parts).map((size) => new PartHasher(size)) : [];
  }

  update(chunk: Buffer): void {
    this.sha256.update(chunk);
    this.md5?.update(chunk);
    for (const hasher of this.partHashers) hasher.update(chunk);
    this.size += chunk.length;
  }

  /** Call once, after the last chunk. */
  digest(): ObjectDigest {
    return { size: this.size, sha256: this.sha256.digest('hex'), md5: this.md5?.digest('hex') ?? '', partEtags: this.partHashers.map((hasher) => hasher.etag()) };
  }
}

/** Judges what was read against what the object must be. Pure. */
export function checkObject(expected: ExpectedObject, actual: ObjectDigest): ObjectCheck {
  if (actual.size !== expected.size) return { ok: false, reason: `received ${actual.size} bytes, expected ${expected.size}` };
  if (expected.sha256 !== undefined) {
    if (actual.sha256 !== expected.sha256) return { ok: false, reason: `SHA-256 ${actual.sha256} does not match the manifest's ${expected.sha256}` };
    return { ok: true, verification: 'sha256' };
  }
  if (multipartPartCount(expected.etag) === 0) {
    // Not an MD5 at all (SSE-KMS, some gateways): the length is all there is to check.
    if (!PLAIN_MD5.test(expected.etag)) return { ok: true, verification: 'size-only' };
    if (actual.md5 !== expected.etag) return { ok: false, reason: `MD5 ${actual.md5} does not match the ETag ${expected.etag}` };
    return { ok: true, verification: 'etag' };
  }
  // An unknown part size is not evidence of corruption: without a match, only the length was checked.
  return { ok: true, verification: actual.partEtags.includes(expected.etag) ? 'etag' : 'size-only' };
}

/** The weakest of several checks: a snapshot is only as verified as its least verified file. */
export function weakestVerification(verifications: Iterable<Verification>): Verification {
  let weakest: Verification = 'sha256';
  for (const verification of verifications) {
    if (verification === 'size-only') return 'size-only';
    if (verification === 'etag') weakest = 'etag';
  }
  return weakest;
}
