// Name claim leases over the in-memory store: the lapse decision by the store's clock alone, the
// fallback on stores that do not check If-Match (no takeover, an operator told what to do), and a
// holder that loses its claim stopping its upload. The real-server behaviour is in
// test/integration/claim-lease.test.ts.
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { AppError, isAppError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { MemoryRemoteStore, type MemoryStoreOptions } from '../../src/remote/memory-store.js';
import { probeConditionalReplace } from '../../src/remote/conditional-writes.js';
import type { BodySource, PutOptions } from '../../src/remote/store.js';
import { claimLapse, claimObject, METADATA_CLAIM_LEASE, UNLEASED_CLAIM_LAPSE_MS } from '../../src/upload/claim-lease.js';
import { NameClaims } from '../../src/upload/name-claim.js';
import { METADATA_AGENT } from '../../src/upload/plan.js';
import { retryingWith } from '../../src/upload/requests.js';
import { loadConfig } from '../../src/config.js';
import { configProblems } from '../helpers/config-problems.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';

const NAME = 'auto_20260301_120000';
const KEY = `${NAME}/.memsync-claim`;
const T0 = Date.UTC(2026, 2, 1, 12);
const noRetry = retryingWith({ attempts: 1, baseDelayMs: 1, maxDelayMs: 1 }, silentLogger, undefined);

function claimsFor(store: MemoryRemoteStore, agentId: string, extra: { leaseMs?: number; clock?: () => number } = {}): NameClaims {
  return new NameClaims({ store, agentId, retrying: noRetry, now: () => T0, ...extra });
}

/** A claim another agent wrote at `atMs` by the store's clock, with a lease of `leaseMs`. */
function plantClaim(store: MemoryRemoteStore, agent: string, leaseMs: number, atMs: number): void {
  const { body, metadata } = claimObject(agent, leaseMs, atMs, `nonce-${agent}`);
  store.objects.set(KEY, { bytes: body, etag: `etag-${agent}`, metadata, lastModifiedMs: atMs });
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => new Error('expected a rejection'),
    (error: unknown) => error,
  );
}

describe('claimLapse', () => {
  const lease = (ms: number | string): Record<string, string> => ({ [METADATA_AGENT]: 'other', [METADATA_CLAIM_LEASE]: String(ms) });
  const TWO_MIN = 120_000;
  const TEN_MIN = 600_000;
  it.each([
    // Whole seconds on both sides: the age counted is the least the real one can be. On top of the
    // lease, an allowance for the store's nodes disagreeing on the time: 30 s, or a tenth of the lease.
    { what: 'younger than its lease', metadata: lease(TWO_MIN), age: 60_000, lapsed: false },
    { what: 'its lease and a second past it, within the allowance', metadata: lease(TWO_MIN), age: TWO_MIN + 1000, lapsed: false },
    { what: 'its lease and 29 s past it, within the 30 s allowance', metadata: lease(TWO_MIN), age: TWO_MIN + 30_000, lapsed: false },
    { what: 'its lease, the 30 s allowance and a second past it', metadata: lease(TWO_MIN), age: TWO_MIN + 31_000 + 1000, lapsed: true },
    { what: 'a 10 min lease and 59 s past it, within a tenth of the lease', metadata: lease(TEN_MIN), age: TEN_MIN + 60_000, lapsed: false },
    { what: 'a 10 min lease, its minute of allowance and a second past it', metadata: lease(TEN_MIN), age: TEN_MIN + 61_000 + 1000, lapsed: true },
    { what: 'an older memsync (no lease): a day and a second', metadata: { [METADATA_AGENT]: 'other' }, age: UNLEASED_CLAIM_LAPSE_MS + 1000, lapsed: false },
    { what: 'an older memsync, a day and a tenth of a day past it', metadata: { [METADATA_AGENT]: 'other' }, age: UNLEASED_CLAIM_LAPSE_MS * 1.1 + 2000, lapsed: true },
    { what: 'a lease that is no number counts as none', metadata: lease('soon'), age: TWO_MIN + 32_000, lapsed: false },
    { what: 'a lease of zero counts as none', metadata: lease(0), age: TWO_MIN + 32_000, lapsed: false },
  ])('$what: lapsed $lapsed', ({ metadata, age, lapsed }) => {
    expect(claimLapse({ metadata, lastModifiedMs: T0, storeTimeMs: T0 + age }).lapsed).toBe(lapsed);
  });

  it('never lapses where the store gives no times of its own (this host’s clock is not used)', () => {
    expect(claimLapse({ metadata: lease(1), lastModifiedMs: undefined, storeTimeMs: undefined })).toEqual({ lapsed: false, leaseMs: 1, remainingMs: undefined });
  });
});

