// The S3 store against a server whose ListObjectsV2 answers are hostile: malformed XML, entity
// expansion attempts, absurd sizes, endless continuation tokens, huge bodies. Every listing must
// end, every failure must be an AppError, and nothing a listing carries may become the latest
// snapshot. FUZZ_SEED=<n> replays a run; every failure prints its seed.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { S3Client } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError, type ErrorKind } from '../../src/errors.js';
import { buildRemoteIndex, chooseLatestRestorable, listRemoteIndex } from '../../src/remote/remote-index.js';
import { listS3Objects, type ListingReader } from '../../src/remote/s3-listing.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import type { RemoteObject } from '../../src/remote/store.js';
import { isTimedSnapshotName } from '../../src/snapshot/naming.js';
import { describeFailures, Fuzz, fuzzSeed, preview, unexpectedFailure, type FuzzFailure } from '../helpers/fuzz.js';

const seed = fuzzSeed();
const replay = `FUZZ_SEED=${seed}`;
/** What a listing may fail with: the store refused or could not be reached, or what it said cannot be true. */
const LISTING_FAILURES: readonly ErrorKind[] = ['remote_rejected', 'remote_unavailable', 'integrity'];
const MIB = 1024 * 1024;

interface ListRequest {
  token: string | undefined;
  /** Requests this server has answered so far, this one included. */
  count: number;
}

/** An answer written as it pleases, for bodies too large to build whole; resolves once written. */
type Answer = { status?: number; body: string | Buffer } | ((response: ServerResponse) => Promise<void>);

/** A ListObjectsV2 endpoint on 127.0.0.1 that answers whatever `answer` returns. */
class ListingServer {
  requests = 0;
  endpoint = '';
  answer: (request: ListRequest) => Answer = () => ({ body: page([]) });
  private readonly sockets = new Set<Socket>();
  private readonly server: Server = createServer((request, response) => void this.handle(request, response));

  async start(): Promise<string> {
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    this.endpoint = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
    return this.endpoint;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    request.resume();
    this.requests += 1;
    const url = new URL(request.url ?? '/', 'http://listing');
    const answer = this.answer({ token: url.searchParams.get('continuation-token') ?? undefined, count: this.requests });
    if (typeof answer === 'function') return answer(response);
    response.writeHead(answer.status ?? 200, { 'content-type': 'application/xml' });
    response.end(answer.body);
  }
}

interface Entry {
  key?: string;
  size?: string;
  etag?: string;
  lastModified?: string;
}

const escapeXml = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function page(entries: readonly Entry[], options: { truncated?: string; token?: string; raw?: boolean } = {}): string {
  const field = (name: string, value: string | undefined): string => (value === undefined ? '' : `<${name}>${options.raw === true ? value : escapeXml(value)}</${name}>`);
  const contents = entries.map((e) => `<Contents>${field('Key', e.key)}${field('LastModified', e.lastModified)}${field('ETag', e.etag)}${field('Size', e.size)}<StorageClass>STANDARD</StorageClass></Contents>`);
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>fuzz</Name><Prefix></Prefix>' +
    `<KeyCount>${entries.length}</KeyCount><MaxKeys>1000</MaxKeys>${field('IsTruncated', options.truncated ?? 'false')}${field('NextContinuationToken', options.token)}` +
    `${contents.join('')}</ListBucketResult>`
  );
}

const entry = (key: string, size = '10'): Entry => ({ key, size, etag: '"0123456789abcdef0123456789abcdef"', lastModified: '2025-01-01T00:00:00.000Z' });

let server: ListingServer | undefined;
const stores: S3RemoteStore[] = [];
afterEach(async () => {
  for (const store of stores.splice(0)) store.close();
  await server?.stop();
  server = undefined;
});

