// A held claim's renewals over the in-memory store, with faults a real server cannot produce on
// demand: a renewal that never returns (the owner must still stop by its deadline), and a renewal
// the store applied whose answer was lost (the owner must recognise its own write and carry on).
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { AppError, isAppError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import type { BodySource, PutOptions, RemoteHead } from '../../src/remote/store.js';
import { claimObject } from '../../src/upload/claim-lease.js';
import { NameClaims, type HeldClaim } from '../../src/upload/name-claim.js';
import { retryingWith } from '../../src/upload/requests.js';

const NAME = 'auto_20260301_120000';
const KEY = `${NAME}/.memsync-claim`;
const noRetry = retryingWith({ attempts: 1, baseDelayMs: 1, maxDelayMs: 1 }, silentLogger, undefined);

/** Settles when `done()` holds, checking after each turn of the event loop (no fixed waits). */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => setImmediate(resolve));
}

/** Once `hang` is set, the claim's renewals reach the store and are never answered, whatever their signal says (a hung NFS call). */
class HangingStore extends MemoryRemoteStore {
  hang: 'none' | 'put' | 'head' = 'none';
  readonly hungSignals: (AbortSignal | undefined)[] = [];
  override async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
    if (key === KEY && this.hang === 'put') return this.never(options.signal);
    return super.put(key, body, options);
  }
  override async head(key: string): Promise<RemoteHead | undefined> {
    if (key === KEY && this.hang === 'head') return this.never(undefined);
    return super.head(key);
  }
  private never(signal: AbortSignal | undefined): Promise<never> {
    this.hungSignals.push(signal);
    return new Promise<never>(() => undefined);
  }
}

/** A store that applies a claim write and then fails its answer, as a replayed PUT (412) or a timeout would after the first one was applied. */
class LostAnswerStore extends MemoryRemoteStore {
  loseNextAnswer: AppError | undefined;
  claimWrites = 0;
  override async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
    await super.put(key, body, options);
    if (key !== KEY) return;
    this.claimWrites += 1;
    const lost = this.loseNextAnswer;
    this.loseNextAnswer = undefined;
    if (lost !== undefined) throw lost;
  }
}

async function claimWith(store: MemoryRemoteStore, leaseMs: number, clock?: () => number): Promise<HeldClaim> {
  const claims = new NameClaims({ store, agentId: 'agent-a', retrying: noRetry, now: () => Date.now(), leaseMs, ...(clock === undefined ? {} : { clock }) });
  return claims.claim(NAME, new Map(), new AbortController().signal, silentLogger);
}

describe('a held claim whose renewal never returns', () => {
  it.each<{ hang: 'put' | 'head'; ifMatch: 'honour' | 'ignore' }>([
    { hang: 'put', ifMatch: 'honour' },
    // Where the store does not check If-Match, each renewal HEADs the claim first.
    { hang: 'head', ifMatch: 'ignore' },
  ])('stops the upload by its deadline when the renewal $hang hangs', async ({ hang, ifMatch }) => {
    const store = new HangingStore({ ifMatch });
    // A short lease: the first renewal is due after a third of it, and hangs. This host's clock
    // stands still, so only the deadline's own timer can end the claim.
    const held = await claimWith(store, 90, () => 0);
    store.hang = hang;

    if (!held.signal.aborted) await once(held.signal, 'abort');

    expect(store.hungSignals.length).toBeGreaterThan(0);
    expect(isAppError(held.signal.reason, 'remote_unavailable')).toBe(true);
    expect(held.signal.reason).toMatchObject({ message: expect.stringMatching(/could not be renewed/) });
    // The hung request was told to stop too, where it took a signal.
    if (hang === 'put') expect(store.hungSignals.every((signal) => signal?.aborted === true)).toBe(true);
    // Stopping does not wait for the hung renewal.
    await held.stop();
  });

  it('stops renewing at once when the upload ends, without waiting for the hung renewal', async () => {
    const store = new HangingStore();
    // The first renewal is due after a second; the deadline would come more than a second after it.
    const held = await claimWith(store, 3000, () => 0);
    store.hang = 'put';
    await until(() => store.hungSignals.length > 0);

    await held.stop();

    // Stopped before the deadline: had stop() waited for the renewal, the deadline would have ended the claim first.
    expect(held.signal.aborted ? held.signal.reason : 'held').toBe('held');
    expect(store.hungSignals[0]?.aborted).toBe(true);
  });
});

describe('a renewal whose answer was lost', () => {
  it.each([
    { what: 'a replay refused because the first write changed the ETag (412)', error: new AppError('conflict', `upload ${KEY}: PreconditionFailed (HTTP 412)`) },
    { what: 'a timeout after the store applied it, found at the next renewal', error: new AppError('remote_unavailable', `upload ${KEY}: socket timed out`) },
  ])('is recognised as this holder’s own write: $what', async ({ error }) => {
    const store = new LostAnswerStore();
    // This host's clock stands still: the claim can be lost only by a refused renewal.
    const held = await claimWith(store, 30, () => 0);
    store.loseNextAnswer = error;
    const faulty = store.claimWrites + 1;

    // The faulty renewal, then two more conditional on the ETag it left: each succeeded only if it named that ETag.
    await until(() => held.signal.aborted || store.claimWrites >= faulty + 2);

    expect(held.signal.aborted ? held.signal.reason : 'held').toBe('held');
    await held.stop();
  });

  it('is not confused with a claim another process of this agent id wrote', async () => {
    const store = new LostAnswerStore();
    const held = await claimWith(store, 30, () => 0);
    // Same agent id, its own write (another nonce): the claim is not this holder's any more.
    const { body, metadata } = claimObject('agent-a', 30, Date.now(), 'another-process');
    store.objects.set(KEY, { bytes: body, etag: 'etag-other-process', metadata, lastModifiedMs: Date.now() });

    if (!held.signal.aborted) await once(held.signal, 'abort');

    expect(isAppError(held.signal.reason, 'conflict')).toBe(true);
    expect(held.signal.reason).toMatchObject({ message: expect.stringMatching(/another process with this agent id/) });
    await held.stop();
  });
});
