// What an S3 profile changes in the requests memsync sends, seen by a recording server: the store
// is built the way memsync builds it (configuration, then createRemoteStore), so the profile's
// path from CLOUD_SYNC_S3_PROFILE to the wire is what is tested.
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { isAppError } from '../../src/errors.js';
import { probeConditionalWrites } from '../../src/remote/conditional-writes.js';
import { createRemoteStore } from '../../src/remote/store-factory.js';
import type { FileBody, PutOptions, RemoteStore } from '../../src/remote/store.js';
import { startRecordingS3Server, type RecordedRequest, type RecordingS3Server, type RecordingServerOptions } from '../helpers/recording-s3-server.js';

const PART = 5 * 1024 * 1024;
const BUCKET = 'memsync-test';

let server: RecordingS3Server | undefined;
let store: RemoteStore | undefined;

afterEach(async () => {
  store?.close();
  store = undefined;
  await server?.close();
  server = undefined;
});

async function storeWithProfile(profile: string, serverOptions: RecordingServerOptions = {}): Promise<{ store: RemoteStore; server: RecordingS3Server }> {
  server = await startRecordingS3Server(serverOptions);
  const config = loadConfig({
    CLOUD_SYNC_ENABLED: 'true',
    CLOUD_SYNC_BUCKET: BUCKET,
    CLOUD_SYNC_ENDPOINT: server.endpoint,
    CLOUD_SYNC_S3_PROFILE: profile,
    CLOUD_SYNC_ACCESS_KEY: 'test-access-key',
    CLOUD_SYNC_SECRET_KEY: 'test-secret-key',
    CLOUD_SYNC_REGION: 'auto',
  });
  store = await createRemoteStore(config);
  return { store, server };
}

function fileBody(bytes: Buffer): () => FileBody {
  return () => ({ kind: 'file', read: async (target, position) => void bytes.copy(target, 0, position, position + target.length) });
}

function putOptions(sizeBytes: number, overrides: Partial<PutOptions> = {}): PutOptions {
  return { sizeBytes, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined, ...overrides };
}

/** A multipart upload of `parts` parts, the last one shorter than the others. */
async function uploadInParts(target: RemoteStore, key: string, parts: number, ifNoneMatch = false): Promise<void> {
  const bytes = Buffer.alloc((parts - 1) * PART + 1234, 7);
  await target.put(key, fileBody(bytes), putOptions(bytes.length, { partSizeBytes: PART, ifNoneMatch }));
}

const isPart = (r: RecordedRequest): boolean => r.method === 'PUT' && r.query.partNumber !== undefined;
const isComplete = (r: RecordedRequest): boolean => r.method === 'POST' && r.query.uploadId !== undefined;

/** Headers of streamed-checksum signing and flexible checksums, which B2 and others refuse. */
function checksumHeaders(request: RecordedRequest): string[] {
  return Object.keys(request.headers).filter((name) => name.startsWith('x-amz-checksum-') || name === 'x-amz-sdk-checksum-algorithm' || name === 'x-amz-trailer' || name === 'x-amz-decoded-content-length');
}