async function storeAgainst(answer: ListingServer['answer']): Promise<{ store: S3RemoteStore; server: ListingServer }> {
  server = new ListingServer();
  server.answer = answer;
  const store = new S3RemoteStore({
    bucket: 'fuzz',
    prefix: '',
    endpoint: await server.start(),
    region: 'us-east-1',
    credentials: { accessKeyId: 'fuzz-access-key', secretAccessKey: 'fuzz-secret-key' },
    forcePathStyle: true,
    partsInFlight: 1,
    // A stalled answer is not what these cases are about: fail it fast rather than wait 30 s.
    idleTimeoutMs: 5000,
  });
  stores.push(store);
  return { store, server };
}

/** Every object the listing yields, or what it failed with. */
async function listAll(store: S3RemoteStore): Promise<{ objects: RemoteObject[] } | { error: unknown }> {
  const objects: RemoteObject[] = [];
  try {
    for await (const items of store.listObjects('')) objects.push(...items);
    return { objects };
  } catch (error) {
    return { error };
  }
}

/** Billion laughs: ten levels of ten references each, 10^9 "lol"s if a parser expanded them. */
const BILLION_LAUGHS = `<!DOCTYPE lolz [<!ENTITY lol "lol">${Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i === 0 ? '' : i};`.repeat(10)}">`).join('')}]>`;

function hostileKey(fuzz: Fuzz): string {
  return fuzz.pick([
    `auto_2025010${fuzz.between(1, 9)}_000000/memory.json`,
    'latest/.memsync-manifest.json',
    `auto_20991231_235959/${fuzz.pick(['../x', 'a//b', '\u0001', '.memsync-claim'])}`,
    `../auto_20991231_235959/x`,
    'x'.repeat(fuzz.pick([1024, 1025, 20_000])),
    fuzz.hostileText(120),
    '',
  ]);
}

/** A page as a hostile server might send it; `raw` keeps its texts unescaped, so they can break the document. */
function hostilePage(fuzz: Fuzz): { status: number; body: string; bytesChanged: boolean } {
  const entries: Entry[] = [];
  for (let n = fuzz.pick([0, 1, 3, fuzz.between(0, 50), fuzz.chance(0.03) ? 3000 : 2]); n > 0; n -= 1) {
    const e = entry(hostileKey(fuzz), fuzz.pick(['0', '10', '-5', '1.5', 'abc', '', '1e23', '9007199254740993', '0x10', String(fuzz.int(1e9))]));
    if (fuzz.chance(0.1)) delete e.key;
    if (fuzz.chance(0.1)) e.lastModified = fuzz.pick(['yesterday', '', '9999-99-99T99:99:99Z', '1970-01-01T00:00:00Z', '-271821-04-20T00:00:00Z']);
    if (fuzz.chance(0.1)) e.etag = fuzz.hostileText(40);
    entries.push(e);
  }
  const truncated = fuzz.chance(0.2) ? fuzz.pick(['true', 'TRUE', 'maybe', '']) : 'false';
  const token = fuzz.chance(0.3) ? fuzz.pick(['next', '', fuzz.hostileText(50)]) : undefined;
  let body = page(entries, { truncated, token, raw: fuzz.chance(0.2) });
  const mutation = fuzz.int(10);
  switch (mutation) {
    case 0:
      body = body.slice(0, fuzz.int(body.length));
      break;
    case 1: {
      const bytes = Buffer.from(body);
      for (let n = fuzz.between(1, 6); n > 0; n -= 1) bytes[fuzz.int(bytes.length)] = fuzz.int(256);
      body = bytes.toString('latin1');
      break;
    }
    case 2:
      body = body.replace('<ListBucketResult', `${BILLION_LAUGHS}<ListBucketResult`).replace('<Key>', '<Key>&lol9;');
      break;
    case 3:
      body = body.replace('<Key>', `<Key>${fuzz.pick(['&#0;', '&#xD800;', '&#x110000;', '&#99999999;', '&unknown;', '<![CDATA[a]]>]]>', '&amp;lt;'])}`);
      break;
    case 4: {
      const depth = fuzz.pick([100, 5000, 50_000]);
      body = body.replace('<Name>', `${'<Contents>'.repeat(depth)}${'</Contents>'.repeat(depth)}<Name>`);
      break;
    }
    case 5:
      body = body.replace('<Name>', fuzz.pick(['<__proto__><Key>x</Key></__proto__>', '<Contents><__proto__>1</__proto__></Contents>', '<constructor><prototype>1</prototype></constructor>']) + '<Name>');
      break;
    case 6:
      body = fuzz.pick(['', 'not xml', '<html><body>502 Bad Gateway</body></html>', '<?xml version="1.0"?>', '<Error><Code>InternalError</Code></Error>', fuzz.hostileText(200)]);
      break;
    default:
      break;
  }
  const status = fuzz.chance(0.1) ? fuzz.pick([200, 204, 301, 400, 403, 404, 500, 503]) : 200;
  return { status, body, bytesChanged: mutation === 1 };
}

