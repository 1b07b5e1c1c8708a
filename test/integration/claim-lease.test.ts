// Leases on name claims, against the real S3 server of the test run: agents with different ids
// share one bucket. A claim left by an agent that died lapses and is taken over; one that is being
// renewed is respected; of two agents taking over one lapsed claim, exactly one wins; and a claim
// is gone once its snapshot is complete; a renewal the server applied but whose answer was lost
// does not cost the owner its claim. Lapse is measured by the server's own clock (the claim's
// Last-Modified against the Date of an answer), so the tests wait on that clock, never on sleeps.
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import PQueue from 'p-queue';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AppError, isAppError } from '../../src/errors.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import type { PutOptions, RemoteStore } from '../../src/remote/store.js';
import { CLAIM_FILE_NAME, MANIFEST_FILE_NAME } from '../../src/snapshot/manifest.js';
import { lapseAfterMs } from '../../src/upload/claim-lease.js';
import { statSnapshot } from '../../src/snapshot/scan.js';
import { emptyHashCache, hashCacheSchema, type HashCacheDocument } from '../../src/state/hash-cache.js';
import { PersistedJson } from '../../src/state/persisted.js';
import { SnapshotUploader, type SnapshotOutcome, type UploaderOptions } from '../../src/upload/snapshot-uploader.js';
import { eventually } from '../helpers/remote-bucket.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { createTestBucket, emptyAndDeleteBucket, s3ClientFor } from '../helpers/s3-fixture.js';
import { testServer, testServerStore } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';

const server = testServer();
const PREFIX = 'claims/';
const NAME = 'auto_20260301_120000';
const MIB = 1024 * 1024;
/** Above the 8 MiB minimum part: sent in parts, so the name is claimed first. */
const FILES: Record<string, Buffer> = { 'index.faiss': randomBytes(9 * MIB + 17), 'config.json': Buffer.from('{"dim":384}') };
const CLAIM_KEY = `${PREFIX}${NAME}/${CLAIM_FILE_NAME}`;
/** The server's Date and Last-Modified are whole seconds: long enough waits for either to move. */
const SERVER_WAIT_MS = 30_000;
/** The lease of the claims planted as a dead agent's; it lapses after its clock allowance too. */
const DEAD_LEASE_MS = 1000;

let client: S3Client;
let bucket: string;
let backupDir: string;
const stores: S3RemoteStore[] = [];
const caches: PersistedJson<HashCacheDocument>[] = [];

beforeAll(() => {
  client = s3ClientFor(server);
});
afterAll(() => client?.destroy());
afterEach(async () => {
  for (const cache of caches.splice(0)) await cache.flush();
  for (const store of stores.splice(0)) store.close();
  if (bucket !== undefined) await emptyAndDeleteBucket(server, bucket);
});

async function sandbox(label: string): Promise<void> {
  bucket = await createTestBucket(server, label);
  backupDir = path.join(await tempDir('memsync-claims'), 'backups');
  await mkdir(path.join(backupDir, NAME), { recursive: true });
  for (const [file, bytes] of Object.entries(FILES)) await writeFile(path.join(backupDir, NAME, file), bytes);
}

function s3Store(): S3RemoteStore {
  const store = testServerStore(server, bucket, PREFIX, { partsInFlight: 2 });
  stores.push(store);
  return store;
}

interface Uploader {
  agentId: string;
  uploader: SnapshotUploader;
  fileQueue: PQueue;
  upload: () => Promise<SnapshotOutcome>;
}

/** An uploader of its own agent id, with its own state, over the shared bucket. */
async function uploaderFor(agentId: string, extra: Partial<UploaderOptions> & { store?: RemoteStore; log?: Logger } = {}): Promise<Uploader> {
  const stateDir = await tempDir(`memsync-claims-${agentId}`);
  const hashCache = new PersistedJson<HashCacheDocument>(path.join(stateDir, 'hash-cache.json'), hashCacheSchema, emptyHashCache, silentLogger);
  caches.push(hashCache);
  const fileQueue = new PQueue({ concurrency: 2 });
  const uploader = new SnapshotUploader({
    store: s3Store(),
    hashCache,
    fileQueue,
    agentId,
    backupDir,
    multipartThresholdBytes: 5 * MIB,
    retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 50 },
    log: silentLogger,
    now: () => Date.now(),
    ...extra,
  });
  const upload = async (): Promise<SnapshotOutcome> => uploader.upload(await statSnapshot(backupDir, NAME), new AbortController().signal, () => undefined);
  return { agentId, uploader, fileQueue, upload };
}

