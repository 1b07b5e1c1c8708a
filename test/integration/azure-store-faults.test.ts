// The Azure store with requests cut on the way to Azurite (a fault proxy between them): a block or
// a sent part cut in transit is staged again in place, single puts leave no stream open whatever
// the SDK's own retries did, and a Copy Blob cancelled mid-request leaves no target behind.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AppError } from '../../src/errors.js';
import { AzureRemoteStore } from '../../src/remote/azure-store.js';
import type { BodySource, PartRetryOptions, PutOptions } from '../../src/remote/store.js';
import { startAzurite, type AzuriteServer } from '../helpers/azurite-fixture.js';
import { FaultProxy, type Fault } from '../helpers/fault-proxy.js';

const MIB = 1024 * 1024;
const PART_BYTES = 5 * MIB;
let azurite: AzuriteServer;
let container: string;
let proxy: FaultProxy;

beforeAll(async () => {
  azurite = await startAzurite();
  container = await azurite.createContainer('azure-faults');
  const target = new URL(azurite.endpoint);
  // A cut lands about half-way through the request it is given; a stall holds the answer within its head.
  proxy = await FaultProxy.start({ target: { host: target.hostname, port: Number(target.port) }, choose: () => 'none', random: () => 0.49, stallMs: 10_000 });
});
afterEach(() => {
  proxy.setChooser(() => 'none');
});
afterAll(async () => {
  await proxy?.stop();
  await azurite?.stop();
});

/** The store, talking to Azurite through the proxy, one block at a time so requests come in a known order. */
function storeThroughProxy(): AzureRemoteStore {
  const account = new URL(azurite.endpoint).pathname;
  return new AzureRemoteStore({
    container,
    prefix: 'p/',
    endpoint: `${proxy.url}${account}`,
    credentials: { kind: 'shared-key', accountName: azurite.accountName, accountKey: azurite.accountKey },
    partsInFlight: 1,
  });
}

/** From now on, the n-th request (0: the next one) gets `faults[n]`, and every later one none. */
function faultsInOrder(...faults: Fault[]): void {
  let request = 0;
  proxy.setChooser(() => faults[request++] ?? 'none');
}

function recordingRetries(): { retry: PartRetryOptions; seen: string[] } {
  const seen: string[] = [];
  return { seen, retry: { policy: { attempts: 4, baseDelayMs: 10, maxDelayMs: 20 }, onRetry: ({ what }) => void seen.push(what) } };
}

function putOptions(sizeBytes: number, overrides: Partial<PutOptions> = {}): PutOptions {
  return { sizeBytes, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined, ...overrides };
}

const md5Hex = (bytes: Buffer): string => createHash('md5').update(bytes).digest('hex');

async function read(key: string): Promise<Buffer> {
  return azurite.service.getContainerClient(container).getBlobClient(`p/${key}`).downloadToBuffer();
}

async function failureOf(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error, 'expected the operation to fail').toBeInstanceOf(AppError);
  return error as AppError;
}