describe('taking over a lapsed claim', () => {
  it('takes it over where the store checks If-Match', async () => {
    const store = new MemoryRemoteStore({ now: () => T0 + 120_000 });
    // A one-minute lease, two minutes old: past the lease and its 30 s allowance.
    plantClaim(store, 'dead-agent', 60_000, T0);
    const held = await claimsFor(store, 'agent-b').claim(NAME, new Map(), new AbortController().signal, silentLogger);
    await held.stop();
    expect(store.objects.get(KEY)?.metadata[METADATA_AGENT]).toBe('agent-b');
  });

  it.each<{ ifMatch: NonNullable<MemoryStoreOptions['ifMatch']> }>([{ ifMatch: 'ignore' }, { ifMatch: 'refuse' }])(
    'leaves it where the store does not check If-Match ($ifMatch), and says what the operator must do',
    async ({ ifMatch }) => {
      const store = new MemoryRemoteStore({ ifMatch, now: () => T0 + 120_000 });
      plantClaim(store, 'dead-agent', 60_000, T0);
      const logs: LogLine[] = [];

      const error = await rejectionOf(claimsFor(store, 'agent-b').claim(NAME, new Map(), new AbortController().signal, recordingLogger(logs)));

      expect(isAppError(error, 'conflict') && error.details?.claimedBy).toBe('dead-agent');
      expect(store.objects.get(KEY)?.metadata[METADATA_AGENT]).toBe('dead-agent');
      const warning = logs.find((line) => line.level === 'warn' && /cannot be taken over/.test(line.message));
      expect(warning?.fields.action).toMatch(new RegExp(`delete ${KEY}`));
    },
  );

  it('probes the store as it is: honoured, ignored or refused', async () => {
    expect(await probeConditionalReplace(new MemoryRemoteStore())).toBe('honoured');
    expect(await probeConditionalReplace(new MemoryRemoteStore({ ifMatch: 'ignore' }))).toBe('ignored');
    expect(await probeConditionalReplace(new MemoryRemoteStore({ ifMatch: 'refuse' }))).toBe('refused');
  });
});

describe('a held claim', () => {
  it('stops the upload when another agent takes the claim over', async () => {
    const store = new MemoryRemoteStore();
    // This host's clock stands still: the claim is lost only by the takeover.
    const held = await claimsFor(store, 'agent-a', { leaseMs: 60, clock: () => 0 }).claim(NAME, new Map(), new AbortController().signal, silentLogger);
    // What a takeover leaves: another agent's claim, another ETag.
    plantClaim(store, 'agent-b', 60_000, Date.now());

    if (!held.signal.aborted) await once(held.signal, 'abort');

    expect(isAppError(held.signal.reason, 'conflict') && held.signal.reason.details?.claimedBy).toBe('agent-b');
    await held.stop();
    expect(store.objects.get(KEY)?.metadata[METADATA_AGENT]).toBe('agent-b');
  });

  it('stops the upload once three quarters of its lease passed without a renewal, before anyone may take it over', async () => {
    class UnreachableAfterClaim extends MemoryRemoteStore {
      unreachable = false;
      override async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
        if (this.unreachable) throw new AppError('remote_unavailable', `upload ${key}: ECONNREFUSED`);
        return super.put(key, body, options);
      }
    }
    const store = new UnreachableAfterClaim();
    let clockMs = 0;
    const held = await claimsFor(store, 'agent-a', { leaseMs: 60, clock: () => clockMs }).claim(NAME, new Map(), new AbortController().signal, silentLogger);
    store.unreachable = true;
    // Renewals keep failing; this host's clock reaches three quarters of the lease.
    clockMs = 45;

    if (!held.signal.aborted) await once(held.signal, 'abort');

    expect(isAppError(held.signal.reason, 'remote_unavailable')).toBe(true);
    await held.stop();
  });

  it('keeps renewing while held, and is deleted on release', async () => {
    const store = new MemoryRemoteStore();
    const held = await claimsFor(store, 'agent-a', { leaseMs: 30, clock: () => 0 }).claim(NAME, new Map(), new AbortController().signal, silentLogger);
    const claimWrites = (): number => store.putLog.filter((key) => key === KEY).length;
    const first = claimWrites();
    while (claimWrites() < first + 2) await new Promise((resolve) => setImmediate(resolve));
    expect(held.signal.aborted).toBe(false);

    await held.release();

    expect(store.objects.has(KEY)).toBe(false);
  });
});

describe('CLOUD_SYNC_CLAIM_LEASE_S', () => {
  const enabled = { CLOUD_SYNC_ENABLED: 'true', CLOUD_SYNC_BUCKET: 'my-memories' };
  it('is at least 120 s: a shorter lease leaves too little room for the store\'s clocks to disagree', () => {
    expect(configProblems({ ...enabled, CLOUD_SYNC_CLAIM_LEASE_S: '119' })).toMatch(/CLOUD_SYNC_CLAIM_LEASE_S="119": .*between 120 and 86400/);
    expect(loadConfig({ ...enabled, CLOUD_SYNC_CLAIM_LEASE_S: '120' }).claimLeaseMs).toBe(120_000);
  });
});