describe('ListObjectsV2 answers from a hostile server', () => {
  it('ends every generated listing with objects or an AppError, and never offers a planted key as the latest', async () => {
    const fuzz = new Fuzz(seed);
    let current = { status: 200, body: page([]), bytesChanged: false };
    // A truncated page is followed once; the next page ends the listing, so every case is bounded by the server.
    const { store } = await storeAgainst(({ token }) => (token === undefined ? current : { body: page([entry('auto_20250102_000000/second.json')]) }));
    const failures: FuzzFailure[] = [];
    const cases = 250;
    let listed = 0;
    for (let caseIndex = 0; caseIndex < cases; caseIndex += 1) {
      current = hostilePage(fuzz);
      const fail = (problem: string): number => failures.push({ seed, caseIndex, input: preview(`${current.status} ${current.body}`), problem });
      const result = await listAll(store);
      if ('error' in result) {
        // A 404 from the listing itself is the store saying "no such thing", which the caller reports as such.
        const problem = unexpectedFailure(result.error, current.status === 404 ? [...LISTING_FAILURES, 'not_found'] : LISTING_FAILURES);
        if (problem !== undefined) fail(problem);
        continue;
      }
      listed += 1;
      const malformed = result.objects.find((o) => typeof o.key !== 'string' || typeof o.etag !== 'string' || typeof o.size !== 'number' || typeof o.lastModifiedMs !== 'number');
      if (malformed !== undefined) fail(`malformed object ${preview(malformed)}`);
      try {
        const latest = chooseLatestRestorable(buildRemoteIndex(result.objects, 0));
        if (latest !== undefined && !isTimedSnapshotName(latest.name)) fail(`latest is ${latest.name}`);
        // Random bytes can turn a planted key into a valid one; otherwise, the planted keys are never restorable.
        const planted = latest?.name === 'latest' || latest?.name.startsWith('auto_2099') === true;
        if (planted && !current.bytesChanged) fail(`planted ${latest?.name} chosen as the latest`);
      } catch (error) {
        fail(`grouping threw ${unexpectedFailure(error, [])}`);
      }
    }
    expect(describeFailures(failures, cases)).toBe('');
    expect(listed, replay).toBeGreaterThan(0);
    expect(listed, replay).toBeLessThan(cases);
  });

  it('does not expand entities declared in a DOCTYPE (billion laughs)', async () => {
    const { store } = await storeAgainst(() => ({ body: page([entry('auto_20250101_000000/&lol9;')], { raw: true }).replace('<ListBucketResult', `${BILLION_LAUGHS}<ListBucketResult`) }));
    const result = await listAll(store);
    const keys = 'objects' in result ? result.objects.map((o) => o.key) : [];
    expect('error' in result ? unexpectedFailure(result.error, LISTING_FAILURES) : undefined).toBeUndefined();
    expect(Math.max(0, ...keys.map((key) => key.length))).toBeLessThan(100);
  });

  it('fails a listing nested deeper than the parser can follow as an AppError, not a raw RangeError', async () => {
    const { store } = await storeAgainst(() => ({ body: page([]).replace('<Name>', `${'<a>'.repeat(200_000)}${'</a>'.repeat(200_000)}<Name>`) }));
    const result = await listAll(store);
    expect('error' in result ? unexpectedFailure(result.error, LISTING_FAILURES) : 'listed').toBeUndefined();
  });

  it('ends a listing of 20,000 entries in one page (more than the 1,000 asked for)', async () => {
    const entries = Array.from({ length: 20_000 }, (_, i) => entry(`auto_20250101_000000/f${i}`));
    const { store } = await storeAgainst(() => ({ body: page(entries) }));
    const outcome = await listRemoteIndex(store, () => 0).then(
      (listed) => `listed ${listed.snapshots.get('auto_20250101_000000')?.fileCount} files`,
      (error: unknown) => unexpectedFailure(error, LISTING_FAILURES) ?? 'refused',
    );
    // All of them, or an AppError: nothing in between.
    expect(['listed 20000 files', 'refused']).toContain(outcome);
  });

  // The SDK reads a listing's body whole before parsing it: this bounds the outcome, not the memory.
  it('fails a 50 MiB answer of junk as an AppError', async () => {
    const { store } = await storeAgainst(() => async (response) => {
      response.writeHead(200, { 'content-type': 'application/xml' });
      const chunk = Buffer.alloc(MIB, 'A');
      for (let i = 0; i < 50 && !response.destroyed; i += 1) {
        if (!response.write(chunk)) await new Promise((resolve) => (response.once('drain', resolve), response.once('close', resolve)));
      }
      response.end();
    });
    const result = await listAll(store);
    expect('error' in result ? unexpectedFailure(result.error, LISTING_FAILURES) : 'listed').toBeUndefined();
  });

  it('ends a listing marked truncated that gives no continuation token, after one request', async () => {
    const { store, server: listing } = await storeAgainst(() => ({ body: page([entry('auto_20250101_000000/a')], { truncated: 'true' }) }));
    const result = await listAll(store);
    const outcome = 'objects' in result ? result.objects.map((o) => o.key).join() : (unexpectedFailure(result.error, LISTING_FAILURES) ?? 'refused');
    expect(['auto_20250101_000000/a', 'refused']).toContain(outcome);
    expect(listing.requests).toBe(1);
  });
});

