// Large files restored through the S3 store's download thread, on the real server, with a
// fault-injecting proxy in between: every byte lands, a range cut in transit is resumed in place,
// a range altered on the way fails the manifest's SHA-256 with nothing put in place, and a
// cancelled restore stops the thread and leaves nothing behind; and the thread's connections are
// kept from range to range.
import { createHash, randomBytes } from 'node:crypto';
import { open, readdir, readFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { isAppError } from '../../src/errors.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { S3RemoteStore, type S3StoreOptions } from '../../src/remote/s3-store.js';
import type { FileDownloadOptions } from '../../src/remote/store.js';
import { RANGE_BYTES, RANGED_FROM_BYTES } from '../../src/restore/download-file.js';
import { Restorer } from '../../src/restore/restorer.js';
import { manifestKey, serializeManifest } from '../../src/snapshot/manifest.js';
import { FaultProxy, type Fault } from '../helpers/fault-proxy.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { createTestBucket, emptyAndDeleteBucket } from '../helpers/s3-fixture.js';
import { s3Env, testServer } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';

const server = testServer();
const PREFIX = 'memories/';
const NAME = 'auto_20261201_020000';
/** Three ranges, the last a short one. */
const INDEX = randomBytes(RANGED_FROM_BYTES + RANGE_BYTES / 2 + 7);
const RANGES = Math.ceil(INDEX.length / RANGE_BYTES);
/** The restore's own requests before the first range: the listing, then the manifest. */
const REQUESTS_BEFORE_RANGES = 2;
const RETRY = { attempts: 3, baseDelayMs: 20, maxDelayMs: 100 };
/** Faults land where the proxy's random draw puts them: 0.9 puts a cut or a stall tens of KiB into the body, past the head. */
const INTO_THE_BODY = (): number => 0.9;

/** The S3 store, telling which way each large file was read. */
class ObservedStore extends S3RemoteStore {
  rangeGets = 0;
  /** How each download through the thread ended, as it ends. */
  threaded: ('running' | 'resolved' | 'rejected')[] = [];

  override getRange(key: string, start: number, endInclusive: number, signal?: AbortSignal): Promise<Readable> {
    this.rangeGets += 1;
    return super.getRange(key, start, endInclusive, signal);
  }

  override downloadRangesToFile(key: string, options: FileDownloadOptions): Promise<void> | undefined {
    const download = super.downloadRangesToFile(key, options);
    if (download === undefined) return undefined;
    const index = this.threaded.push('running') - 1;
    download.then(
      () => (this.threaded[index] = 'resolved'),
      () => (this.threaded[index] = 'rejected'),
    );
    return download;
  }
}

let bucket: string;
let storeOptions: S3StoreOptions;
let proxy: FaultProxy | undefined;

beforeAll(async () => {
  bucket = await createTestBucket(server, 'restore-thread');
  storeOptions = { ...loadConfig({ ...s3Env(server, bucket), CLOUD_SYNC_PREFIX: PREFIX }).s3, partsInFlight: 2 };
  const direct = new S3RemoteStore(storeOptions);
  const put = (key: string, bytes: Buffer, partSizeBytes: number | undefined): Promise<void> =>
    direct.put(key, () => bytes, { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
  await put(`${NAME}/index.faiss`, INDEX, 16 * 1024 * 1024);
  const sha256 = createHash('sha256').update(INDEX).digest('hex');
  await put(manifestKey(NAME), serializeManifest({ format: 'memsync-manifest', version: 1, snapshot: NAME, kind: 'directory', files: [{ path: 'index.faiss', size: INDEX.length, sha256 }] }), undefined);
  direct.close();
}, 180_000);
afterAll(async () => {
  if (bucket !== undefined) await emptyAndDeleteBucket(server, bucket);
});
afterEach(async () => {
  await proxy?.stop();
  proxy = undefined;
});

/** A restorer whose store reaches the server through a proxy that gives request n the fault `choose(n)`. */
async function restoreThrough(choose: (request: number) => Fault, logs: LogLine[] = [], stallMs = 10_000, idleTimeoutMs?: number): Promise<{ restorer: Restorer; store: ObservedStore; backupDir: string; proxy: FaultProxy }> {
  const endpoint = new URL(server.endpoint);
  proxy = await FaultProxy.start({ target: { host: endpoint.hostname, port: Number(endpoint.port) }, choose, random: INTO_THE_BODY, stallMs });
  const store = new ObservedStore({ ...storeOptions, endpoint: proxy.url, idleTimeoutMs });
  const backupDir = path.join(await tempDir('restore-thread'), 'backups');
  const restorer = new Restorer({ store, backupDir, multipartThresholdBytes: 5 * 1024 * 1024, retry: RETRY, log: recordingLogger(logs), now: () => Date.now() });
  return { restorer, store, backupDir, proxy };
}

const requestsSeen = (faults: FaultProxy): number => Object.values(faults.chosen).reduce((sum, n) => sum + n, 0);

describe(`restoring a large file through the download thread, on ${server.kind}`, () => {
  it('writes every range in place: the file is byte-identical, checked against the manifest', async () => {
    const { restorer, store, backupDir, proxy: faults } = await restoreThrough(() => 'none');
    expect(await restorer.restore(NAME)).toMatchObject({ outcome: 'restored', verification: 'sha256', files: 1 });
    expect(store.threaded).toEqual(['resolved']);
    expect(store.rangeGets).toBe(0);
    expect(requestsSeen(faults)).toBe(REQUESTS_BEFORE_RANGES + RANGES);
    expect((await readFile(path.join(backupDir, NAME, 'index.faiss'))).equals(INDEX)).toBe(true);
    expect(await readdir(backupDir)).toEqual([NAME]);
  });

  it('resumes a range cut mid-body in place: one more GET, not the whole file again', async () => {
    const logs: LogLine[] = [];
    const cutRequest = REQUESTS_BEFORE_RANGES + 1;
    const { restorer, backupDir, proxy: faults } = await restoreThrough((n) => (n === cutRequest ? 'reset-response' : 'none'), logs);
    expect(await restorer.restore(NAME)).toMatchObject({ outcome: 'restored', verification: 'sha256' });
    expect(faults.applied['reset-response']).toBe(1);
    expect(requestsSeen(faults)).toBe(REQUESTS_BEFORE_RANGES + RANGES + 1);
    expect(logs.some((line) => line.message === 'retrying' && /index\.faiss bytes \d+-\d+/.test(String(line.fields.operation)))).toBe(true);
    expect((await readFile(path.join(backupDir, NAME, 'index.faiss'))).equals(INDEX)).toBe(true);
  });

  it('refuses a file whose ranges come back altered: the SHA-256 fails, nothing is put in place', async () => {
    const { restorer, store, backupDir, proxy: faults } = await restoreThrough((n) => (n >= REQUESTS_BEFORE_RANGES ? 'corrupt-response-body' : 'none'));
    const error = await restorer.restore(NAME).catch((e: unknown) => e);
    expect(isAppError(error, 'integrity'), String(error)).toBe(true);
    expect(String(error)).toContain('index.faiss');
    expect(faults.applied['corrupt-response-body']).toBeGreaterThan(0);
    expect(store.threaded.length).toBeGreaterThan(0);
    expect(await readdir(backupDir)).toEqual([]);
  });

  it('stops the thread when the restore is cancelled mid-transfer, and leaves nothing behind', async () => {
    // Every range stalls a little way into its body, for longer than this test may take, and the
    // idle timeout is longer still: the transfer is under way, and only a stopped thread lets the
    // restore end before the stall does.
    const { restorer, store, backupDir, proxy: faults } = await restoreThrough((n) => (n >= REQUESTS_BEFORE_RANGES ? 'stall' : 'none'), [], 150_000, 300_000);
    const cancel = new AbortController();
    const restoring = restorer.restore(NAME, cancel.signal).catch((e: unknown) => e);
    await vi.waitFor(() => expect(faults.applied.stall).toBe(RANGES), { timeout: 60_000, interval: 20 });
    cancel.abort();
    const error = await restoring;
    expect(isAppError(error, 'cancelled'), String(error)).toBe(true);
    // The download had settled (its thread ended, see downloadRangesToFile) before the restore gave up.
    expect(store.threaded).toEqual(['rejected']);
    expect(await readdir(backupDir)).toEqual([]);
  }, 90_000);

  it('keeps its connections from range to range: as many as ranges in flight, not one per range', async () => {
    // A plain TCP relay that counts the connections made through it.
    const endpoint = new URL(server.endpoint);
    let connections = 0;
    const relay = createServer((client) => {
      connections += 1;
      const upstream = connect(Number(endpoint.port), endpoint.hostname);
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const store = new S3RemoteStore({ ...storeOptions, endpoint: `http://127.0.0.1:${(relay.address() as AddressInfo).port}` });
    const target = path.join(await tempDir('restore-thread'), 'index.faiss');
    const file = await open(target, 'w+');
    const rangeBytes = 8 * 1024 * 1024;
    try {
      await store.downloadRangesToFile(`${NAME}/index.faiss`, { fd: file.fd, sizeBytes: INDEX.length, rangeBytes, rangesInFlight: 2, signal: undefined, onWritten: () => undefined, rangeRetry: { policy: RETRY } });
    } finally {
      await file.close();
      store.close();
      relay.close();
    }
    expect((await readFile(target)).equals(INDEX)).toBe(true);
    expect({ ranges: Math.ceil(INDEX.length / rangeBytes), connections }).toEqual({ ranges: 11, connections: 2 });
  });
});
