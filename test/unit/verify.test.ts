import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AppError, isAppError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { buildRemoteIndex } from '../../src/remote/remote-index.js';
import type { RemoteStore } from '../../src/remote/store.js';
import { PartHasher } from '../../src/snapshot/digest.js';
import { buildManifest, fileKey, manifestKey, serializeManifest } from '../../src/snapshot/manifest.js';
import { checkObject, ObjectDigester, weakestVerification, type ExpectedObject, type ObjectCheck } from '../../src/snapshot/object-check.js';
import { completeSnapshotsNewestFirst, judgeSnapshot, summarize, type FileResult } from '../../src/verify/report.js';
import { RemoteVerifier } from '../../src/verify/verifier.js';

const MIB = 1024 * 1024;
const NAME = 'auto_20261125_020000';
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const md5 = (bytes: Buffer): string => createHash('md5').update(bytes).digest('hex');
const multipartEtag = (bytes: Buffer, partSize: number): string => {
  const hasher = new PartHasher(partSize);
  hasher.update(bytes);
  return hasher.etag();
};

/** What ObjectDigester computes for `bytes` when checking against `expected`, fed in uneven chunks. */
function digestOf(bytes: Buffer, expected: ExpectedObject) {
  const digester = new ObjectDigester(expected);
  for (let offset = 0; offset < bytes.length; offset += 777_777) digester.update(bytes.subarray(offset, offset + 777_777));
  return digester.digest();
}

describe('checkObject', () => {
  const body = randomBytes(64 * 1024);
  const other = Buffer.from(body);
  other[100] = (other[100] ?? 0) ^ 0xff;
  const big = randomBytes(12 * MIB);
  const bigEtag8 = multipartEtag(big, 8 * MIB);
  const bigEtagOdd = multipartEtag(big, 6 * MIB); // ceil(size / parts), rounded up to MiB

  it.each<[string, ExpectedObject, Buffer, ObjectCheck]>([
    ['manifest SHA-256 matches', { size: body.length, sha256: sha256(body), etag: 'ignored' }, body, { ok: true, verification: 'sha256' }],
    ['manifest SHA-256 differs, same length', { size: body.length, sha256: sha256(body), etag: md5(other) }, other, { ok: false, reason: `SHA-256 ${sha256(other)} does not match the manifest's ${sha256(body)}` }],
    ['length differs', { size: body.length, sha256: sha256(body), etag: md5(body) }, body.subarray(1), { ok: false, reason: `received ${body.length - 1} bytes, expected ${body.length}` }],
    ['no manifest, plain ETag matches', { size: body.length, sha256: undefined, etag: md5(body) }, body, { ok: true, verification: 'etag' }],
    ['no manifest, plain ETag differs', { size: body.length, sha256: undefined, etag: md5(body) }, other, { ok: false, reason: `MD5 ${md5(other)} does not match the ETag ${md5(body)}` }],
    ['no manifest, multipart ETag of a common part size', { size: big.length, sha256: undefined, etag: bigEtag8 }, big, { ok: true, verification: 'etag' }],
    ['no manifest, multipart ETag of size / parts (rounded to MiB)', { size: big.length, sha256: undefined, etag: bigEtagOdd }, big, { ok: true, verification: 'etag' }],
    ['no manifest, multipart ETag of an unknown part size', { size: big.length, sha256: undefined, etag: `${md5(body)}-2` }, big, { ok: true, verification: 'size-only' }],
    ['no manifest, ETag not an MD5 (SSE-KMS)', { size: body.length, sha256: undefined, etag: 'kms-opaque-etag' }, body, { ok: true, verification: 'size-only' }],
    ['no manifest, length differs', { size: body.length + 1, sha256: undefined, etag: md5(body) }, body, { ok: false, reason: `received ${body.length} bytes, expected ${body.length + 1}` }],
  ])('%s', (_label, expected, received, check) => {
    expect(checkObject(expected, digestOf(received, expected))).toEqual(check);
  });

  it('is a pure function of the expectation and the digest', () => {
    const digest = { size: 3, sha256: sha256(Buffer.from('abc')), md5: md5(Buffer.from('abc')), partEtags: [] };
    expect(checkObject({ size: 3, sha256: digest.sha256, etag: '' }, digest)).toEqual({ ok: true, verification: 'sha256' });
    expect(checkObject({ size: 3, sha256: undefined, etag: digest.md5 }, digest)).toEqual({ ok: true, verification: 'etag' });
  });
});