/** A well-formed page whose keys and token are awkward to escape, as a working server might send. */
function plausiblePage(fuzz: Fuzz): { status: number; body: string; bytesChanged: boolean } {
  const entries = Array.from({ length: fuzz.between(0, 20) }, () => ({ ...entry(fuzz.hostileText(60), String(fuzz.int(1e12))), etag: `"${fuzz.hostileText(20)}"` }));
  const token = fuzz.chance(0.5) ? fuzz.hostileText(50) : undefined;
  return { status: 200, body: page(entries, { truncated: token === undefined ? 'false' : 'true', token }), bytesChanged: false };
}

describe("memsync's reader of listing pages against the SDK's", () => {
  /** What a listing through `reader` gave: its objects, or the kind of AppError it failed with. */
  async function outcomeBy(client: S3Client, reader: ListingReader, fallbacks: string[]): Promise<string> {
    const objects: RemoteObject[] = [];
    try {
      for await (const items of listS3Objects({ client, bucket: 'fuzz', prefix: '', reader, onSdkFallback: (problem) => fallbacks.push(problem) })) objects.push(...items);
      return JSON.stringify(objects);
    } catch (error) {
      return error instanceof AppError ? `AppError ${error.kind}` : `raw ${String(error)}`;
    }
  }

  it('lists every generated page as the SDK does, or refuses it to the SDK', async () => {
    const fuzz = new Fuzz(seed);
    let current = { status: 200, body: page([]), bytesChanged: false };
    const { server: listing } = await storeAgainst(({ token }) => (token === undefined ? current : { body: page([entry('auto_20250102_000000/second.json')]) }));
    const client = new S3Client({ endpoint: listing.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'fuzz', secretAccessKey: 'fuzz' }, forcePathStyle: true, maxAttempts: 1 });
    const failures: FuzzFailure[] = [];
    const cases = 250;
    let readByMemsync = 0;
    try {
      for (let caseIndex = 0; caseIndex < cases; caseIndex += 1) {
        current = { ...(fuzz.chance(0.5) ? plausiblePage(fuzz) : hostilePage(fuzz)), status: 200 };
        const fallbacks: string[] = [];
        const own = await outcomeBy(client, 'memsync', fallbacks);
        const sdk = await outcomeBy(client, 'sdk', []);
        if (fallbacks.length === 0 && !own.startsWith('AppError')) readByMemsync += 1;
        // Both failing counts as agreement whatever the kinds: the SDK's own parser, bound by the
        // stack on deeply nested bodies, fails one body with different kinds from run to run.
        const bothFailed = own.startsWith('AppError') && sdk.startsWith('AppError');
        if (own !== sdk && !bothFailed) failures.push({ seed, caseIndex, input: preview(current.body), problem: `memsync's reader gave ${preview(own)}, the SDK's ${preview(sdk)}` });
      }
    } finally {
      client.destroy();
    }
    expect(describeFailures(failures, cases)).toBe('');
    expect(readByMemsync, replay).toBeGreaterThan(0);
  });
});

