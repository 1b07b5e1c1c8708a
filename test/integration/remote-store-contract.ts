// The RemoteStore contract: one suite that every implementation must pass, so the in-memory
// store unit tests rely on behaves like the real stores where it matters (ETags, conditional
// writes, integrity, pagination, not-found, metadata, multipart housekeeping, compose).
//
// How to run it against a store, from an entry file of its own (*.test.ts):
//
//   remoteStoreContract('MyStore on my server', async () => ({
//     store: new MyStore(...),                       // a fresh, empty namespace for this run
//     cleanup: async () => { /* remove what the run wrote (the bucket, the directory) */ },
//     startMultipartUpload: async (key) => ...,      // optional: leave one unfinished, return its id
//     readIndependently: async (key) => ...,         // optional: the bytes as another client reads them
//   }), { requires: ['conditionalWrites'] });        // optional: fail unless the probes find these
//
// Capabilities are not declared by the caller: before the tests, probes ask the store itself
// (remote-store-contract-probes.ts) whether it honours If-None-Match, checks Content-MD5,
// lists and aborts unfinished multipart uploads, and copies byte ranges in parts. A test that
// needs a capability the store lacks is reported as skipped, with the probe's reason. A
// capability listed in `requires` that the probes do not find fails the run, so a regression
// of a server known to have it cannot hide as a skip.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import type { BodySource, CopyOptions, PutOptions, RemoteObject, RemoteStore } from '../../src/remote/store.js';
import { normalizeEtag, PartHasher } from '../../src/snapshot/digest.js';
import { mapConcurrent } from '../helpers/concurrent.js';
import { composeContract } from './remote-store-contract-compose.js';
import { CAPABILITIES, describeCapabilities, probeCapabilities, type Capability, type ContractCapabilities, type ProbedCapabilities } from './remote-store-contract-probes.js';

export type { Capability, ContractCapabilities } from './remote-store-contract-probes.js';

export interface ContractSubject {
  store: RemoteStore;
  /** Starts a multipart upload at `key` (relative to the store's prefix) and leaves it unfinished; returns its upload id. Omitted: no multipart housekeeping. */
  startMultipartUpload?: (key: string) => Promise<string>;
  /** An object's bytes as a client other than the store reads them (S3: the AWS CLI), or why it cannot. */
  readIndependently?: (key: string) => Promise<Buffer | { skipped: string }>;
  /** Removes everything the suite created (the bucket). The store is closed before. */
  cleanup(): Promise<void>;
}

export interface ContractOptions {
  /** Capabilities this store is known to have: the run fails when a probe does not find one. */
  requires?: readonly Capability[];
}

/** vitest's `skip` from the test context: ends the test as skipped, with the reason. */
type Skip = (note: string) => never;

const MIB = 1024 * 1024;
/** S3's smallest non-final part. */
const PART_BYTES = 5 * MIB;
const MANY_KEYS = 1050;
const PUT_CONCURRENCY = 32;

function md5Hex(bytes: Buffer): string {
  return createHash('md5').update(bytes).digest('hex');
}

function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function putOptions(bytes: Buffer, overrides: Partial<PutOptions> = {}): PutOptions {
  return {
    sizeBytes: bytes.length,
    md5Hex: md5Hex(bytes),
    partSizeBytes: undefined,
    ifNoneMatch: false,
    metadata: {},
    signal: undefined,
    onProgress: undefined,
    ...overrides,
  };
}

function copyOptions(sizeBytes: number, sourceEtag: string, metadata: Record<string, string>): CopyOptions {
  return { sizeBytes, partSizeBytes: undefined, sourceEtag, metadata, signal: undefined };
}

/** A body source streaming `bytes` in 1 MiB chunks, like the file streams memsync uploads from. */
function streamOf(bytes: Buffer): BodySource {
  return () => {
    const chunks: Buffer[] = [];
    for (let offset = 0; offset < bytes.length; offset += MIB) chunks.push(bytes.subarray(offset, offset + MIB));
    return Readable.from(chunks);
  };
}

