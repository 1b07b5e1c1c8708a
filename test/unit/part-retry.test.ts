// Which failures of a multipart upload's requests send the part again in place, which start the
// upload over and which abort it; and how a multipart upload of a file retries one part: read
// again from the file, same Content-MD5, no more buffers than parts in flight, cancellable.
import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { AppError, isAppError } from '../../src/errors.js';
import { partFailureAction, retryInUpload, type PartFailureAction } from '../../src/remote/part-retry.js';
import { withServerCode } from '../../src/remote/s3-copy.js';
import { translateS3Error } from '../../src/remote/s3-errors.js';
import { uploadFileInParts } from '../../src/remote/s3-file-parts.js';
import type { FileBody, PartRetryOptions, PutOptions } from '../../src/remote/store.js';
import { partRetryPolicy } from '../../src/retry.js';

function sdkError(name: string, status: number | undefined, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(name), { name, ...(status === undefined ? {} : { $metadata: { httpStatusCode: status } }), ...extra });
}

const resetError = (): Error => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

/** A request that always fails with `makeError()`, counting its tries. */
function alwaysFailing(makeError: () => Error): { send: () => Promise<never>; calls: () => number } {
  let calls = 0;
  return {
    send: () => {
      calls += 1;
      return Promise.reject(makeError());
    },
    calls: () => calls,
  };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('partFailureAction', () => {
  it.each<[string, unknown, PartFailureAction]>([
    ['a connection reset', resetError(), 'retry-part'],
    ['a refused connection', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'retry-part'],
    ['an idle timeout', sdkError('TimeoutError', undefined), 'retry-part'],
    ['RequestTimeout (400)', sdkError('RequestTimeout', 400), 'retry-part'],
    ['InternalError (500)', sdkError('InternalError', 500), 'retry-part'],
    ['SlowDown (503)', sdkError('SlowDown', 503), 'retry-part'],
    ['NoSuchUpload (404)', sdkError('NoSuchUpload', 404), 'restart-upload'],
    ['BadDigest (400): the bytes are not the planned ones', sdkError('BadDigest', 400), 'abort-upload'],
    ['AccessDenied (403)', sdkError('AccessDenied', 403), 'abort-upload'],
    ['EntityTooSmall (400)', sdkError('EntityTooSmall', 400), 'abort-upload'],
    ['PreconditionFailed (412) on completion', sdkError('PreconditionFailed', 412), 'abort-upload'],
    ['a cancellation', sdkError('AbortError', undefined), 'abort-upload'],
  ])('%s -> %s', (_label, error, expected) => {
    expect(partFailureAction(translateS3Error(error, 'upload k: part 1 of 2'))).toBe(expected);
  });

  it('reads the server code a composition records in its details', () => {
    expect(partFailureAction(withServerCode(sdkError('NoSuchUpload', 404), 'compose k: part 3'))).toBe('restart-upload');
    expect(partFailureAction(withServerCode(sdkError('SlowDown', 503), 'compose k: part 3'))).toBe('retry-part');
  });

  it('aborts on failures of the local file, whatever they say', () => {
    expect(partFailureAction(new AppError('local_io', 'read failed'))).toBe('abort-upload');
    expect(partFailureAction(new AppError('snapshot_gone', 'file ended early'))).toBe('abort-upload');
  });
});

const TINY: PartRetryOptions = { policy: { attempts: 4, baseDelayMs: 1, maxDelayMs: 2 } };

describe('retryInUpload', () => {
  it('sends again after transient failures, telling each retry, and returns the answer', async () => {
    const attempts: number[] = [];
    const told: [string, number][] = [];
    const answer = await retryInUpload(
      async (attempt) => {
        attempts.push(attempt);
        if (attempt < 2) throw resetError();
        return 'etag';
      },
      'upload k: part 2 of 3',
      { ...TINY, onRetry: (retry) => told.push([retry.what, retry.attempt]) },
      undefined,
    );
    expect(answer).toBe('etag');
    expect(attempts).toEqual([0, 1, 2]);
    expect(told).toEqual([
      ['upload k: part 2 of 3', 1],
      ['upload k: part 2 of 3', 2],
    ]);
  });

  it('gives up after the budget with a failure no outer layer retries', async () => {
    const request = alwaysFailing(resetError);
    const error = await rejection(retryInUpload(request.send, 'upload k: part 1 of 3', TINY, undefined));
    expect(request.calls()).toBe(4);
    expect(isAppError(error, 'remote_unavailable')).toBe(true);
    expect((error as AppError).retryable).toBe(false);
    expect((error as AppError).message).toContain('part 1 of 3: failed 4 times');
  });

  it('does not send again when the upload is gone, but leaves starting over to the caller', async () => {
    const request = alwaysFailing(() => sdkError('NoSuchUpload', 404));
    const error = await rejection(retryInUpload(request.send, 'upload k: part 1 of 3', TINY, undefined));
    expect(request.calls()).toBe(1);
    expect(isAppError(error, 'remote_unavailable')).toBe(true);
    expect((error as AppError).retryable).toBe(true);
  });

  it('does not send again a part the server refused for its bytes', async () => {
    const request = alwaysFailing(() => sdkError('BadDigest', 400));
    const error = await rejection(retryInUpload(request.send, 'upload k: part 1 of 3', TINY, undefined));
    expect(request.calls()).toBe(1);
    expect(isAppError(error, 'integrity')).toBe(true);
  });

  it('stops waiting when the upload stops', async () => {
    const stop = new AbortController();
    const request = alwaysFailing(resetError);
    const slow: PartRetryOptions = { policy: { attempts: 5, baseDelayMs: 60_000, maxDelayMs: 60_000 }, onRetry: () => stop.abort() };
    const error = await rejection(retryInUpload(request.send, 'upload k: part 1 of 3', slow, stop.signal));
    expect(request.calls()).toBe(1);
    expect(isAppError(error, 'cancelled')).toBe(true);
  });
});

describe('partRetryPolicy', () => {
  it('gives a part more tries than a request, with the same backoff', () => {
    expect(partRetryPolicy({ attempts: 5, baseDelayMs: 500, maxDelayMs: 30_000 })).toEqual({ attempts: 8, baseDelayMs: 500, maxDelayMs: 30_000 });
  });
});

/** 8 KiB parts: each slot is then a buffer of its own, not a slice of Node's shared pool. */
const PART_BYTES = 8 * 1024;

interface SentPart {
  partNumber: number;
  md5: string | undefined;
  body: Buffer;
}

/**
 * Just enough of an S3 client for one multipart upload: `failPart` decides, per part and try,
 * whether that UploadPart fails as a reset connection; `onPartFailed` is told when it does.
 */
function fakeClient(failPart: (partNumber: number, tryIndex: number) => boolean, onPartFailed: () => void = () => undefined) {
  const sent: SentPart[] = [];
  const tries = new Map<number, number>();
  const commands: string[] = [];
  const client = {
    send: async (command: unknown): Promise<unknown> => {
      commands.push((command as object).constructor.name);
      if (command instanceof CreateMultipartUploadCommand) return { UploadId: 'upload-1' };
      if (command instanceof UploadPartCommand) {
        const partNumber = command.input.PartNumber ?? 0;
        const tryIndex = tries.get(partNumber) ?? 0;
        tries.set(partNumber, tryIndex + 1);
        const body = command.input.Body as Buffer;
        if (failPart(partNumber, tryIndex)) {
          onPartFailed();
          throw resetError();
        }
        sent.push({ partNumber, md5: command.input.ContentMD5, body: Buffer.from(body) });
        // The slot is lent, not given: its identity says how many buffers the upload used.
        bodies.add(body.buffer);
        return { ETag: `"${createHash('md5').update(body).digest('hex')}"` };
      }
      if (command instanceof CompleteMultipartUploadCommand) return { ETag: '"done-3"' };
      if (command instanceof AbortMultipartUploadCommand) return {};
      throw new Error(`unexpected command ${(command as object).constructor.name}`);
    },
  };
  const bodies = new Set<ArrayBufferLike>();
  return { client: client as unknown as S3Client, sent, commands, bodies };
}

/** A file of `content` as a FileBody, counting the reads at each offset. */
function countingBody(content: Buffer): { body: FileBody; reads: Map<number, number> } {
  const reads = new Map<number, number>();
  return {
    reads,
    body: {
      kind: 'file',
      read: async (target, position) => {
        reads.set(position, (reads.get(position) ?? 0) + 1);
        content.copy(target, 0, position, position + target.length);
      },
    },
  };
}

function putOptions(content: Buffer, extra: Partial<PutOptions> = {}): PutOptions {
  return {
    sizeBytes: content.length,
    md5Hex: undefined,
    partSizeBytes: PART_BYTES,
    ifNoneMatch: false,
    metadata: {},
    signal: undefined,
    onProgress: undefined,
    onPart: (part) => createHash('md5').update(part).digest(),
    partRetry: TINY,
    ...extra,
  };
}

describe('uploadFileInParts, a part cut in transit', () => {
  const content = Buffer.from(Array.from({ length: 3 * PART_BYTES }, (_, i) => (i * 7) % 251));

  it('is read from the file again and sent with its Content-MD5, in the same upload', async () => {
    const { client, sent, commands, bodies } = fakeClient((partNumber, tryIndex) => partNumber === 2 && tryIndex < 2);
    const { body, reads } = countingBody(content);
    const partsSeen: number[] = [];
    const options = putOptions(content, {
      onPart: (part) => {
        partsSeen.push(part.length);
        return createHash('md5').update(part).digest();
      },
    });
    const etag = await uploadFileInParts({ client, bucket: 'b', partsInFlight: 2, ifNoneMatch: false }, 'k', body, PART_BYTES, options);

    expect(etag).toBe('"done-3"');
    expect(commands.filter((name) => name === 'CreateMultipartUploadCommand')).toHaveLength(1);
    expect(commands).not.toContain('AbortMultipartUploadCommand');
    // Read once per try of part 2, once for the others; digested once each.
    expect([...reads.entries()].sort(([a], [b]) => a - b)).toEqual([
      [0, 1],
      [PART_BYTES, 3],
      [2 * PART_BYTES, 1],
    ]);
    expect(partsSeen).toEqual([PART_BYTES, PART_BYTES, PART_BYTES]);
    const part2 = sent.find((part) => part.partNumber === 2);
    expect(part2?.md5).toBe(createHash('md5').update(content.subarray(PART_BYTES, 2 * PART_BYTES)).digest('base64'));
    expect(part2?.body.equals(content.subarray(PART_BYTES, 2 * PART_BYTES))).toBe(true);
    expect(bodies.size).toBeLessThanOrEqual(2);
  });

  it('that keeps failing aborts the upload with a failure not to retry whole', async () => {
    const { client, commands } = fakeClient((partNumber) => partNumber === 3);
    const { body } = countingBody(content);
    const error = await rejection(uploadFileInParts({ client, bucket: 'b', partsInFlight: 2, ifNoneMatch: false }, 'k', body, PART_BYTES, putOptions(content)));
    expect(isAppError(error, 'remote_unavailable')).toBe(true);
    expect((error as AppError).retryable).toBe(false);
    expect(commands.filter((name) => name === 'UploadPartCommand').length).toBe(2 + TINY.policy.attempts);
    expect(commands.at(-1)).toBe('AbortMultipartUploadCommand');
  });

  it('stops being retried when the upload is cancelled, and the upload is aborted', async () => {
    const cancel = new AbortController();
    const { client, commands } = fakeClient(
      (partNumber) => partNumber === 1,
      () => cancel.abort(),
    );
    const { body } = countingBody(content);
    const slow: PartRetryOptions = { policy: { attempts: 5, baseDelayMs: 60_000, maxDelayMs: 60_000 } };
    const error = await rejection(
      uploadFileInParts({ client, bucket: 'b', partsInFlight: 1, ifNoneMatch: false }, 'k', body, PART_BYTES, putOptions(content, { signal: cancel.signal, partRetry: slow })),
    );
    expect(isAppError(error, 'cancelled')).toBe(true);
    expect(commands.filter((name) => name === 'UploadPartCommand')).toHaveLength(1);
    expect(commands.at(-1)).toBe('AbortMultipartUploadCommand');
  });
});