/** The claim as the server has it: owner, ETag and Last-Modified, and the server's clock (its Date header) when it answered. */
async function claimOnServer(): Promise<{ agent: string; etag: string; lastModifiedMs: number; serverNowMs: number } | undefined> {
  const command = new HeadObjectCommand({ Bucket: bucket, Key: CLAIM_KEY });
  let dateHeader: string | undefined;
  command.middlewareStack.add(
    (next) => async (args) => {
      const result = await next(args);
      dateHeader = (result.response as { headers?: Record<string, string> }).headers?.date;
      return result;
    },
    { step: 'finalizeRequest', name: 'testServerDate' },
  );
  try {
    const head = await client.send(command);
    return { agent: head.Metadata?.['memsync-agent'] ?? '', etag: head.ETag ?? '', lastModifiedMs: head.LastModified?.getTime() ?? 0, serverNowMs: Date.parse(dateHeader ?? '') };
  } catch (error) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
    throw error;
  }
}

/** What an agent that died mid-upload leaves: its claim, with the lease it meant to renew. */
async function plantDeadClaim(leaseMs: number): Promise<void> {
  await client.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: CLAIM_KEY,
      Body: `${JSON.stringify({ agent: 'dead-agent', atMs: Date.now(), leaseMs })}\n`,
      Metadata: { 'memsync-agent': 'dead-agent', 'memsync-claim-lease-ms': String(leaseMs) },
    }),
  );
}

/**
 * Waits until the server's own clock (the Date of its answers) says more than `sinceLastModifiedMs`
 * have passed since `lastModifiedMs`. Both are whole seconds: one more second makes sure that
 * much really passed.
 */
async function untilServerSays(sinceLastModifiedMs: number, lastModifiedMs: number): Promise<void> {
  await eventually(
    async () => {
      const claim = await claimOnServer();
      return claim !== undefined && claim.serverNowMs - lastModifiedMs > sinceLastModifiedMs + 1000;
    },
    sinceLastModifiedMs + SERVER_WAIT_MS,
    `the server's clock ${sinceLastModifiedMs} ms past the claim`,
  );
}

async function keysOfSnapshot(): Promise<string[]> {
  const keys: string[] = [];
  for await (const page of s3Store().listObjects(`${NAME}/`)) keys.push(...page.map((object) => object.key.slice(NAME.length + 1)));
  return keys.sort();
}

function claimedBy(error: unknown): unknown {
  return isAppError(error, 'conflict') ? error.details?.claimedBy : `not a conflict: ${String(error)}`;
}

/** Holds conditional replaces (If-Match PUTs) of the claim until `count` of them are waiting, so racers send theirs together. */
function conditionalReplaceBarrier(store: RemoteStore, gate: { waiting: number; count: number; open: () => void; opened: Promise<void> }): RemoteStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property !== 'put') return Reflect.get(target, property, receiver) as unknown;
      return async (key: string, body: Parameters<RemoteStore['put']>[1], options: PutOptions): Promise<void> => {
        if (options.ifMatchEtag !== undefined && key === `${NAME}/${CLAIM_FILE_NAME}`) {
          gate.waiting += 1;
          if (gate.waiting >= gate.count) gate.open();
          await gate.opened;
        }
        return target.put(key, body, options);
      };
    },
  });
}

/**
 * Lets the server apply the first renewal of the claim (an If-Match PUT) and then answers it with
 * the 412 a replay of it would get: a response lost on the way, which the server cannot be made to
 * do on demand. `renewals` counts the renewals the server applied.
 */
function firstRenewalAnswerLost(store: RemoteStore, counts: { renewals: number }): RemoteStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property !== 'put') return Reflect.get(target, property, receiver) as unknown;
      return async (key: string, body: Parameters<RemoteStore['put']>[1], options: PutOptions): Promise<void> => {
        await target.put(key, body, options);
        if (options.ifMatchEtag === undefined || key !== `${NAME}/${CLAIM_FILE_NAME}`) return;
        counts.renewals += 1;
        if (counts.renewals === 1) throw new AppError('conflict', `upload ${key}: PreconditionFailed (HTTP 412)`);
      };
    },
  });
}

