// What the in-memory store does for compose beyond the shared contract: a server without ranged
// copies, refused copies, and the refusal of part lists no server could compose.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { MemoryRemoteStore, type MemoryStoreOptions } from '../../src/remote/memory-store.js';
import type { ComposeOptions, ComposePartSpec } from '../../src/remote/store.js';
import { pseudoRandomBytes } from '../helpers/delta-data.js';

const MIB = 1024 * 1024;

function md5Hex(bytes: Buffer): string {
  return createHash('md5').update(bytes).digest('hex');
}

async function storeWithSource(options: MemoryStoreOptions): Promise<{ store: MemoryRemoteStore; source: Buffer; sourceEtag: string }> {
  const store = new MemoryRemoteStore(options);
  const source = pseudoRandomBytes(7, 6 * MIB);
  await store.put('snap-1/index.faiss', () => source, { sizeBytes: source.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
  return { store, source, sourceEtag: (await store.head('snap-1/index.faiss'))?.etag ?? '' };
}

function composeOptions(source: Buffer, sourceEtag: string, parts: ComposePartSpec[]): ComposeOptions {
  const local = Buffer.concat([source, Buffer.from('appended')]);
  return {
    sourceKey: 'snap-1/index.faiss',
    sourceEtag,
    parts,
    body: { kind: 'file', read: async (target, position) => void local.copy(target, 0, position, position + target.length) },
    metadata: {},
    signal: undefined,
  };
}

function appendPlan(source: Buffer): ComposePartSpec[] {
  return [
    { kind: 'copy', sourceStart: 0, sourceEnd: source.length, md5Hex: md5Hex(source) },
    { kind: 'send', targetStart: source.length, length: 8, md5Hex: md5Hex(Buffer.from('appended')) },
  ];
}

async function failure(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AppError);
  return error as AppError;
}

describe('MemoryRemoteStore.compose', () => {
  it('composes by default (rangedCopy defaults to true)', async () => {
    const { store, source, sourceEtag } = await storeWithSource({});
    await store.compose('snap-2/index.faiss', composeOptions(source, sourceEtag, appendPlan(source)));
    expect(store.objects.get('snap-2/index.faiss')?.bytes.equals(Buffer.concat([source, Buffer.from('appended')]))).toBe(true);
    expect(store.composeLog).toEqual(['snap-1/index.faiss -> snap-2/index.faiss']);
  });

  it('rangedCopy: false behaves as a server without ranged copies: remote_rejected with details.code NotImplemented; nothing stored, no open upload', async () => {
    const { store, source, sourceEtag } = await storeWithSource({ rangedCopy: false });
    const error = await failure(store.compose('snap-2/index.faiss', composeOptions(source, sourceEtag, appendPlan(source))));
    expect(error.kind).toBe('remote_rejected');
    expect(error.details?.code).toBe('NotImplemented');
    expect(store.objects.has('snap-2/index.faiss')).toBe(false);
    expect(await store.listMultipartUploads('')).toEqual([]);
  });

  it('rangedCopy: false still composes from sent parts only', async () => {
    const { store, source, sourceEtag } = await storeWithSource({ rangedCopy: false });
    const local = Buffer.concat([source, Buffer.from('appended')]);
    await store.compose('snap-2/index.faiss', composeOptions(source, sourceEtag, [{ kind: 'send', targetStart: 0, length: local.length, md5Hex: md5Hex(local) }]));
    expect(store.objects.get('snap-2/index.faiss')?.bytes.equals(local)).toBe(true);
  });

  it('refuseCopies applies to copied parts too, with that code', async () => {
    const { store, source, sourceEtag } = await storeWithSource({ refuseCopies: 'AccessDenied' });
    const error = await failure(store.compose('snap-2/index.faiss', composeOptions(source, sourceEtag, appendPlan(source))));
    expect([error.kind, error.details?.code]).toEqual(['remote_rejected', 'AccessDenied']);
  });

  it.each<[string, ComposePartSpec[]]>([
    ['no parts', []],
    ['an empty copied range', [{ kind: 'copy', sourceStart: 5, sourceEnd: 5, md5Hex: md5Hex(Buffer.alloc(0)) }]],
    ['a negative sent length', [{ kind: 'send', targetStart: 0, length: -1, md5Hex: md5Hex(Buffer.alloc(0)) }]],
  ])('%s: refused as bad_input before anything is created', async (_label, parts) => {
    const { store, source, sourceEtag } = await storeWithSource({});
    const error = await failure(store.compose('snap-2/index.faiss', composeOptions(source, sourceEtag, parts)));
    expect(error.kind).toBe('bad_input');
    expect(store.objects.has('snap-2/index.faiss')).toBe(false);
    expect(await store.listMultipartUploads('')).toEqual([]);
  });
});
