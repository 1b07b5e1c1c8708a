import type { RemoteHead } from '../remote/store.js';
import { METADATA_AGENT } from './plan.js';

/**
 * The lease on a name claim (see CLAIM_FILE_NAME): its owner rewrites the claim every third of
 * the lease while it uploads, and a claim left unchanged for longer than its lease and a clock
 * allowance belongs to an agent that stopped, so another may take it over.
 *
 * Clocks: a claim's age is the store's Date when it answers a HEAD minus the claim's
 * Last-Modified. Both come from the store, but not always from one machine: behind a load
 * balancer, the gateway that stamped the write and the one answering the HEAD each use their own
 * clock. So a claim lapses only when its age passes the lease plus clockSkewAllowanceMs (30 s, or
 * a tenth of the lease if more). The owner times its renewals by its own monotonic clock from the
 * moment it sent the last one (always before the store stamped it), and stops uploading when a
 * quarter of the lease is left without one, whatever a renewal in flight is doing. A takeover
 * therefore comes after the owner stopped as long as two of the store's clocks disagree by less
 * than the allowance, and the owner's clock rate, and requests it had in flight when it stopped,
 * stay within the quarter of the lease left (with CLOUD_SYNC_CLAIM_LEASE_S at its 120 s minimum:
 * 30 s of allowance and 30 s of quarter).
 */

/** Default lease: long enough that a store outage of a few minutes does not cost the name. */
export const DEFAULT_CLAIM_LEASE_MS = 10 * 60_000;

/** Object metadata: the lease the claim's owner renews it within, in milliseconds. */
export const METADATA_CLAIM_LEASE = 'memsync-claim-lease-ms';

/**
 * Object metadata: a value new with every write of the claim. A write whose answer was lost (a
 * timeout, or a replay refused because the first try had already changed the ETag) is then known
 * to be the owner's own by this value, not taken for another writer's.
 */
export const METADATA_CLAIM_NONCE = 'memsync-claim-nonce';

/** The least allowance for two of the store's machines disagreeing on the time (see above). */
export const MIN_CLOCK_SKEW_ALLOWANCE_MS = 30_000;

/**
 * Claims of memsync versions before leases: no owner renews them. After a day unchanged, their
 * owner is taken to be gone (no single snapshot upload takes that long).
 */
export const UNLEASED_CLAIM_LAPSE_MS = 24 * 60 * 60_000;

/** S3's Last-Modified and Date are whole seconds: an age read from them may be up to this much more than the real one. */
const STORE_CLOCK_RESOLUTION_MS = 1000;

/** How often the owner renews its claim. */
export function renewalIntervalMs(leaseMs: number): number {
  return Math.max(1, Math.floor(leaseMs / 3));
}

/** How long the owner goes on without a successful renewal before it stops its upload: the last quarter is a margin for requests in flight and clock rates. */
export function holdWithoutRenewalMs(leaseMs: number): number {
  return Math.floor((leaseMs * 3) / 4);
}

/** How far past its lease a claim's age must be before it lapses: room for the store's clocks to disagree. */
export function clockSkewAllowanceMs(leaseMs: number): number {
  return Math.max(MIN_CLOCK_SKEW_ALLOWANCE_MS, Math.ceil(leaseMs / 10));
}

/** The age past which a claim with this lease lapses. */
export function lapseAfterMs(leaseMs: number): number {
  return leaseMs + clockSkewAllowanceMs(leaseMs);
}

/** The claim object an agent writes: its id, lease and this write's nonce in metadata (read with a HEAD), and the same as JSON for people looking at the bucket. */
export function claimObject(agentId: string, leaseMs: number, nowMs: number, nonce: string): { body: Buffer; metadata: Record<string, string> } {
  return {
    body: Buffer.from(`${JSON.stringify({ agent: agentId, atMs: nowMs, leaseMs, nonce })}\n`),
    metadata: { [METADATA_AGENT]: agentId, [METADATA_CLAIM_LEASE]: String(leaseMs), [METADATA_CLAIM_NONCE]: nonce },
  };
}

/** The nonce of the write that left the claim `metadata` shows; undefined for claims of older memsync versions. */
export function claimNonce(metadata: Readonly<Record<string, string>>): string | undefined {
  return metadata[METADATA_CLAIM_NONCE];
}

/** The lease a claim states; a claim without a valid one is an older memsync's (UNLEASED_CLAIM_LAPSE_MS). */
export function leaseOf(metadata: Readonly<Record<string, string>>): number {
  const stated = metadata[METADATA_CLAIM_LEASE];
  const leaseMs = stated !== undefined && /^[0-9]{1,15}$/.test(stated) ? Number(stated) : 0;
  return leaseMs > 0 ? leaseMs : UNLEASED_CLAIM_LAPSE_MS;
}

export type ClaimLapse =
  | { lapsed: true; ageMs: number; leaseMs: number }
  /** `remainingMs`: at least this long before it can lapse; undefined when the store gives no times to judge by. */
  | { lapsed: false; leaseMs: number; remainingMs: number | undefined };

/** Whether the claim `head` shows has gone unrenewed for longer than its lease and the clock allowance, by the store's clocks alone. */
export function claimLapse(head: Pick<RemoteHead, 'metadata' | 'lastModifiedMs' | 'storeTimeMs'>): ClaimLapse {
  const leaseMs = leaseOf(head.metadata);
  if (head.lastModifiedMs === undefined || head.storeTimeMs === undefined) return { lapsed: false, leaseMs, remainingMs: undefined };
  // The least the real age can be, given both times are truncated to the second.
  const ageMs = head.storeTimeMs - head.lastModifiedMs - STORE_CLOCK_RESOLUTION_MS;
  const afterMs = lapseAfterMs(leaseMs);
  return ageMs > afterMs ? { lapsed: true, ageMs, leaseMs } : { lapsed: false, leaseMs, remainingMs: afterMs - ageMs };
}