describe('claim leases', () => {
  it('takes over the claim of an agent whose lease lapsed, uploads the snapshot and removes the claim', async () => {
    await sandbox('claim-stale');
    await plantDeadClaim(DEAD_LEASE_MS);
    const planted = await claimOnServer();
    expect(planted?.agent).toBe('dead-agent');
    await untilServerSays(lapseAfterMs(DEAD_LEASE_MS), planted?.lastModifiedMs ?? 0);

    const logs: LogLine[] = [];
    const b = await uploaderFor('agent-b', { log: recordingLogger(logs) });
    const outcome = await b.upload();

    expect(outcome.outcome).toBe('uploaded');
    expect(await keysOfSnapshot()).toEqual([MANIFEST_FILE_NAME, ...Object.keys(FILES)].sort());
    expect(logs.some((line) => line.level === 'info' && /took over/.test(line.message) && line.fields.from === 'dead-agent')).toBe(true);
  });

  it('respects a claim whose owner keeps renewing it past its first lease', async () => {
    await sandbox('claim-live');
    const leaseMs = 3000;
    const a = await uploaderFor('agent-a', { claimLeaseMs: leaseMs });
    // A claims the name, then waits with its files queued: an upload that takes longer than its lease.
    a.fileQueue.pause();
    const uploadA = a.upload();
    await eventually(async () => (await claimOnServer())?.agent === 'agent-a', SERVER_WAIT_MS, 'agent-a claims the name');
    const first = await claimOnServer();
    await untilServerSays(leaseMs, first?.lastModifiedMs ?? 0);
    // Renewed meanwhile: a newer claim object, still A's.
    const renewed = await claimOnServer();
    expect(renewed?.agent).toBe('agent-a');
    expect(renewed?.etag).not.toBe(first?.etag);

    const b = await uploaderFor('agent-b', { claimLeaseMs: leaseMs });
    expect(claimedBy(await b.upload().then(() => 'uploaded', (error: unknown) => error))).toBe('agent-a');

    a.fileQueue.start();
    expect((await uploadA).outcome).toBe('uploaded');
    expect(await keysOfSnapshot()).toEqual([MANIFEST_FILE_NAME, ...Object.keys(FILES)].sort());
  });

  it('lets exactly one of two agents take over the same lapsed claim', async () => {
    await sandbox('claim-race');
    await plantDeadClaim(DEAD_LEASE_MS);
    await untilServerSays(lapseAfterMs(DEAD_LEASE_MS), (await claimOnServer())?.lastModifiedMs ?? 0);

    let open = (): void => undefined;
    const opened = new Promise<void>((resolve) => (open = resolve));
    const gate = { waiting: 0, count: 2, open, opened };
    const racers = await Promise.all(['agent-b', 'agent-c'].map((agentId) => uploaderFor(agentId, { store: conditionalReplaceBarrier(s3Store(), gate) })));
    // A racer that never reaches the gate (it saw the winner's claim first) must not hold the other one.
    const results = await Promise.allSettled(racers.map((racer) => racer.upload().finally(open)));

    // Both sent their takeover, conditional on the dead agent's claim, before either was answered.
    expect(gate.waiting).toBe(2);
    const winners = racers.filter((_, i) => results[i]?.status === 'fulfilled' && (results[i] as PromiseFulfilledResult<SnapshotOutcome>).value.outcome === 'uploaded');
    expect(winners.map((w) => w.agentId)).toHaveLength(1);
    const loser = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    expect(loser?.reason).toBeInstanceOf(AppError);
    expect(claimedBy(loser?.reason)).toBe(winners[0]?.agentId);
    expect(await keysOfSnapshot()).toEqual([MANIFEST_FILE_NAME, ...Object.keys(FILES)].sort());
  });

  it('keeps its claim when the answer to a renewal the server applied was lost', async () => {
    await sandbox('claim-lost-answer');
    const counts = { renewals: 0 };
    const logs: LogLine[] = [];
    const a = await uploaderFor('agent-a', { claimLeaseMs: 3000, store: firstRenewalAnswerLost(s3Store(), counts), log: recordingLogger(logs) });
    const lostClaim = (): LogLine | undefined => logs.find((line) => /lost the claim/.test(line.message));
    // An upload that outlasts a few renewals: the one whose answer is lost, and two conditional on the ETag it left.
    a.fileQueue.pause();
    const uploadA = a.upload();
    await eventually(async () => lostClaim() !== undefined || counts.renewals >= 3, SERVER_WAIT_MS, 'three renewals of the claim, or its loss');
    a.fileQueue.start();

    expect(lostClaim()?.fields.error ?? 'kept').toBe('kept');
    expect((await uploadA).outcome).toBe('uploaded');
    expect(counts.renewals).toBeGreaterThanOrEqual(3);
    expect(await keysOfSnapshot()).toEqual([MANIFEST_FILE_NAME, ...Object.keys(FILES)].sort());
  });

  it('removes its own claim once the manifest is written', async () => {
    await sandbox('claim-removed');
    const a = await uploaderFor('agent-a');
    expect((await a.upload()).outcome).toBe('uploaded');
    expect(await claimOnServer()).toBeUndefined();
    expect(await keysOfSnapshot()).toEqual([MANIFEST_FILE_NAME, ...Object.keys(FILES)].sort());
  });
});
