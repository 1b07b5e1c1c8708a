import { AppError, describeError, isAppError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RemoteStore } from '../remote/store.js';
import { holdWithoutRenewalMs, renewalIntervalMs } from './claim-lease.js';
import { METADATA_AGENT } from './plan.js';

/** What writes this agent's claim object (see name-claim.ts): conditional on `ifMatchEtag` when given; resolves to the new ETag. */
export type ClaimWriter = (key: string, signal: AbortSignal, ifMatchEtag: string | undefined) => Promise<string>;

export interface HeldClaimOptions {
  store: RemoteStore;
  agentId: string;
  name: string;
  key: string;
  leaseMs: number;
  /** This host's monotonic clock, in milliseconds. */
  clock: () => number;
  write: ClaimWriter;
  /** Whether the store checks If-Match on PUT; where it does not, each renewal checks with a HEAD first. */
  replaceChecked: () => Promise<boolean>;
  log: Logger;
}

/**
 * A claim this agent holds while it uploads: renewed every third of the lease, each renewal
 * conditional on the ETag of the one before, so a claim another agent took over is never written
 * back. `signal` ends the upload when the claim is lost (taken over, or not renewed in time: the
 * owner stops before anyone may take it over, see claim-lease.ts).
 */
export class HeldClaim {
  readonly signal: AbortSignal;
  private readonly lost = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private renewal: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly options: HeldClaimOptions,
    private etag: string,
    /** When the write that produced `etag` was sent, by `clock`. */
    private lastSentMs: number,
    uploadSignal: AbortSignal,
  ) {
    this.signal = AbortSignal.any([uploadSignal, this.lost.signal]);
  }

  start(): void {
    this.schedule(renewalIntervalMs(this.options.leaseMs));
  }

  /** Stops renewing (after a renewal in flight): the claim stays and lapses after its lease, unless this agent takes it up again. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.renewal;
  }

  /** Stops renewing and deletes the claim: the name needs it no more. A claim no longer ours is left alone; a failure is logged (the claim then lapses). */
  async release(): Promise<void> {
    await this.stop();
    if (this.lost.signal.aborted) return;
    try {
      await this.options.store.delete(this.options.key);
    } catch (error) {
      this.options.log.warn('could not remove the claim on the name; it lapses after its lease', { key: this.options.key, leaseMs: this.options.leaseMs, error: describeError(error) });
    }
  }

  private schedule(delayMs: number): void {
    if (this.stopped || this.lost.signal.aborted) return;
    this.timer = setTimeout(() => {
      this.renewal = this.tick().finally(() => (this.renewal = undefined));
    }, delayMs);
  }

  private async tick(): Promise<void> {
    const { leaseMs, clock } = this.options;
    if (clock() - this.lastSentMs >= holdWithoutRenewalMs(leaseMs)) {
      this.lose(
        new AppError('remote_unavailable', `${this.options.name}: the claim on the name could not be renewed for ${Math.round((clock() - this.lastSentMs) / 1000)} s; the upload stops before another memsync may take the name over`, {
          hint: 'the store did not accept the renewals in time; the upload is retried, and resumes under the same claim unless another memsync took it over',
        }),
      );
      return;
    }
    const renewed = await this.renew();
    // After a failure, sooner: a few tries are left before the owner has to give up.
    this.schedule(renewed ? renewalIntervalMs(leaseMs) : Math.max(1, Math.floor(renewalIntervalMs(leaseMs) / 4)));
  }

  private async renew(): Promise<boolean> {
    const { store, key, agentId, log } = this.options;
    const sentMs = this.options.clock();
    try {
      const checked = await this.options.replaceChecked();
      if (!checked) {
        // No If-Match on this store: the HEAD check narrows, but cannot close, the window for another writer.
        const head = await store.head(key);
        if (head === undefined || head.etag !== this.etag || head.metadata[METADATA_AGENT] !== agentId) throw new AppError('conflict', `renew ${key}: the claim changed`);
      }
      this.etag = await this.options.write(key, this.lost.signal, checked ? this.etag : undefined);
      this.lastSentMs = sentMs;
      return true;
    } catch (error) {
      if (isAppError(error, 'conflict')) {
        await this.loseTo(key);
        return false;
      }
      if (this.stopped) return false;
      log.warn('could not renew the claim on the name; trying again', { key, error: describeError(error) });
      return false;
    }
  }

  /** The claim changed under us: another agent took it over (its lease had lapsed by the store's clock) or it was deleted. */
  private async loseTo(key: string): Promise<void> {
    const owner = (await this.options.store.head(key).catch(() => undefined))?.metadata[METADATA_AGENT];
    const by = owner === undefined ? 'was removed' : owner === this.options.agentId ? 'was rewritten by another process with this agent id (an upload from the command line?)' : `was taken over by another memsync (agent ${owner})`;
    const message = `${this.options.name}: the claim on the name ${by} while this one uploaded; the upload stops`;
    this.lose(new AppError('conflict', message, { retryable: false, details: { claimedBy: owner ?? 'unknown' }, hint: 'this memsync went without renewing its claim for longer than its lease (a stall or a long outage); the other upload decides the name' }));
  }

  private lose(reason: AppError): void {
    if (this.lost.signal.aborted) return;
    this.options.log.warn('lost the claim on the name', { key: this.options.key, error: reason.message });
    clearTimeout(this.timer);
    this.lost.abort(reason);
  }
}
