// Conditions of the directory store's writes: what it cannot check atomically (If-Match) it
// refuses rather than write unconditionally, and a server-side copy or composition only ever
// creates its target, never replaces an object another writer placed meanwhile.
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { probeConditionalReplace } from '../../src/remote/conditional-writes.js';
import { FsRemoteStore } from '../../src/remote/fs-store.js';
import type { FileBody, PutOptions, RemoteHead } from '../../src/remote/store.js';
import { tempDir } from '../helpers/tmp.js';

const PREFIX = 'memories/';
const md5Hex = (bytes: Buffer): string => createHash('md5').update(bytes).digest('hex');

function putOptions(bytes: Buffer, overrides: Partial<PutOptions> = {}): PutOptions {
  return { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined, ...overrides };
}

function bodyOver(bytes: Buffer): FileBody {
  return { kind: 'file', read: async (target, position) => void bytes.copy(target, 0, position, position + target.length) };
}

async function newStore(): Promise<FsRemoteStore> {
  const directory = await tempDir('memsync-fs-conditions');
  await mkdir(path.join(directory, PREFIX));
  return new FsRemoteStore({ directory, prefix: PREFIX });
}

async function failure(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the operation failed').toBeInstanceOf(AppError);
  return error as AppError;
}

describe('FsRemoteStore write conditions', () => {
  it('a put with ifMatchEtag is refused as NotImplemented, on a foreign ETag and on the object\'s own, and the object stays as it was', async () => {
    const store = await newStore();
    const key = 'auto_20260101_000000/.memsync-claim';
    const first = Buffer.from('claimed by agent a');
    await store.put(key, () => first, putOptions(first, { metadata: { 'memsync-agent': 'a' } }));
    const stored: RemoteHead = { size: first.length, etag: `"${md5Hex(first)}"`, metadata: { 'memsync-agent': 'a' } };
    const second = Buffer.from('claimed by agent b');
    for (const ifMatchEtag of [`"${'0'.repeat(32)}"`, stored.etag]) {
      const error = await failure(store.put(key, () => second, putOptions(second, { ifMatchEtag, metadata: { 'memsync-agent': 'b' } })));
      expect(error.kind, error.message).toBe('remote_rejected');
      expect(error.details?.code).toBe('NotImplemented');
      expect(await store.head(key)).toEqual(stored);
    }
  });

  it('the If-Match probe finds the directory store refusing conditional replaces, so no claim relies on them', async () => {
    expect(await probeConditionalReplace(await newStore())).toBe('refused');
  });

  it('a copy onto a key that is taken fails with conflict and leaves the object there as it was', async () => {
    const store = await newStore();
    const source = Buffer.from('an earlier snapshot\'s file');
    await store.put('auto_20260101_000000/index.faiss', () => source, putOptions(source));
    const theirs = Buffer.from('written by another agent meanwhile');
    const target = 'auto_20260102_000000/index.faiss';
    await store.put(target, () => theirs, putOptions(theirs, { metadata: { 'memsync-agent': 'other' } }));
    const error = await failure(
      store.copy('auto_20260101_000000/index.faiss', target, { sizeBytes: source.length, partSizeBytes: undefined, sourceEtag: `"${md5Hex(source)}"`, metadata: { 'memsync-agent': 'me' }, signal: undefined }),
    );
    expect(error.kind, error.message).toBe('conflict');
    expect(await store.head(target)).toEqual({ size: theirs.length, etag: `"${md5Hex(theirs)}"`, metadata: { 'memsync-agent': 'other' } });
    expect(await store.listMultipartUploads('')).toEqual([]);
  });

  it('a composition onto a key that is taken fails with conflict and leaves the object there as it was', async () => {
    const store = await newStore();
    const source = Buffer.from('an earlier snapshot\'s file');
    await store.put('auto_20260101_000000/index.faiss', () => source, putOptions(source));
    const theirs = Buffer.from('written by another agent meanwhile');
    const target = 'auto_20260102_000000/index.faiss';
    await store.put(target, () => theirs, putOptions(theirs, { metadata: { 'memsync-agent': 'other' } }));
    const grown = Buffer.concat([source, Buffer.from(' and a new record')]);
    const error = await failure(
      store.compose(target, {
        sourceKey: 'auto_20260101_000000/index.faiss',
        sourceEtag: `"${md5Hex(source)}"`,
        parts: [{ kind: 'copy', sourceStart: 0, sourceEnd: source.length, md5Hex: md5Hex(source) }],
        body: bodyOver(grown),
        metadata: { 'memsync-agent': 'me' },
        signal: undefined,
      }),
    );
    expect(error.kind, error.message).toBe('conflict');
    expect(await store.head(target)).toEqual({ size: theirs.length, etag: `"${md5Hex(theirs)}"`, metadata: { 'memsync-agent': 'other' } });
    expect(await store.listMultipartUploads('')).toEqual([]);
  });
});
