// What a failed S3 request says about the store: a request refused for its own content (a key
// too long, a body too large, a malformed argument) fails the snapshot it belongs to, and the
// store stays available; only transport failures, timeouts, 5xx, throttling and the store
// refusing memsync itself (credentials, bucket) count against the store's health.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import PQueue from 'p-queue';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError, isAppError, type ErrorKind } from '../../src/errors.js';
import { RemoteHealth } from '../../src/remote-health.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { translateS3BucketError, translateS3Error } from '../../src/remote/s3-errors.js';
import type { BodySource, PutOptions } from '../../src/remote/store.js';
import { statSnapshot } from '../../src/snapshot/scan.js';
import { emptyHashCache, hashCacheSchema, type HashCacheDocument } from '../../src/state/hash-cache.js';
import { PersistedJson } from '../../src/state/persisted.js';
import { copyFallback } from '../../src/upload/copy-plan.js';
import { SnapshotUploader } from '../../src/upload/snapshot-uploader.js';
import { recordingLogger } from '../helpers/recording-logger.js';
import { tempDir } from '../helpers/tmp.js';

/** Shaped as the AWS SDK throws them: `name` is the server's code, the status in $metadata. */
function sdkError(code: string, status: number | undefined, extra: Record<string, unknown> = {}): Error {
  const error = new Error(code === 'UnknownError' ? '' : `${code} from the server`);
  return Object.assign(error, { name: code, ...(status === undefined ? {} : { $metadata: { httpStatusCode: status } }), ...extra });
}

function networkError(code: string): Error {
  return Object.assign(new Error(`connect ${code}`), { code });
}

describe('translateS3Error: which failures are about one request and which about the store', () => {
  it.each<[string, Error, ErrorKind]>([
    // Refused for the request's own content: that snapshot fails, the store is fine.
    ['a key over 1,024 bytes (Ceph RGW)', sdkError('InvalidObjectName', 400), 'object_refused'],
    ['a key over 1,024 bytes (AWS)', sdkError('KeyTooLongError', 400), 'object_refused'],
    ['an argument the server will not take', sdkError('InvalidArgument', 400), 'object_refused'],
    ['a body over the single-request limit', sdkError('EntityTooLarge', 400), 'object_refused'],
    ['a malformed request body', sdkError('MalformedXML', 400), 'object_refused'],
    ['a part too small', sdkError('EntityTooSmall', 400), 'object_refused'],
    ['an invalid part list', sdkError('InvalidPart', 400), 'object_refused'],
    ['a range past the end', sdkError('InvalidRange', 416), 'object_refused'],
    ['a URL too long for a proxy', sdkError('UnknownError', 414), 'object_refused'],
    ['a body too large for a proxy', sdkError('UnknownError', 413), 'object_refused'],
    ['a length the server wants', sdkError('MissingContentLength', 411), 'object_refused'],
    ['any other 400', sdkError('SomethingNew', 400), 'object_refused'],
    ['a 400 with an empty message', sdkError('UnknownError', 400), 'object_refused'],
    // The store refusing memsync itself: the operator must see the store as unusable.
    ['access denied', sdkError('AccessDenied', 403), 'remote_rejected'],
    ['an unknown access key', sdkError('InvalidAccessKeyId', 403), 'remote_rejected'],
    ['a wrong secret', sdkError('SignatureDoesNotMatch', 403), 'remote_rejected'],
    ['no credentials accepted', sdkError('UnknownError', 401), 'remote_rejected'],
    ['a wrong region', sdkError('AuthorizationHeaderMalformed', 400), 'remote_rejected'],
    ['an expired session token', sdkError('ExpiredToken', 400), 'remote_rejected'],
    ['an invalid session token', sdkError('InvalidToken', 400), 'remote_rejected'],
    ['an invalid bucket name', sdkError('InvalidBucketName', 400), 'remote_rejected'],
    ['a missing bucket', sdkError('NoSuchBucket', 404), 'remote_rejected'],
    ['copies not implemented', sdkError('NotImplemented', 501), 'remote_rejected'],
    // Transport, timeouts, 5xx, throttling: an outage, retried.
    ['a server error', sdkError('InternalError', 500), 'remote_unavailable'],
    ['throttling (503 SlowDown)', sdkError('SlowDown', 503), 'remote_unavailable'],
    ['throttling (429)', sdkError('TooManyRequests', 429), 'remote_unavailable'],
    ['a request the server timed out (400 RequestTimeout)', sdkError('RequestTimeout', 400), 'remote_unavailable'],
    ['a body cut short on the way (400 IncompleteBody)', sdkError('IncompleteBody', 400), 'remote_unavailable'],
    ['a client timeout', sdkError('TimeoutError', undefined), 'remote_unavailable'],
    ['a reset connection', networkError('ECONNRESET'), 'remote_unavailable'],
    ['a refused connection', networkError('ECONNREFUSED'), 'remote_unavailable'],
    // Answers about this object from a working store.
    ['a missing key', sdkError('NoSuchKey', 404), 'not_found'],
    ['a conditional write that lost', sdkError('PreconditionFailed', 412), 'conflict'],
    ['bytes that arrived changed', sdkError('BadDigest', 400), 'integrity'],
  ])('%s', (_, error, kind) => {
    const translated = translateS3Error(error, 'upload memories/auto_20250101_000000/a.json');
    expect(translated.kind).toBe(kind);
    expect(translated.message).toContain('upload memories/auto_20250101_000000/a.json');
  });

  it('does not retry a refused request: the same request would be refused again', () => {
    const translated = translateS3Error(sdkError('InvalidObjectName', 400), 'upload k');
    expect(translated.retryable).toBe(false);
    expect(translated.hint).toMatch(/1,024 bytes/);
  });

  it('names the refusal without the SDK\'s placeholder when the server sent no message (Ceph RGW)', () => {
    const rgw = Object.assign(new Error('UnknownError'), { name: 'InvalidObjectName', $metadata: { httpStatusCode: 400 } });
    expect(translateS3Error(rgw, 'upload k').message).toBe('upload k: InvalidObjectName (HTTP 400)');
  });
});

