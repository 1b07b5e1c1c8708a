import { describe, expect, it } from 'vitest';
import { rangeFailureError } from '../../src/remote/range-download-thread-client.js';
import { translateS3Error } from '../../src/remote/s3-errors.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import { planRanges } from '../../src/remote/byte-ranges.js';
import { rangeAnswerProblem, s3ErrorCode } from '../../src/remote/http-response-head.js';

const MIB = 1024 * 1024;

describe('planRanges', () => {
  it.each([
    [0, 32, []],
    [1, 32, [[0, 1]]],
    [32, 32, [[0, 32]]],
    [33, 32, [[0, 32], [32, 33]]],
    [100, 32, [[0, 32], [32, 64], [64, 96], [96, 100]]],
  ])('cuts %i bytes into ranges of at most %i', (size, rangeBytes, expected) => {
    expect(planRanges(size, rangeBytes).map((r) => [r.start, r.end])).toEqual(expected);
  });

  it('covers a large object exactly, without gap or overlap', () => {
    const size = 1024 * MIB + 200_000_017;
    const ranges = planRanges(size, 32 * MIB);
    expect(ranges[0]?.start).toBe(0);
    expect(ranges.at(-1)?.end).toBe(size);
    for (let i = 1; i < ranges.length; i += 1) expect(ranges[i]?.start).toBe(ranges[i - 1]?.end);
  });

  it.each([
    [-1, 32],
    [10, 0],
    [1.5, 32],
  ])('refuses %s bytes in ranges of %s', (size, rangeBytes) => {
    expect(() => planRanges(size, rangeBytes)).toThrow(RangeError);
  });

  it('cuts only the parts asked for, each on its own', () => {
    const within = [
      { start: 5, end: 70 },
      { start: 70, end: 71 },
      { start: 200, end: 200 },
      { start: 300, end: 333 },
    ];
    expect(planRanges(1000, 32, within).map((r) => [r.start, r.end])).toEqual([[5, 37], [37, 69], [69, 70], [70, 71], [300, 332], [332, 333]]);
  });

  it.each([
    ['overlapping', [{ start: 0, end: 50 }, { start: 40, end: 60 }]],
    ['out of order', [{ start: 50, end: 60 }, { start: 0, end: 10 }]],
    ['past the end', [{ start: 90, end: 101 }]],
    ['reversed', [{ start: 20, end: 10 }]],
    ['negative', [{ start: -1, end: 10 }]],
  ])('refuses parts %s', (_name, within) => {
    expect(() => planRanges(100, 32, within)).toThrow(RangeError);
  });
});

describe('rangeAnswerProblem', () => {
  it('accepts 206 with the Content-Range and Content-Length asked for', () => {
    expect(rangeAnswerProblem(206, 'bytes 100-199/1000', '100', 100, 200)).toBeUndefined();
    expect(rangeAnswerProblem(206, 'bytes 0-9/*', undefined, 0, 10)).toBeUndefined();
  });

  it.each<[string, number, string | undefined, string | undefined]>([
    ['a whole object where a range was asked for', 200, undefined, '1000'],
    ['another range', 206, 'bytes 0-99/1000', '100'],
    ['a range cut short by the server', 206, 'bytes 100-149/1000', '50'],
    ['no Content-Range', 206, undefined, '100'],
    ['a length that is not the range', 206, 'bytes 100-199/1000', '99'],
  ])('refuses %s', (_label, status, contentRange, contentLength) => {
    expect(rangeAnswerProblem(status, contentRange, contentLength, 100, 200)).toEqual(expect.any(String));
  });
});

describe('s3ErrorCode', () => {
  it('finds the code of an S3 error answer, or nothing', () => {
    expect(s3ErrorCode('<?xml version="1.0"?><Error><Code>SlowDown</Code><Message></Message></Error>')).toBe('SlowDown');
    expect(s3ErrorCode('Service Unavailable')).toBeUndefined();
  });
});

describe('rangeFailureError', () => {
  const what = 'download k bytes 0-9';

  it('retries a connection cut mid-body and a server error, not a wrong answer, a refusal or a full disk', () => {
    const cases = [
      [rangeFailureError({ reason: 'transit', message: 'socket hang up' }, what, translateS3Error), 'remote_unavailable', true],
      [rangeFailureError({ reason: 'status', status: 503, code: 'SlowDown' }, what, translateS3Error), 'remote_unavailable', true],
      [rangeFailureError({ reason: 'status', status: 500, code: undefined }, what, translateS3Error), 'remote_unavailable', true],
      [rangeFailureError({ reason: 'status', status: 404, code: 'NoSuchKey' }, what, translateS3Error), 'not_found', false],
      [rangeFailureError({ reason: 'status', status: 403, code: 'AccessDenied' }, what, translateS3Error), 'remote_rejected', false],
      [rangeFailureError({ reason: 'answer', message: 'answered 200' }, what, translateS3Error), 'integrity', true],
      [rangeFailureError({ reason: 'local', code: 'ENOSPC', message: 'no space' }, what, translateS3Error), 'local_io', false],
    ] as const;
    for (const [error, kind, retryable] of cases) {
      expect({ kind: error.kind, retryable: error.retryable, named: error.message.includes(what) }).toEqual({ kind, retryable, named: true });
    }
  });

  it('says a full disk is full', () => {
    expect(rangeFailureError({ reason: 'local', code: 'ENOSPC', message: 'no space' }, what, translateS3Error).hint).toContain('full');
  });
});

describe('the S3 store\'s download thread', () => {
  it('is declined while downloads are limited in bandwidth: the limit lives in the client on the main thread', () => {
    const store = new S3RemoteStore({
      bucket: 'b',
      prefix: '',
      endpoint: 'http://127.0.0.1:9',
      region: 'us-east-1',
      credentials: { accessKeyId: 'a', secretAccessKey: 's' },
      forcePathStyle: true,
      partsInFlight: 1,
      bandwidthLimit: { upBytesPerSecond: undefined, downBytesPerSecond: 1024 * 1024 },
    });
    try {
      const options = { fd: -1, sizeBytes: 10, rangeBytes: 10, rangesInFlight: 1, signal: undefined, onWritten: () => undefined, rangeRetry: { policy: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 } } };
      expect(store.downloadRangesToFile('k', options)).toBeUndefined();
    } finally {
      store.close();
    }
  });
});