describe('continuation tokens that lead nowhere', () => {
  /**
   * The server gives up after this many requests and ends the listing itself, so a reader that
   * follows the loop still finishes: the test then fails on the requests it made instead of hanging.
   */
  const SERVER_GIVES_UP_AFTER = 50;

  async function followLoop(nextToken: (request: ListRequest) => string): Promise<{ outcome: unknown; requests: number }> {
    const { store, server: listing } = await storeAgainst((request) =>
      request.count > SERVER_GIVES_UP_AFTER
        ? { body: page([]) }
        : { body: page([entry(`auto_20250101_000000/page-${request.count}`)], { truncated: 'true', token: nextToken(request) }) },
    );
    const outcome = await listRemoteIndex(store, () => 0).then(
      (index) => `listed ${[...index.snapshots.values()].reduce((sum, s) => sum + s.fileCount, 0)} files`,
      (error: unknown) => error,
    );
    return { outcome, requests: listing.requests };
  }

  function expectLoopRefused({ outcome, requests }: { outcome: unknown; requests: number }): void {
    const problem = outcome instanceof AppError ? unexpectedFailure(outcome, LISTING_FAILURES) : `the listing followed the loop for ${requests} requests until the server stopped it (${String(outcome)})`;
    expect(problem === undefined, problem).toBe(true);
    expect(requests).toBeLessThan(SERVER_GIVES_UP_AFTER);
  }

  it('stops when the server answers the same NextContinuationToken again', async () => {
    expectLoopRefused(await followLoop(() => 'again'));
  });

  it('stops when the tokens go round in a cycle', async () => {
    expectLoopRefused(await followLoop(({ token }) => (token === 'A' ? 'B' : 'A')));
  });
});

describe('a listing damaged on the way', () => {
  it('fails when it carries fewer keys than its KeyCount says, instead of showing a snapshot with files missing', async () => {
    const body = page([entry('auto_20250101_000000/.memsync-manifest.json', '10'), entry('auto_20250101_000000/config.json', '10')]).replace(/<KeyCount>\d+<\/KeyCount>/, '<KeyCount>4</KeyCount>');
    const { store } = await storeAgainst(() => ({ body }));
    const result = await listAll(store);
    expect('error' in result && result.error instanceof AppError && result.error.kind === 'remote_unavailable', JSON.stringify(result)).toBe(true);
  });
});

describe('object sizes in a listing', () => {
  it('are never negative, fractional, not a number or beyond exact integers: refused, or the listing fails as an AppError', async () => {
    const absurd = { negative: '-5', fractional: '1.5', 'not-a-number': 'abc', huge: '1e23', inexact: '9007199254740993' };
    const { store } = await storeAgainst(() => ({ body: page([...Object.entries(absurd).map(([label, size]) => entry(`auto_20250101_000000/${label}`, size)), entry('auto_20250101_000000/fine', '10')]) }));
    const result = await listAll(store);
    if ('error' in result) {
      expect(unexpectedFailure(result.error, LISTING_FAILURES)).toBeUndefined();
      return;
    }
    const accepted = result.objects.filter((o) => !Number.isSafeInteger(o.size) || o.size < 0);
    expect(accepted.map((o) => `${o.key} listed with size ${o.size}`)).toEqual([]);
  });
});