describe('translateS3BucketError: requests about the bucket itself carry no object', () => {
  it.each<[string, Error, ErrorKind]>([
    // HEAD answers have no body: a wrong region is a bare 400.
    ['a bare 400 to HeadBucket', sdkError('UnknownError', 400), 'remote_rejected'],
    ['an argument a listing will not take', sdkError('InvalidArgument', 400), 'remote_rejected'],
    ['access denied', sdkError('AccessDenied', 403), 'remote_rejected'],
    ['throttling', sdkError('SlowDown', 503), 'remote_unavailable'],
    ['a reset connection', networkError('ECONNRESET'), 'remote_unavailable'],
  ])('%s', (_, error, kind) => {
    expect(translateS3BucketError(error, 'list memories/').kind).toBe(kind);
  });
});

describe('a server-side copy refused for its content', () => {
  it('falls back to uploading that file, as any other refused copy', () => {
    expect(copyFallback(translateS3Error(sdkError('InvalidArgument', 400), 'copy a to b'))).toMatchObject({ scope: 'file' });
  });
});

describe('RemoteHealth: what counts against the store', () => {
  const refused = (): AppError => translateS3Error(sdkError('InvalidObjectName', 400), 'upload k');

  it.each<[string, boolean, () => AppError]>([
    ['a request refused for its content', true, refused],
    ['an integrity failure', true, () => new AppError('integrity', 'manifest of x is larger than 16 MiB')],
    ['an outage', false, () => translateS3Error(sdkError('SlowDown', 503), 'upload k')],
    ['the store refusing memsync', false, () => translateS3Error(sdkError('AccessDenied', 403), 'upload k')],
  ])('after %s, the store counts as available: %s', async (_, availableAfter, error) => {
    const health = new RemoteHealth(recordingLogger([]), Date.now);
    health.succeeded();
    await expect(health.track(Promise.reject(error()))).rejects.toThrow();
    expect(health.available).toBe(availableAfter);
  });

  it('a refused request is an answer: a store that was down is reachable again', async () => {
    const health = new RemoteHealth(recordingLogger([]), Date.now);
    health.failed('connection refused');
    await expect(health.track(Promise.reject(refused()))).rejects.toThrow();
    expect(health.available).toBe(true);
  });
});

describe('a snapshot with a key the store refuses', () => {
  const caches: PersistedJson<HashCacheDocument>[] = [];
  afterEach(async () => {
    for (const cache of caches.splice(0)) await cache.flush();
  });

  /** As Ceph RGW: keys over 1,024 bytes are refused with 400 InvalidObjectName. */
  class KeyLengthLimitedStore extends MemoryRemoteStore {
    override async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
      if (Buffer.byteLength(key) > 1024) throw translateS3Error(sdkError('InvalidObjectName', 400), `upload ${key}`);
      return super.put(key, body, options);
    }
  }

  it('fails that snapshot naming the file, keeps the store available, and the next snapshot uploads', async () => {
    const root = await tempDir('store-refusals');
    const backupDir = path.join(root, 'backups');
    const longName = 'd'.repeat(200);
    const deepPath = [longName, longName, longName, longName, longName, 'memory.json'];
    const bad = 'auto_20250101_000000';
    const good = 'auto_20250102_000000';
    await mkdir(path.join(backupDir, bad, ...deepPath.slice(0, -1)), { recursive: true });
    await writeFile(path.join(backupDir, bad, ...deepPath), 'deep');
    await writeFile(path.join(backupDir, bad, 'short.json'), 'short');
    await mkdir(path.join(backupDir, good));
    await writeFile(path.join(backupDir, good, 'short.json'), 'short');
    const hashCache = new PersistedJson<HashCacheDocument>(path.join(root, 'hash-cache.json'), hashCacheSchema, emptyHashCache, recordingLogger([]));
    caches.push(hashCache);
    const uploader = new SnapshotUploader({
      store: new KeyLengthLimitedStore(),
      hashCache,
      fileQueue: new PQueue({ concurrency: 2 }),
      agentId: 'agent-under-test',
      backupDir,
      multipartThresholdBytes: 5 * 1024 * 1024,
      retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
      log: recordingLogger([]),
      now: () => Date.now(),
      serverSideCopy: undefined,
    });
    const health = new RemoteHealth(recordingLogger([]), Date.now);
    const signal = new AbortController().signal;

    const failure = await health.track(uploader.upload(await statSnapshot(backupDir, bad), signal, () => undefined)).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(isAppError(failure, 'object_refused'), String(failure)).toBe(true);
    expect((failure as AppError).message).toContain(deepPath.join('/'));
    expect(health.available).toBe(true);

    const next = await health.track(uploader.upload(await statSnapshot(backupDir, good), signal, () => undefined));
    expect(next.outcome).toBe('uploaded');
    expect(createHash('sha256').update('short').digest('hex')).toBe(next.manifest.files[0]?.sha256);
    expect(health.available).toBe(true);
  });
});
