import { randomUUID } from 'node:crypto';
import { AppError, describeError, isAppError } from '../errors.js';
import type { Logger } from '../log.js';
import { discardObject } from '../remote/discard.js';
import type { RemoteHead, RemoteStore } from '../remote/store.js';
import { claimNonce, holdWithoutRenewalMs, renewalIntervalMs } from './claim-lease.js';
import { METADATA_AGENT } from './plan.js';

/**
 * What writes this agent's claim object (see name-claim.ts) with `nonce` in it: conditional on
 * `ifMatchEtag` when given; resolves to the new ETag.
 */
export type ClaimWriter = (key: string, signal: AbortSignal, ifMatchEtag: string | undefined, nonce: string) => Promise<string>;

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
 * back. `signal` ends the upload when the claim is lost: taken over, or not renewed within three
 * quarters of the lease. That deadline is a timer of its own, so it holds while a renewal hangs
 * (a store that never answers): the owner stops before anyone may take it over (claim-lease.ts).
 */
export class HeldClaim {
  readonly signal: AbortSignal;
  private readonly lost = new AbortController();
  /** Aborted by stop(): a renewal in flight is abandoned. */
  private readonly halted = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private renewal: Promise<void> | undefined;
  private stopped = false;
  /**
   * Writes sent since the last ETag known to be ours, by nonce, with when each was sent. Their
   * answers failed, but the store may have applied them: a claim showing one of these nonces is
   * still this holder's.
   */
  private readonly unconfirmed = new Map<string, number>();

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
    this.armDeadline();
    this.schedule(renewalIntervalMs(this.options.leaseMs));
  }

  /** Stops renewing, and abandons a renewal in flight: the claim stays and lapses after its lease, unless this agent takes it up again. */
  async stop(): Promise<void> {
    this.halted.abort();
    await this.endRenewals();
  }

  /**
   * Stops renewing and deletes the claim: the name needs it no more. A renewal in flight is
   * waited for (it ends by the deadline), or it could write the claim again after the delete. A
   * claim no longer ours is left alone; a failure is logged (the claim then lapses).
   */
  async release(): Promise<void> {
    await this.endRenewals();
    if (this.lost.signal.aborted) return;
    try {
      await discardObject(this.options.store, this.options.key);
    } catch (error) {
      this.options.log.warn('could not remove the claim on the name; it lapses after its lease', { key: this.options.key, leaseMs: this.options.leaseMs, error: describeError(error) });
    }
  }

  private async endRenewals(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.renewal;
    clearTimeout(this.deadline);
  }

  private schedule(delayMs: number): void {
    if (this.stopped || this.lost.signal.aborted) return;
    this.timer = setTimeout(() => {
      this.renewal = this.tick().finally(() => (this.renewal = undefined));
    }, delayMs);
  }

  /** Loses the claim three quarters of a lease after the last renewal was sent, whatever a renewal in flight is doing. */
  private armDeadline(): void {
    clearTimeout(this.deadline);
    this.deadline = setTimeout(() => this.loseForTime(), Math.max(0, this.heldUntilMs() - this.options.clock()));
  }

  private heldUntilMs(): number {
    return this.lastSentMs + holdWithoutRenewalMs(this.options.leaseMs);
  }

  private async tick(): Promise<void> {
    const { leaseMs, clock } = this.options;
    if (clock() >= this.heldUntilMs()) {
      this.loseForTime();
      return;
    }
    const renewed = await this.renew();
    // After a failure, sooner: a few tries are left before the owner has to give up.
    this.schedule(renewed ? Math.max(1, this.lastSentMs + renewalIntervalMs(leaseMs) - clock()) : Math.max(1, Math.floor(renewalIntervalMs(leaseMs) / 4)));
  }

  private async renew(): Promise<boolean> {
    const { store, key, agentId, log, clock } = this.options;
    const sentMs = clock();
    // Every request of a renewal ends by the deadline, even one that ignores its signal.
    const signal = AbortSignal.any([this.lost.signal, this.halted.signal, AbortSignal.timeout(Math.max(1, Math.ceil(this.heldUntilMs() - sentMs)))]);
    try {
      const checked = await unlessAborted(this.options.replaceChecked(), signal);
      if (!checked) {
        // No If-Match on this store: the HEAD check narrows, but cannot close, the window for another writer.
        const head = await unlessAborted(store.head(key), signal);
        if (head === undefined || head.etag !== this.etag || head.metadata[METADATA_AGENT] !== agentId) throw new AppError('conflict', `renew ${key}: the claim changed`);
      }
      const nonce = randomUUID();
      this.unconfirmed.set(nonce, sentMs);
      this.confirm(await unlessAborted(this.options.write(key, signal, checked ? this.etag : undefined, nonce), signal), sentMs);
      return true;
    } catch (error) {
      if (this.lost.signal.aborted || this.halted.signal.aborted) return false;
      if (isAppError(error, 'conflict')) return this.afterRefusal(signal);
      if (!this.stopped) log.warn('could not renew the claim on the name; trying again', { key, error: describeError(error) });
      return false;
    }
  }

  /**
   * A renewal was refused because the claim changed. Where it shows a write of this holder's
   * whose answer was lost, it is still ours: carry on from that write. Otherwise another agent
   * took it over (its lease had lapsed by the store's clock) or it was deleted.
   */
  private async afterRefusal(signal: AbortSignal): Promise<boolean> {
    const { store, key, agentId, log } = this.options;
    let head: RemoteHead | undefined;
    try {
      head = await unlessAborted(store.head(key), signal);
    } catch (error) {
      if (!this.lost.signal.aborted && !this.halted.signal.aborted) log.warn('a renewal of the claim on the name was refused, and the claim could not be read; trying again', { key, error: describeError(error) });
      return false;
    }
    if (this.halted.signal.aborted) return false;
    const nonce = head === undefined ? undefined : claimNonce(head.metadata);
    const sentMs = nonce === undefined ? undefined : this.unconfirmed.get(nonce);
    if (head !== undefined && sentMs !== undefined && head.metadata[METADATA_AGENT] === agentId) {
      log.info('a renewal of the claim on the name had been written though its answer was lost; carrying on from it', { key });
      this.confirm(head.etag, sentMs);
      return true;
    }
    this.loseTo(head?.metadata[METADATA_AGENT]);
    return false;
  }

  /** `etag` is the claim this holder wrote at `sentMs`. */
  private confirm(etag: string, sentMs: number): void {
    this.etag = etag;
    this.lastSentMs = sentMs;
    this.unconfirmed.clear();
    this.armDeadline();
  }

  private loseTo(owner: string | undefined): void {
    const by = owner === undefined ? 'was removed' : owner === this.options.agentId ? 'was rewritten by another process with this agent id (an upload from the command line?)' : `was taken over by another memsync (agent ${owner})`;
    const message = `${this.options.name}: the claim on the name ${by} while this one uploaded; the upload stops`;
    this.lose(new AppError('conflict', message, { retryable: false, details: { claimedBy: owner ?? 'unknown' }, hint: 'this memsync went without renewing its claim for longer than its lease (a stall or a long outage); the other upload decides the name' }));
  }

  private loseForTime(): void {
    const withoutMs = this.options.clock() - this.lastSentMs;
    this.lose(
      new AppError('remote_unavailable', `${this.options.name}: the claim on the name could not be renewed for ${Math.round(withoutMs / 1000)} s; the upload stops before another memsync may take the name over`, {
        hint: 'the store did not accept the renewals in time; the upload is retried, and resumes under the same claim unless another memsync took it over',
      }),
    );
  }

  private lose(reason: AppError): void {
    if (this.lost.signal.aborted) return;
    this.options.log.warn('lost the claim on the name', { key: this.options.key, error: reason.message });
    clearTimeout(this.timer);
    clearTimeout(this.deadline);
    this.lost.abort(reason);
  }
}

/**
 * `work`, or a rejection with the signal's reason once `signal` aborts, whichever comes first. A
 * call that ignores its signal (a hung network filesystem) is then left behind, never awaited.
 */
function unlessAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}