describe('verdicts', () => {
  const ok = (path: string, verification: 'sha256' | 'etag' | 'size-only' = 'sha256'): FileResult => ({ path, ok: true, verification });
  const bad = (path: string): FileResult => ({ path, ok: false, reason: 'SHA-256 x does not match' });

  it.each<[string, boolean, FileResult[], string, string | undefined]>([
    ['all files match the manifest', true, [ok('a'), ok('b')], 'ok', 'sha256'],
    ['no files at all', true, [], 'ok', 'sha256'],
    ['one file fails', true, [ok('a'), bad('b')], 'failed', undefined],
    ['no manifest, ETags match', false, [ok('a', 'etag'), ok('b', 'etag')], 'unverified', 'etag'],
    ['no manifest, one only by size', false, [ok('a', 'etag'), ok('b', 'size-only')], 'unverified', 'size-only'],
    ['no manifest, a mismatch', false, [ok('a', 'etag'), bad('b')], 'failed', undefined],
  ])('%s -> %s', (_label, manifest, results, status, verification) => {
    const verdict = judgeSnapshot({ name: NAME, manifest, bytes: 10, durationMs: 1 }, results);
    expect(verdict.status).toBe(status);
    expect(verdict.verification).toBe(verification);
    expect(verdict.failures).toEqual(results.filter((r) => !r.ok).map((r) => ({ path: r.path, reason: 'SHA-256 x does not match' })));
  });

  it('weakest verification', () => {
    expect(weakestVerification(['sha256', 'etag', 'sha256'])).toBe('etag');
    expect(weakestVerification(['etag', 'size-only'])).toBe('size-only');
    expect(weakestVerification([])).toBe('sha256');
  });

  it('targets complete snapshots, newest first by time, not by name', () => {
    const object = (key: string) => ({ key, size: 1, etag: '"e"', lastModifiedMs: 0 });
    const index = buildRemoteIndex(
      [
        object('pre_update_20261124_000000/a'),
        object('pre_update_20261124_000000/.memsync-manifest.json'),
        object('auto_20261125_000000/a'),
        object('auto_20261125_000000/.memsync-manifest.json'),
        object('legacy_20261126_000000/a'), // no manifest: not a target of "verify everything"
      ],
      0,
    );
    expect(completeSnapshotsNewestFirst(index)).toEqual(['auto_20261125_000000', 'pre_update_20261124_000000']);
  });

  it('summarizes', () => {
    const results = [judgeSnapshot({ name: 'a_1', manifest: true, bytes: 0, durationMs: 0 }, [ok('x')]), judgeSnapshot({ name: 'b_1', manifest: false, bytes: 0, durationMs: 0 }, [ok('x', 'etag')]), judgeSnapshot({ name: 'c_1', manifest: true, bytes: 0, durationMs: 0 }, [bad('x')])];
    expect(summarize(results)).toEqual({ snapshots: 3, ok: 1, unverified: 1, failed: 1 });
  });
});

