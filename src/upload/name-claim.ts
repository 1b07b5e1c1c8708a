import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { AppError, describeError, isAppError } from '../errors.js';
import type { Logger } from '../log.js';
import { ConditionalReplaceProbe } from '../remote/conditional-writes.js';
import type { RemoteHead, RemoteObject, RemoteStore } from '../remote/store.js';
import { claimKey, MANIFEST_FILE_NAME } from '../snapshot/manifest.js';
import { claimLapse, claimNonce, claimObject, DEFAULT_CLAIM_LEASE_MS, type ClaimLapse } from './claim-lease.js';
import { HeldClaim } from './claim-renewal.js';
import { METADATA_AGENT } from './plan.js';
import type { Retrying } from './requests.js';

export { HeldClaim } from './claim-renewal.js';

export interface NameClaimOptions {
  store: RemoteStore;
  agentId: string;
  retrying: Retrying;
  /** Lease of the claims this agent writes (see claim-lease.ts); default DEFAULT_CLAIM_LEASE_MS. */
  leaseMs?: number;
  /** Wall clock, only for the time shown in the claim's body. */
  now: () => number;
  /** This host's monotonic clock in milliseconds, for timing renewals; default performance.now. */
  clock?: () => number;
}

/** Rounds of look-and-write before giving up for now: each lost round means another agent wrote the claim meanwhile. */
const MAX_ROUNDS = 4;

/** Both manifest formats start with this: one listing shows whether the name is complete in either. */
const MANIFEST_KEY_STEM = MANIFEST_FILE_NAME.replace(/\.json$/, '');

/**
 * Claims a snapshot's name before its first multipart upload (see CLAIM_FILE_NAME). A claim of
 * another agent means that agent is uploading this name: nothing is sent, and the upload is
 * retried later, when the other's manifest says whether the contents are the same. A claim
 * unrenewed for longer than its lease and a clock allowance (by the store's clocks) is taken
 * over, with a write conditional on its ETag so that of several agents at most one gets it, and
 * only where the store is found to check that condition; elsewhere it stays until an operator
 * removes it.
 */
export class NameClaims {
  private readonly probe: ConditionalReplaceProbe;
  private readonly leaseMs: number;
  private readonly clock: () => number;

  constructor(private readonly options: NameClaimOptions) {
    this.probe = new ConditionalReplaceProbe(options.store);
    this.leaseMs = options.leaseMs ?? DEFAULT_CLAIM_LEASE_MS;
    this.clock = options.clock ?? (() => performance.now());
  }

  /** Claims `name` (`listed`: its listing) and keeps the claim renewed until the returned claim is released or stopped. */
  async claim(name: string, listed: ReadonlyMap<string, RemoteObject>, signal: AbortSignal, log: Logger): Promise<HeldClaim> {
    const { store, agentId, retrying } = this.options;
    const key = claimKey(name);
    let seen = listed.has(key);
    for (let round = 0; round < MAX_ROUNDS; round += 1) {
      if (!seen) {
        const sentMs = this.clock();
        const etag = await this.write(key, signal, { ifNoneMatch: true });
        if (etag !== undefined) return this.hold(name, key, etag, sentMs, signal, log);
      }
      const head = await retrying(() => store.head(key), `head ${key}`, signal);
      seen = head !== undefined;
      if (head === undefined) continue;
      const owner = head.metadata[METADATA_AGENT] ?? 'unknown';
      const lapse = claimLapse(head);
      if (owner !== agentId && !lapse.lapsed) throw claimedElsewhere(name, owner, lapse);
      // Ours from an earlier attempt, or lapsed: replaced only while it is the object looked at.
      const sentMs = this.clock();
      const etag = await this.replace(name, key, head, lapse, signal, log);
      if (etag === undefined) continue;
      if (owner !== agentId) log.info('took over the lapsed claim on the name', { key, from: owner, ageMs: lapse.lapsed ? lapse.ageMs : undefined, leaseMs: lapse.leaseMs });
      return this.hold(name, key, etag, sentMs, signal, log);
    }
    throw new AppError('remote_unavailable', `${name}: the claim on the name kept changing under this memsync; the upload is tried again later`);
  }

  /**
   * Rewrites the claim `head` shows as ours: conditional on its ETag where the store checks that.
   * Undefined when it changed meanwhile. Throws claimedElsewhere when a lapsed claim of another
   * cannot be taken over safely here.
   */
  private async replace(name: string, key: string, head: RemoteHead, lapse: ClaimLapse, signal: AbortSignal, log: Logger): Promise<string | undefined> {
    const owner = head.metadata[METADATA_AGENT] ?? 'unknown';
    // A live claim of our own cannot be taken by anyone meanwhile: no condition needed.
    if (!lapse.lapsed) return this.write(key, signal, { ifNoneMatch: false });
    if (await this.replaceChecked(log)) return this.write(key, signal, { ifMatchEtag: head.etag });
    if (owner === this.options.agentId) return this.write(key, signal, { ifNoneMatch: false });
    log.warn('a lapsed claim on the name cannot be taken over: the store does not check If-Match on PUT, so two memsyncs could both take it', {
      key,
      claimedBy: owner,
      leaseMs: lapse.leaseMs,
      action: `make sure memsync ${owner} is no longer running, then delete ${key} (under CLOUD_SYNC_PREFIX)`,
    });
    throw claimedElsewhere(name, owner, lapse, `delete ${key} by hand once memsync ${owner} is known to be gone: this store does not allow taking over a claim safely`);
  }