/** A FileBody over bytes in memory, as a local file would be read. */
function fileBodyOf(bytes: Buffer): BodySource {
  return () => ({
    kind: 'file',
    read: async (target, position) => {
      if (position + target.length > bytes.length) throw new Error('read past the end');
      bytes.copy(target, 0, position, position + target.length);
    },
  });
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

async function listAll(store: RemoteStore, keyPrefix: string): Promise<{ pages: RemoteObject[][]; objects: RemoteObject[] }> {
  const pages: RemoteObject[][] = [];
  for await (const page of store.listObjects(keyPrefix)) {
    pages.push(page);
    if (pages.length > 100) throw new Error('listObjects yielded more than 100 pages: a pagination loop?');
  }
  return { pages, objects: pages.flat() };
}

/** The AppError a promise rejects with; fails the test when it resolves or rejects with anything else. */
async function appErrorOf(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'expected the operation to fail').toBeInstanceOf(AppError);
  return error as AppError;
}

/**
 * Runs the contract against the store `factory` makes. The older form, with a capabilities
 * object before the factory, still works: the capabilities it marks true become `requires`.
 */
export function remoteStoreContract(name: string, factory: () => Promise<ContractSubject>, options?: ContractOptions): void;
export function remoteStoreContract(name: string, capabilities: Partial<ContractCapabilities>, factory: () => Promise<ContractSubject>): void;
export function remoteStoreContract(
  name: string,
  second: (() => Promise<ContractSubject>) | Partial<ContractCapabilities>,
  third?: (() => Promise<ContractSubject>) | ContractOptions,
): void {
  if (typeof second === 'function') defineContract(name, second, (third as ContractOptions | undefined) ?? {});
  else defineContract(name, third as () => Promise<ContractSubject>, { requires: CAPABILITIES.filter((c) => second[c] === true) });
}