describe('AzureRemoteStore with requests cut in transit', () => {
  it('a block cut on every try the SDK makes is staged again in place, reported, and the upload completes', async () => {
    const big = randomBytes(2 * PART_BYTES + 10);
    const { retry, seen } = recordingRetries();
    // Request 0 stages block 1; requests 1 and 2 are the SDK's two tries at block 2.
    faultsInOrder('none', 'reset-request', 'reset-request');
    await storeThroughProxy().put('retry/index.faiss', () => ({ kind: 'file', read: async (target, position) => void big.copy(target, 0, position, position + target.length) }), {
      ...putOptions(big.length, { partSizeBytes: PART_BYTES }),
      partRetry: retry,
    });
    expect(proxy.applied['reset-request']).toBeGreaterThanOrEqual(2);
    expect(seen.length).toBeGreaterThanOrEqual(1);
    expect(seen.every((what) => what.includes('block 2'))).toBe(true);
    expect((await read('retry/index.faiss')).equals(big)).toBe(true);
  });

  it('a sent part of a composition cut on every try the SDK makes is staged again in place, and the composition completes', async () => {
    const base = randomBytes(2 * PART_BYTES);
    await azurite.service.getContainerClient(container).getBlockBlobClient('p/compose/old.bin').upload(base, base.length);
    const store = storeThroughProxy();
    const sourceEtag = (await store.head('compose/old.bin'))?.etag ?? '';
    const head = randomBytes(PART_BYTES);
    const local = Buffer.concat([head, base.subarray(PART_BYTES)]);
    const { retry, seen } = recordingRetries();
    // Request 0 reads the source's properties; requests 1 and 2 are the SDK's two tries at the sent part.
    faultsInOrder('none', 'reset-request', 'reset-request');
    await store.compose('compose/new.bin', {
      sourceKey: 'compose/old.bin',
      sourceEtag,
      parts: [
        { kind: 'send', targetStart: 0, length: PART_BYTES, md5Hex: md5Hex(head) },
        { kind: 'copy', sourceStart: PART_BYTES, sourceEnd: base.length, md5Hex: md5Hex(base.subarray(PART_BYTES)) },
      ],
      body: { kind: 'file', read: async (target, position) => void local.copy(target, 0, position, position + target.length) },
      metadata: {},
      signal: undefined,
      partRetry: retry,
    });
    expect(seen.length).toBeGreaterThanOrEqual(1);
    expect(seen.every((what) => what.includes('part 1'))).toBe(true);
    expect((await read('compose/new.bin')).equals(local)).toBe(true);
  });

  describe('a single put of a stream leaves every stream it opened destroyed', () => {
    const SIZE = 32 * MIB;
    const bytes = randomBytes(SIZE);

    function trackedBody(): { body: BodySource; opened: Readable[] } {
      const opened: Readable[] = [];
      const body: BodySource = () => {
        const stream = Readable.from((function* chunks() {
          for (let at = 0; at < SIZE; at += 64 * 1024) yield bytes.subarray(at, at + 64 * 1024);
        })());
        opened.push(stream);
        return stream;
      };
      return { body, opened };
    }

    it('when the SDK tried again after a cut and then succeeded', async () => {
      const { body, opened } = trackedBody();
      faultsInOrder('reset-request');
      await storeThroughProxy().put('streams/ok.bin', body, putOptions(SIZE));
      expect(opened.length).toBeGreaterThanOrEqual(2);
      expect(opened.map((stream) => stream.destroyed)).toEqual(opened.map(() => true));
      expect((await read('streams/ok.bin')).equals(bytes)).toBe(true);
    });

    it('when every try was cut and the put failed', async () => {
      const { body, opened } = trackedBody();
      proxy.setChooser(() => 'reset-request');
      const error = await failureOf(storeThroughProxy().put('streams/failed.bin', body, putOptions(SIZE)));
      expect(error.kind, error.message).toBe('remote_unavailable');
      expect(opened.length).toBeGreaterThanOrEqual(2);
      expect(opened.map((stream) => stream.destroyed)).toEqual(opened.map(() => true));
    });
  });

  it('a Copy Blob cancelled while its answer is on the way leaves no target', async () => {
    const source = randomBytes(MIB);
    await azurite.service.getContainerClient(container).getBlockBlobClient('p/copy/source.bin').upload(source, source.length);
    const store = storeThroughProxy();
    const sourceEtag = (await store.head('copy/source.bin'))?.etag ?? '';
    // Request 0 reads the source's properties; the answer to request 1, the Copy Blob, is held.
    faultsInOrder('none', 'stall');
    const stallsBefore = proxy.applied.stall;
    const cancel = new AbortController();
    const copying = store.copy('copy/source.bin', 'copy/target.bin', { sizeBytes: source.length, partSizeBytes: undefined, sourceEtag, metadata: {}, signal: cancel.signal });
    // The answer is held once Azurite has given it: the copy is done on its side.
    await vi.waitFor(() => expect(proxy.applied.stall).toBe(stallsBefore + 1), { timeout: 30_000, interval: 20 });
    cancel.abort();
    const error = await failureOf(copying);
    expect(error.kind, error.message).toBe('cancelled');
    expect(await azurite.service.getContainerClient(container).getBlobClient('p/copy/target.bin').exists()).toBe(false);
  });
});