  /** Whether the store checks If-Match on PUT (probed once); a probe that fails counts as no. */
  private async replaceChecked(log: Logger): Promise<boolean> {
    try {
      return (await this.probe.mode()) === 'honoured';
    } catch (error) {
      log.warn('could not probe whether the store checks If-Match on PUT; claims are not taken over for now', { error: describeError(error) });
      return false;
    }
  }

  /** Writes this agent's claim; resolves to its new ETag, or undefined when the condition failed (someone else wrote or removed it). */
  private async write(key: string, signal: AbortSignal, condition: { ifNoneMatch: boolean } | { ifMatchEtag: string }): Promise<string | undefined> {
    try {
      return await this.options.retrying(() => this.writeOnce(key, signal, condition), `upload ${key}`, signal);
    } catch (error) {
      if (isAppError(error, 'conflict')) return undefined;
      throw error;
    }
  }

  private async writeOnce(key: string, signal: AbortSignal, condition: { ifNoneMatch: boolean } | { ifMatchEtag: string }, nonce: string = randomUUID()): Promise<string> {
    const { store, agentId } = this.options;
    const { body, metadata } = claimObject(agentId, this.leaseMs, this.options.now(), nonce);
    let etag: string | undefined;
    await store.put(key, () => body, {
      sizeBytes: body.length,
      md5Hex: undefined,
      partSizeBytes: undefined,
      ifNoneMatch: 'ifNoneMatch' in condition && condition.ifNoneMatch,
      ...('ifMatchEtag' in condition ? { ifMatchEtag: condition.ifMatchEtag } : {}),
      metadata,
      signal,
      onProgress: undefined,
      onStored: (stored) => (etag = stored),
    });
    return etag ?? (await this.etagOfOwnWrite(key, nonce, signal));
  }

  /** The ETag of the claim this agent just wrote with `nonce`, for stores that do not answer a write with one: a claim written since by someone else is a conflict. */
  private async etagOfOwnWrite(key: string, nonce: string, signal: AbortSignal): Promise<string> {
    signal.throwIfAborted();
    const head = await this.options.store.head(key);
    if (head === undefined || claimNonce(head.metadata) !== nonce) throw new AppError('conflict', `upload ${key}: the claim changed right after it was written`);
    return head.etag;
  }

  /**
   * Holds the claim just written, unless the name turned complete meanwhile: an agent that
   * finished it removed its claim after its manifest, between our listing and our claim. Then
   * nothing may be sent; the next attempt compares with that manifest.
   */
  private async hold(name: string, key: string, etag: string, sentMs: number, signal: AbortSignal, log: Logger): Promise<HeldClaim> {
    const { store, agentId, retrying } = this.options;
    const held = new HeldClaim(
      {
        store,
        agentId,
        name,
        key,
        leaseMs: this.leaseMs,
        clock: this.clock,
        write: (claimKeyToWrite, writeSignal, ifMatchEtag, nonce) =>
          this.writeOnce(claimKeyToWrite, writeSignal, ifMatchEtag === undefined ? { ifNoneMatch: false } : { ifMatchEtag }, nonce),
        replaceChecked: () => this.replaceChecked(log),
        log,
      },
      etag,
      sentMs,
      signal,
    );
    const manifests = await retrying(() => firstObject(store, `${name}/${MANIFEST_KEY_STEM}`), `list ${name}/${MANIFEST_KEY_STEM}`, signal);
    if (manifests !== undefined) {
      await held.release();
      const completedBy = (await retrying(() => store.head(manifests.key), `head ${manifests.key}`, signal))?.metadata[METADATA_AGENT] ?? 'unknown';
      throw new AppError('conflict', `${name} was completed by another memsync (agent ${completedBy}) while this one prepared its upload; the next attempt compares contents`, {
        retryable: false,
        details: { claimedBy: completedBy },
      });
    }
    held.start();
    return held;
  }
}

async function firstObject(store: RemoteStore, keyPrefix: string): Promise<RemoteObject | undefined> {
  for await (const page of store.listObjects(keyPrefix)) if (page[0] !== undefined) return page[0];
  return undefined;
}

function claimedElsewhere(name: string, owner: string, lapse: ClaimLapse, hint?: string): AppError {
  const lapsesIn = !lapse.lapsed && lapse.remainingMs !== undefined ? `; unless renewed, its claim lapses within ${Math.ceil(lapse.remainingMs / 1000)} s` : '';
  return new AppError('conflict', `${name} is being uploaded by another memsync (agent ${owner}); this one waits for its manifest to compare contents${lapsesIn}`, {
    retryable: false,
    details: { claimedBy: owner },
    hint: hint ?? 'two machines write backups under the same prefix and name: give each its own CLOUD_SYNC_PREFIX',
  });
}