describe('RemoteVerifier', () => {
  const files = { 'metadata.json': Buffer.from('{"memories": 3}'), 'config.json': Buffer.from('{"dim": 384}'), 'index.faiss': randomBytes(200_000) };

  async function put(store: MemoryRemoteStore, key: string, bytes: Buffer, partSizeBytes?: number): Promise<void> {
    await store.put(key, () => bytes, { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
  }

  async function uploaded(name = NAME, manifestFiles = files): Promise<MemoryRemoteStore> {
    const store = new MemoryRemoteStore();
    for (const [path, bytes] of Object.entries(files)) await put(store, fileKey(name, path), bytes);
    const manifest = buildManifest(name, 'directory', Object.entries(manifestFiles).map(([path, bytes]) => ({ path, size: bytes.length, sha256: sha256(bytes) })));
    await put(store, manifestKey(name), serializeManifest(manifest));
    return store;
  }

  const verifier = (store: RemoteStore) => new RemoteVerifier({ store, retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 1 }, concurrency: 2, log: silentLogger, now: Date.now });

  it('finds an intact snapshot ok, by SHA-256, reporting progress up to its size', async () => {
    const store = await uploaded();
    const progress: number[] = [];
    const result = await verifier(store).verifySnapshot(NAME, { onProgress: (p) => progress.push(p.checkedBytes) });
    expect(result).toMatchObject({ snapshot: NAME, status: 'ok', manifest: true, files: 3, verification: 'sha256', failures: [] });
    expect(result.bytes).toBe(Object.values(files).reduce((n, b) => n + b.length, 0));
    expect(progress.at(-1)).toBe(result.bytes);
  });

  it('names the file whose bytes changed (same length)', async () => {
    const store = await uploaded();
    const corrupt = Buffer.from(files['metadata.json']);
    corrupt[2] = 0x21;
    await put(store, fileKey(NAME, 'metadata.json'), corrupt);
    const result = await verifier(store).verifySnapshot(NAME);
    expect(result.status).toBe('failed');
    expect(result.failures).toEqual([{ path: 'metadata.json', reason: `SHA-256 ${sha256(corrupt)} does not match the manifest's ${sha256(files['metadata.json'])}` }]);
  });

  it('names the file whose length changed without reading anything', async () => {
    const store = await uploaded();
    await put(store, fileKey(NAME, 'config.json'), Buffer.from('{}'));
    const result = await verifier(store).verifySnapshot(NAME);
    expect(result).toMatchObject({ status: 'failed', failures: [{ path: 'config.json', reason: expect.stringMatching(/has 2 bytes, its manifest says/) }] });
  });

  it('names a file the manifest lists but the bucket lacks', async () => {
    const store = await uploaded();
    await store.delete(fileKey(NAME, 'index.faiss'));
    const result = await verifier(store).verifySnapshot(NAME);
    expect(result).toMatchObject({ status: 'failed', failures: [{ path: 'index.faiss', reason: expect.stringMatching(/missing index.faiss/) }] });
  });

  it('fails a snapshot with an invalid manifest', async () => {
    const store = await uploaded();
    await put(store, manifestKey(NAME), Buffer.from('not json'));
    const result = await verifier(store).verifySnapshot(NAME);
    expect(result).toMatchObject({ status: 'failed', failures: [{ path: undefined, reason: expect.stringMatching(/manifest of .* is not JSON/) }] });
  });

  it('reports a snapshot without a manifest as unverified, checked by ETag (plain and multipart)', async () => {
    const store = new MemoryRemoteStore();
    const big = randomBytes(11 * MIB);
    await put(store, 'legacy_20250101_000000/metadata.json', files['metadata.json']);
    await put(store, 'legacy_20250101_000000/index.faiss', big, 8 * MIB);
    const result = await verifier(store).verifySnapshot('legacy_20250101_000000');
    expect(result).toMatchObject({ status: 'unverified', manifest: false, files: 2, verification: 'etag', failures: [] });
  });

  it('fails an object without a manifest whose MD5 does not match its ETag', async () => {
    const store = new MemoryRemoteStore({ transformStoredBytes: (_key, bytes) => Buffer.concat([bytes.subarray(0, -1), Buffer.from('!')]) });
    await put(store, 'legacy_20250101_000000/metadata.json', files['metadata.json']);
    // The stored ETag is computed from the stored bytes; make them disagree as a bit flip at rest would.
    const stored = store.objects.get('legacy_20250101_000000/metadata.json');
    if (stored === undefined) throw new Error('not stored');
    stored.etag = md5(files['metadata.json']);
    const result = await verifier(store).verifySnapshot('legacy_20250101_000000');
    expect(result).toMatchObject({ status: 'failed', failures: [{ path: 'metadata.json', reason: expect.stringMatching(/^MD5 [0-9a-f]{32} does not match the ETag/) }] });
  });

  it('throws not_found for an unknown snapshot', async () => {
    await expect(verifier(new MemoryRemoteStore()).verifySnapshot('nothing_20250101_000000')).rejects.toSatisfy((error: unknown) => isAppError(error, 'not_found'));
  });

  it('throws when the store cannot be read (nothing could be judged), after retrying', async () => {
    const store = await uploaded();
    let gets = 0;
    const failing: RemoteStore = Object.assign(Object.create(store) as MemoryRemoteStore, {
      get: async (key: string) => {
        if (key.endsWith('index.faiss')) {
          gets += 1;
          throw new AppError('remote_unavailable', `download ${key}: ECONNRESET`);
        }
        return store.get(key);
      },
    });
    await expect(verifier(failing).verifySnapshot(NAME)).rejects.toSatisfy((error: unknown) => isAppError(error, 'remote_unavailable'));
    expect(gets).toBe(2);
  });
});