function defineContract(name: string, factory: () => Promise<ContractSubject>, options: ContractOptions): void {
  describe(`RemoteStore contract: ${name}`, () => {
    let subject: ContractSubject;
    let store: RemoteStore;
    let probed: ProbedCapabilities | undefined;
    let namespaceCounter = 0;
    /** A key namespace of its own for each test. */
    const ns = (label: string): string => `${label}-${(namespaceCounter += 1)}/`;
    const has = (capability: Capability): boolean => probed?.[capability].present === true;
    /** Skips the running test, with the probe's reason, unless the store has every capability named. */
    const need = (skip: Skip, ...capabilities: Capability[]): void => {
      for (const capability of capabilities) {
        const result = probed?.[capability];
        if (result === undefined) skip(`${capability}: not probed (the store could not be set up)`);
        else if (!result.present) skip(`${name} lacks ${capability}: ${result.reason}`);
      }
    };

    beforeAll(async () => {
      subject = await factory();
      store = subject.store;
      probed = await probeCapabilities(subject, ns('capability-probe'));
      console.info(`[contract ${name}] probed capabilities: ${describeCapabilities(probed)}`);
    });
    afterAll(async () => {
      store?.close();
      await subject?.cleanup();
    });

    it(`has the capabilities it is known to have${options.requires?.length ? ` (${options.requires.join(', ')})` : ' (none required)'}`, () => {
      const lacking = (options.requires ?? []).flatMap((c) => {
        const result = probed?.[c];
        return result?.present === true ? [] : [`${c}: ${result === undefined ? 'not probed' : result.reason}`];
      });
      expect(lacking).toEqual([]);
    });

    it('checkAccess resolves for a usable store', async () => {
      await expect(store.checkAccess()).resolves.toBeUndefined();
    });

    it('put/head/get round trip: size and the plain MD5 ETag of a single-request upload', async () => {
      const base = ns('single');
      const bytes = randomBytes(100 * 1024 + 7);
      const progress: number[] = [];
      await store.put(`${base}buffer.bin`, () => bytes, putOptions(bytes, { onProgress: (loaded) => progress.push(loaded) }));
      await store.put(`${base}stream.bin`, streamOf(bytes), putOptions(bytes));
      for (const key of [`${base}buffer.bin`, `${base}stream.bin`]) {
        const head = await store.head(key);
        expect(head, key).toBeDefined();
        expect(head?.size).toBe(bytes.length);
        expect(normalizeEtag(head?.etag)).toBe(md5Hex(bytes));
        expect(sha256Hex(await readAll(await store.get(key)))).toBe(sha256Hex(bytes));
      }
      expect(Math.max(...progress)).toBe(bytes.length);
    });

    it('an empty object round-trips', async () => {
      const key = `${ns('empty')}zero.bin`;
      const bytes = Buffer.alloc(0);
      await store.put(key, () => bytes, putOptions(bytes));
      const head = await store.head(key);
      expect(head?.size).toBe(0);
      expect(normalizeEtag(head?.etag)).toBe(md5Hex(bytes));
      expect((await readAll(await store.get(key))).length).toBe(0);
    });

    it('multipart upload in 5 MiB parts: the ETag is md5-of-part-md5s-N, predicted by PartHasher', async () => {
      const key = `${ns('multipart')}index.faiss`;
      const bytes = randomBytes(2 * PART_BYTES + 123_457); // 3 parts, the last one short
      const expected = new PartHasher(PART_BYTES);
      expected.update(bytes);
      const expectedEtag = expected.etag();
      expect(expectedEtag).toMatch(/^[0-9a-f]{32}-3$/);
      const progress: number[] = [];
      await store.put(key, streamOf(bytes), putOptions(bytes, { md5Hex: undefined, partSizeBytes: PART_BYTES, onProgress: (loaded) => progress.push(loaded) }));
      const head = await store.head(key);
      expect(head?.size).toBe(bytes.length);
      // S3 and RGW report md5-of-part-md5s-N; some servers (s3rver) the whole object's MD5: memsync accepts both.
      const etag = normalizeEtag(head?.etag);
      expect([expectedEtag, md5Hex(bytes)]).toContain(etag);
      expect(sha256Hex(await readAll(await store.get(key)))).toBe(sha256Hex(bytes));
      expect(Math.max(...progress)).toBe(bytes.length);
      const listed = (await listAll(store, key)).objects;
      expect(listed.map((o) => [o.key, o.size, normalizeEtag(o.etag)])).toEqual([[key, bytes.length, etag]]);
    });

    it('multipart upload of a FileBody: parts read at their offsets and shown to onPart in order, each sent with its Content-MD5', async () => {
      const key = `${ns('file-parts')}index.faiss`;
      const bytes = randomBytes(3 * PART_BYTES + 4321); // 4 parts, the last one short
      const expected = new PartHasher(PART_BYTES);
      expected.update(bytes);
      const seen: Buffer[] = [];
      const progress: number[] = [];
      await store.put(key, fileBodyOf(bytes), {
        ...putOptions(bytes, { md5Hex: undefined, partSizeBytes: PART_BYTES, onProgress: (loaded) => progress.push(loaded) }),
        onPart: (part) => {
          seen.push(Buffer.from(part));
          return createHash('md5').update(part).digest();
        },
      });
      expect(Buffer.concat(seen).equals(bytes)).toBe(true);
      expect(seen.map((part) => part.length)).toEqual([PART_BYTES, PART_BYTES, PART_BYTES, 4321]);
      const head = await store.head(key);
      expect(head?.size).toBe(bytes.length);
      expect([expected.etag(), md5Hex(bytes)]).toContain(normalizeEtag(head?.etag));
      expect(sha256Hex(await readAll(await store.get(key)))).toBe(sha256Hex(bytes));
      expect(Math.max(...progress)).toBe(bytes.length);
    });

    it('a FileBody part that does not match the MD5 onPart gave is refused as AppError integrity; nothing is stored or left unfinished', async ({ skip }) => {
      need(skip, 'contentMd5Check');
      const base = ns('file-parts-corrupt');
      const key = `${base}index.faiss`;
      const bytes = randomBytes(2 * PART_BYTES + 99);
      let partNumber = 0;
      const error = await appErrorOf(
        store.put(key, fileBodyOf(bytes), {
          ...putOptions(bytes, { md5Hex: undefined, partSizeBytes: PART_BYTES }),
          onPart: (part) => {
            partNumber += 1;
            const digest = createHash('md5').update(part).digest();
            if (partNumber === 2) digest[0] = (digest[0] ?? 0) ^ 0xff; // as if the part changed between hash and send
            return digest;
          },
        }),
      );
      expect(error.kind).toBe('integrity');
      expect(await store.head(key)).toBeUndefined();
      if (has('multipartHousekeeping')) expect(await store.listMultipartUploads(base)).toEqual([]);
    });

    it('a FileBody whose read fails part-way: that error surfaces as it is; nothing is stored or left unfinished', async () => {
      const base = ns('file-parts-read-error');
      const key = `${base}index.faiss`;
      const bytes = randomBytes(3 * PART_BYTES);
      const readError = new AppError('snapshot_gone', 'index.faiss ended early');
      const body: BodySource = () => ({
        kind: 'file',
        read: async (target, position) => {
          if (position >= 2 * PART_BYTES) throw readError;
          bytes.copy(target, 0, position, position + target.length);
        },
      });
      const error = await appErrorOf(store.put(key, body, putOptions(bytes, { md5Hex: undefined, partSizeBytes: PART_BYTES })));
      expect(error).toBe(readError);
      expect(await store.head(key)).toBeUndefined();
      if (has('multipartHousekeeping')) expect(await store.listMultipartUploads(base)).toEqual([]);
    });

    it('a FileBody upload cancelled part-way fails with AppError cancelled; nothing is stored or left unfinished', async () => {
      const base = ns('file-parts-cancel');
      const key = `${base}index.faiss`;
      const bytes = randomBytes(4 * PART_BYTES);
      const cancel = new AbortController();
      let parts = 0;
      const error = await appErrorOf(
        store.put(key, fileBodyOf(bytes), {
          ...putOptions(bytes, { md5Hex: undefined, partSizeBytes: PART_BYTES, signal: cancel.signal }),
          onPart: () => {
            parts += 1;
            if (parts === 2) cancel.abort();
            return undefined;
          },
        }),
      );
      expect(error.kind).toBe('cancelled');
      expect(parts).toBeLessThan(4);
      expect(await store.head(key)).toBeUndefined();
      if (has('multipartHousekeeping')) expect(await store.listMultipartUploads(base)).toEqual([]);
    });

    it('ifNoneMatch refuses to replace an existing key: AppError conflict, the first object stays', async ({ skip }) => {
      need(skip, 'conditionalWrites');
      const key = `${ns('conditional')}manifest.json`;
      const first = Buffer.from('first');
      const second = Buffer.from('second');
      await store.put(key, () => first, putOptions(first, { ifNoneMatch: true }));
      const error = await appErrorOf(store.put(key, () => second, putOptions(second, { ifNoneMatch: true })));
      expect(error.kind).toBe('conflict');
      expect((await readAll(await store.get(key))).toString()).toBe('first');
      // Without the condition the key is replaced.
      await store.put(key, () => second, putOptions(second, { ifNoneMatch: false }));
      expect((await readAll(await store.get(key))).toString()).toBe('second');
    });

    it('a body that does not match md5Hex is refused as AppError integrity, and nothing is stored', async ({ skip }) => {
      need(skip, 'contentMd5Check');
      const key = `${ns('integrity')}corrupt.bin`;
      const bytes = randomBytes(4096);
      const other = Buffer.from(bytes);
      other[0] = (other[0] ?? 0) ^ 0xff;
      const error = await appErrorOf(store.put(key, () => bytes, putOptions(bytes, { md5Hex: md5Hex(other) })));
      expect(error.kind).toBe('integrity');
      expect(await store.head(key)).toBeUndefined();
    });

    it(`listObjects pages through more than 1,000 keys (${MANY_KEYS}): all of them, in key order, relative to the prefix`, async () => {
      const base = ns('list');
      const keys = Array.from({ length: MANY_KEYS }, (_, i) => `${base}k-${i.toString().padStart(5, '0')}`);
      await mapConcurrent(keys, PUT_CONCURRENCY, async (key) => {
        const bytes = Buffer.from(`body of ${key}`);
        await store.put(key, () => bytes, putOptions(bytes));
      });
      // A sibling that shares the textual prefix but not the "directory" must not be listed.
      const sibling = `${base.slice(0, -1)}x/outside`;
      await store.put(sibling, () => Buffer.from('x'), putOptions(Buffer.from('x')));

      const startedMs = Date.now();
      const { pages, objects } = await listAll(store, base);
      expect(pages.length).toBeGreaterThanOrEqual(2);
      for (const page of pages) expect(page.length).toBeLessThanOrEqual(1000);
      expect(objects.map((o) => o.key)).toEqual(keys);
      for (const object of objects) {
        const body = Buffer.from(`body of ${object.key}`);
        expect(object.size).toBe(body.length);
        expect(normalizeEtag(object.etag)).toBe(md5Hex(body));
        // Clock skew between this machine and the server is small in tests; an hour is generous.
        expect(Math.abs(object.lastModifiedMs - startedMs)).toBeLessThan(3_600_000);
      }
    });

    it('listObjects of a prefix with no objects yields nothing', async () => {
      const { objects } = await listAll(store, ns('nothing-here'));
      expect(objects).toEqual([]);
    });

    it('head of a missing key is undefined; get of a missing key fails with AppError not_found', async () => {
      const key = `${ns('missing')}nope.bin`;
      expect(await store.head(key)).toBeUndefined();
      const error = await appErrorOf(store.get(key));
      expect(error.kind).toBe('not_found');
    });

    it('delete removes an object; deleting a missing key is not an error', async () => {
      const key = `${ns('delete')}gone.bin`;
      const bytes = Buffer.from('to be deleted');
      await store.put(key, () => bytes, putOptions(bytes));
      expect(await store.head(key)).toBeDefined();
      await store.delete(key);
      expect(await store.head(key)).toBeUndefined();
      expect((await listAll(store, key)).objects).toEqual([]);
      await expect(store.delete(key)).resolves.toBeUndefined();
    });

    it('user metadata round-trips with lower-case keys', async () => {
      const key = `${ns('metadata')}file.bin`;
      const bytes = Buffer.from('metadata carrier');
      const metadata = { 'memsync-agent': 'agent-1234', 'memsync-sha256': sha256Hex(bytes) };
      await store.put(key, () => bytes, putOptions(bytes, { metadata }));
      expect((await store.head(key))?.metadata).toEqual(metadata);
    });

    it('user metadata keys written in mixed case come back lower-case (RemoteHead.metadata promises lower-case keys)', async () => {
      const key = `${ns('metadata-case')}file.bin`;
      const bytes = Buffer.from('metadata carrier');
      await store.put(key, () => bytes, putOptions(bytes, { metadata: { 'Memsync-Agent': 'agent-5678' } }));
      expect((await store.head(key))?.metadata).toEqual({ 'memsync-agent': 'agent-5678' });
    });

    it('a put whose signal is already aborted fails with AppError cancelled and stores nothing', async () => {
      const base = ns('aborted');
      const controller = new AbortController();
      controller.abort();
      const small = Buffer.from('never sent');
      const single = await appErrorOf(store.put(`${base}single.bin`, () => small, putOptions(small, { signal: controller.signal })));
      expect(single.kind).toBe('cancelled');
      const big = randomBytes(PART_BYTES + 1);
      const multipart = await appErrorOf(
        store.put(`${base}multi.bin`, streamOf(big), putOptions(big, { md5Hex: undefined, partSizeBytes: PART_BYTES, signal: controller.signal })),
      );
      expect(multipart.kind).toBe('cancelled');
      expect((await listAll(store, base)).objects).toEqual([]);
      if (has('multipartHousekeeping')) expect(await store.listMultipartUploads(base)).toEqual([]);
    });

    it('copy (one request) makes a byte-identical object with the plain MD5 ETag and only the metadata given (REPLACE)', async () => {
      const base = ns('copy');
      const bytes = randomBytes(300 * 1024 + 11);
      await store.put(`${base}a/index.faiss`, () => bytes, putOptions(bytes, { metadata: { 'memsync-agent': 'source-agent', 'memsync-sha256': sha256Hex(bytes), extra: 'x' } }));
      const source = await store.head(`${base}a/index.faiss`);
      await store.copy(`${base}a/index.faiss`, `${base}b/index.faiss`, copyOptions(bytes.length, source?.etag ?? '', { 'memsync-agent': 'target-agent', 'Memsync-Sha256': sha256Hex(bytes) }));
      const head = await store.head(`${base}b/index.faiss`);
      expect(head?.size).toBe(bytes.length);
      expect(normalizeEtag(head?.etag)).toBe(md5Hex(bytes));
      expect(head?.metadata).toEqual({ 'memsync-agent': 'target-agent', 'memsync-sha256': sha256Hex(bytes) });
      expect(sha256Hex(await readAll(await store.get(`${base}b/index.faiss`)))).toBe(sha256Hex(bytes));
      // The source is untouched.
      expect((await store.head(`${base}a/index.faiss`))?.metadata['memsync-agent']).toBe('source-agent');
    });

    it('copy (one request) of a multipart source: byte-identical; the ETag is the whole MD5 or the source\'s multipart ETag', async () => {
      const base = ns('copy-multipart-source');
      const bytes = randomBytes(2 * PART_BYTES + 4321);
      await store.put(`${base}a/big.bin`, streamOf(bytes), putOptions(bytes, { md5Hex: undefined, partSizeBytes: PART_BYTES }));
      const source = await store.head(`${base}a/big.bin`);
      const sourceEtag = normalizeEtag(source?.etag);
      await store.copy(`${base}a/big.bin`, `${base}b/big.bin`, copyOptions(bytes.length, sourceEtag, { 'memsync-agent': 'target-agent' }));
      const head = await store.head(`${base}b/big.bin`);
      expect(head?.size).toBe(bytes.length);
      // AWS S3 recomputes a plain MD5 for the copy; Ceph RGW keeps the source's multipart ETag. memsync accepts either.
      expect([md5Hex(bytes), sourceEtag]).toContain(normalizeEtag(head?.etag));
      console.info(`[contract ${name}] CopyObject of a multipart source gives ETag ${normalizeEtag(head?.etag) === sourceEtag ? 'of the source (multipart form)' : 'MD5 of the whole object'}`);
      expect(sha256Hex(await readAll(await store.get(`${base}b/big.bin`)))).toBe(sha256Hex(bytes));
    });

    it('copy in parts (UploadPartCopy) gives the multipart ETag of that part size, predicted by PartHasher', async ({ skip }) => {
      need(skip, 'partCopy');
      const base = ns('copy-parts');
      const bytes = randomBytes(2 * PART_BYTES + 777);
      await store.put(`${base}a/big.bin`, () => bytes, putOptions(bytes));
      const source = await store.head(`${base}a/big.bin`);
      await store.copy(`${base}a/big.bin`, `${base}b/big.bin`, { ...copyOptions(bytes.length, source?.etag ?? '', { 'memsync-agent': 'target-agent' }), partSizeBytes: PART_BYTES });
      const expected = new PartHasher(PART_BYTES);
      expected.update(bytes);
      const head = await store.head(`${base}b/big.bin`);
      expect(head?.size).toBe(bytes.length);
      expect(normalizeEtag(head?.etag)).toBe(expected.etag());
      expect(head?.metadata).toEqual({ 'memsync-agent': 'target-agent' });
      expect(sha256Hex(await readAll(await store.get(`${base}b/big.bin`)))).toBe(sha256Hex(bytes));
      if (has('multipartHousekeeping')) expect(await store.listMultipartUploads(base)).toEqual([]);
    });

    it('copy of a missing source fails with AppError not_found and creates nothing, in one request or in parts', async ({ skip }) => {
      need(skip, 'partCopy');
      const base = ns('copy-missing');
      for (const partSizeBytes of [undefined, PART_BYTES]) {
        const error = await appErrorOf(store.copy(`${base}a/none.bin`, `${base}b/none.bin`, { ...copyOptions(10, md5Hex(Buffer.from('x')), {}), partSizeBytes }));
        expect(error.kind).toBe('not_found');
      }
      expect((await listAll(store, base)).objects).toEqual([]);
      if (has('multipartHousekeeping')) expect(await store.listMultipartUploads(base)).toEqual([]);
    });

    it('copy with a stale sourceEtag: refused as AppError conflict where the server honours the precondition, else a copy of the source as it is', async ({ skip }) => {
      need(skip, 'partCopy');
      // Ceph RGW 16 ignores x-amz-copy-source-if-match (it reads x-amz-copy-if-match): memsync does
      // not rely on the precondition, it checks the copy against its own digest afterwards.
      const base = ns('copy-stale');
      const bytes = Buffer.from('the source as it is now');
      await store.put(`${base}a/file.bin`, () => bytes, putOptions(bytes));
      const seen: string[] = [];
      for (const partSizeBytes of [undefined, PART_BYTES]) {
        const target = `${base}${partSizeBytes === undefined ? 'single' : 'parts'}/file.bin`;
        const result = await store.copy(`${base}a/file.bin`, target, { ...copyOptions(bytes.length, md5Hex(Buffer.from('what it was')), {}), partSizeBytes }).then(
          () => 'copied',
          (error: unknown) => (error instanceof AppError ? error.kind : String(error)),
        );
        seen.push(`${partSizeBytes === undefined ? 'CopyObject' : 'UploadPartCopy'}: ${result === 'conflict' ? 'honoured' : 'ignored'}`);
        if (result === 'copied') expect((await readAll(await store.get(target))).equals(bytes)).toBe(true);
        else {
          expect(result).toBe('conflict');
          expect(await store.head(target)).toBeUndefined();
        }
      }
      console.info(`[contract ${name}] copy-source-if-match ${seen.join(', ')}`);
      if (has('multipartHousekeeping')) expect(await store.listMultipartUploads(base)).toEqual([]);
    });

    composeContract({
      name,
      store: () => store,
      ns,
      has,
      need,
      readIndependently: (key) => subject.readIndependently?.(key) ?? Promise.resolve({ skipped: 'the store has no independent reader' }),
    });

    it('listMultipartUploads lists an unfinished upload relative to the prefix; abortMultipartUpload removes it', async ({ skip }) => {
      need(skip, 'multipartHousekeeping');
      const base = ns('mpu');
      const key = `${base}big/index.faiss`;
      const startedMs = Date.now();
      const start = subject.startMultipartUpload as (key: string) => Promise<string>;
      const uploadId = await start(key);
      const elsewhere = await start(`${ns('mpu-other')}x.bin`);

      const listed = await store.listMultipartUploads(base);
      expect(listed.map((u) => ({ key: u.key, uploadId: u.uploadId }))).toEqual([{ key, uploadId }]);
      expect(Math.abs((listed[0]?.initiatedMs ?? 0) - startedMs)).toBeLessThan(3_600_000);
      expect((await store.listMultipartUploads('')).map((u) => u.uploadId)).toEqual(expect.arrayContaining([uploadId, elsewhere]));

      await store.abortMultipartUpload(listed[0] as (typeof listed)[number]);
      expect(await store.listMultipartUploads(base)).toEqual([]);
      // Aborting what is already gone is not an error (a sweep and a shutdown may both try).
      await expect(store.abortMultipartUpload({ key, uploadId, initiatedMs: startedMs })).resolves.toBeUndefined();
      // Nothing was left as an object either.
      expect((await listAll(store, base)).objects).toEqual([]);
    });
  });
}