describe('S3 profiles on the wire', () => {
  it('r2: two parts of a file in flight at most, equal non-final part sizes', async () => {
    const { store: r2, server: recorder } = await storeWithProfile('r2', { holdPartsUntilInFlight: 2 });
    await uploadInParts(r2, 'a/index.faiss', 6);
    const parts = recorder.requests.filter(isPart);
    expect(parts).toHaveLength(6);
    expect(recorder.maxPartsInFlight()).toBe(2);
    const sizes = parts.sort((a, b) => Number(a.query.partNumber) - Number(b.query.partNumber)).map((p) => p.bodyBytes);
    expect(new Set(sizes.slice(0, -1))).toEqual(new Set([PART]));
    expect(sizes.at(-1)).toBe(1234);
  });

  it('generic (the default for an unknown host): four parts in flight, against the same server', async () => {
    const { store: generic, server: recorder } = await storeWithProfile('generic', { holdPartsUntilInFlight: 4 });
    await uploadInParts(generic, 'a/index.faiss', 8);
    expect(recorder.maxPartsInFlight()).toBe(4);
  });

  it('b2: bodies unsigned, no checksum or chunked-signing headers, path style, no DeleteObjects', async () => {
    const { store: b2, server: recorder } = await storeWithProfile('b2');
    const manifest = Buffer.from('{"files":[]}');
    await b2.put('a/manifest.json', () => manifest, putOptions(manifest.length, { md5Hex: 'c4ca4238a0b923820dcc509a6f75849b', ifNoneMatch: true }));
    await uploadInParts(b2, 'a/index.faiss', 2);
    await b2.delete('a/manifest.json');
    const writes = recorder.requests.filter((r) => r.method === 'PUT');
    expect(writes).toHaveLength(3);
    for (const write of writes) {
      expect(write.headers['x-amz-content-sha256'], write.path).toBe('UNSIGNED-PAYLOAD');
      expect(write.headers['content-encoding'] ?? '', write.path).not.toMatch(/aws-chunked/);
      expect(checksumHeaders(write), write.path).toEqual([]);
    }
    for (const request of recorder.requests) expect(request.path.startsWith(`/${BUCKET}/`) || request.path === `/${BUCKET}`, request.path).toBe(true);
    expect(recorder.requests.filter((r) => 'delete' in r.query)).toEqual([]);
    expect(recorder.requests.filter((r) => r.method === 'DELETE').map((r) => r.path)).toEqual([`/${BUCKET}/memories/a/manifest.json`]);
  });

  it('gcs: a create-only PUT says x-goog-if-generation-match: 0 instead of If-None-Match, and a taken name is a conflict', async () => {
    const { store: gcs, server: recorder } = await storeWithProfile('gcs', { createOnly: 'goog-generation' });
    const manifest = Buffer.from('{"files":[]}');
    await gcs.put('a/manifest.json', () => manifest, putOptions(manifest.length, { ifNoneMatch: true }));
    const again = await gcs.put('a/manifest.json', () => manifest, putOptions(manifest.length, { ifNoneMatch: true })).then(
      () => 'written',
      (error: unknown) => (isAppError(error, 'conflict') ? 'conflict' : error),
    );
    expect(again).toBe('conflict');
    const puts = recorder.requests.filter((r) => r.method === 'PUT');
    expect(puts).toHaveLength(2);
    for (const put of puts) {
      expect(put.headers['x-goog-if-generation-match']).toBe('0');
      expect(put.headers['if-none-match']).toBeUndefined();
      // The translated header is signed, so the service checks it was not added on the way.
      expect(put.headers.authorization).toMatch(/x-goog-if-generation-match/);
    }
  });

  it('gcs: a plain PUT carries no precondition, and a multipart completion none at all', async () => {
    const { store: gcs, server: recorder } = await storeWithProfile('gcs', { createOnly: 'goog-generation' });
    const bytes = Buffer.from('plain');
    await gcs.put('a/plain.txt', () => bytes, putOptions(bytes.length));
    await uploadInParts(gcs, 'a/index.faiss', 2, true);
    const plain = recorder.requests.find((r) => r.method === 'PUT' && r.query.partNumber === undefined);
    expect(plain?.headers['x-goog-if-generation-match']).toBeUndefined();
    const completion = recorder.requests.find(isComplete);
    expect(completion?.headers['if-none-match']).toBeUndefined();
    expect(completion?.headers['x-goog-if-generation-match']).toBeUndefined();
  });

  it('the start-up probe finds create-only writes honoured through the gcs profile, ignored through a profile that sends If-None-Match', async () => {
    const { store: gcs } = await storeWithProfile('gcs', { createOnly: 'goog-generation' });
    expect(await probeConditionalWrites(gcs)).toBe('honoured');
    store?.close();
    await server?.close();
    const { store: generic } = await storeWithProfile('generic', { createOnly: 'goog-generation' });
    expect(await probeConditionalWrites(generic)).toBe('ignored');
  });

  it('aws and others keep If-None-Match: * on create-only writes and completions', async () => {
    const { store: generic, server: recorder } = await storeWithProfile('generic');
    const bytes = Buffer.from('x');
    await generic.put('a/one', () => bytes, putOptions(bytes.length, { ifNoneMatch: true }));
    await uploadInParts(generic, 'a/index.faiss', 2, true);
    const single = recorder.requests.find((r) => r.method === 'PUT' && r.query.partNumber === undefined);
    expect(single?.headers['if-none-match']).toBe('*');
    expect(single?.headers['x-goog-if-generation-match']).toBeUndefined();
    expect(recorder.requests.find(isComplete)?.headers['if-none-match']).toBe('*');
  });
});
