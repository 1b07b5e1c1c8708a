// How failures read: one line that says each thing once, and hints that are sentences.
import { describe, expect, it } from 'vitest';
import { errorText } from '../../src/cli/error-text.js';
import { AppError, asAppError, describeError } from '../../src/errors.js';
import { errorBody } from '../../src/http/errors.js';
import { translateS3Error } from '../../src/remote/s3-errors.js';

/** What the AWS SDK throws when the server sends no <Message> (Ceph RGW). */
function sdkError(name: string, status: number): Error {
  return Object.assign(new Error('UnknownError'), { name, Code: name, $metadata: { httpStatusCode: status } });
}

function errnoError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

describe('describeError', () => {
  it.each([
    ['an SDK error without a message, wrapped', () => asAppError(sdkError('UnknownError', 500), 'remote_unavailable', 'list memories/'), 'list memories/: UnknownError'],
    ['an SDK refusal translated at the edge', () => translateS3Error(sdkError('SignatureDoesNotMatch', 403), 'list memories/'), 'list memories/: SignatureDoesNotMatch (HTTP 403)'],
    ['a missing bucket', () => translateS3Error(sdkError('NoSuchBucket', 404), 'list memories/'), 'list memories/: NoSuchBucket (HTTP 404)'],
    [
      'an fs error whose code the wrapper already gave',
      () => new AppError('local_io', 'cannot list backup directory /b: ENOTDIR', { cause: errnoError('ENOTDIR', "not a directory, scandir '/b'") }),
      "cannot list backup directory /b: ENOTDIR: not a directory, scandir '/b'",
    ],
    [
      'a network error whose message the wrapper already holds',
      () => new AppError('remote_unavailable', 'list memories/: ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:9', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }) }),
      'list memories/: ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:9',
    ],
    ['a code that is the whole message', () => new AppError('local_io', 'mkdir /x', { cause: Object.assign(new Error('EEXIST'), { code: 'EEXIST' }) }), 'mkdir /x: EEXIST'],
  ])('%s says each thing once', (_label, make, expected) => {
    expect(describeError(make())).toBe(expected);
  });

  it('still shows a cause that adds something', () => {
    const error = new AppError('local_io', 'cannot write /b/x', { cause: errnoError('ENOSPC', 'no space left on device, write') });
    expect(describeError(error)).toBe('cannot write /b/x: ENOSPC: no space left on device, write');
  });

  it('never repeats a code as its own message, at any depth', () => {
    for (const code of ['UnknownError', 'ENOTDIR', 'EEXIST', 'Unknown']) {
      const inner = Object.assign(new Error(code), { code });
      const text = describeError(new AppError('local_io', `outer: ${code}`, { cause: new AppError('local_io', code, { cause: inner }) }));
      expect(text, text).not.toMatch(new RegExp(`${code}\\W+${code}`));
    }
  });
});

describe('hints', () => {
  it.each([' (check the bucket)', '(check the bucket)', '  check the bucket', ': check the bucket', '; check the bucket.'])('%j becomes a sentence without leading punctuation', (raw) => {
    expect(new AppError('remote_rejected', 'x', { hint: raw }).hint).toMatch(/^check the bucket\.?$/);
  });

  it('an empty hint is no hint', () => {
    expect(new AppError('remote_rejected', 'x', { hint: ' ( ) ' }).hint).toBeUndefined();
  });

  it('an HTTP error body carries the hint as a sentence', () => {
    const { body } = errorBody(new AppError('bad_input', 'name is not valid', { hint: ' (use letters and digits)' }));
    expect(body.hint).toBe('use letters and digits');
  });
});

describe('command line error text', () => {
  const location = 's3://b/memories/ at http://127.0.0.1:7480';

  it('a refusal says REFUSED, where, and what to check', () => {
    const text = errorText(translateS3Error(sdkError('InvalidAccessKeyId', 403), 'list memories/'), { storeLocation: location });
    expect(text).toBe(
      'memsync: REFUSED: list memories/: InvalidAccessKeyId (HTTP 403)\n' +
        `  store: ${location} (it answered and refused; running the command again will not help until this is fixed)\n` +
        '  hint: check CLOUD_SYNC_ACCESS_KEY / CLOUD_SYNC_SECRET_KEY, CLOUD_SYNC_REGION and the bucket policy\n',
    );
  });

  it('silence says UNREACHABLE, never REFUSED', () => {
    const text = errorText(translateS3Error(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }), 'list memories/'), { storeLocation: location });
    expect(text).toMatch(/^memsync: UNREACHABLE: list memories\/: ECONNREFUSED: connect ECONNREFUSED 127\.0\.0\.1:9\n/);
    expect(text).toMatch(/^ {2}hint: check CLOUD_SYNC_ENDPOINT/m);
  });

  it('a bare system error gets a hint from its code', () => {
    const text = errorText(Object.assign(new Error("EEXIST: file already exists, mkdir '/data/backups'"), { code: 'EEXIST' }));
    expect(text).toBe("memsync: EEXIST: file already exists, mkdir '/data/backups'\n  hint: a file is where a directory is needed: move it aside or point the configuration at a directory\n");
  });

  it('a store error caused by a system error gets no local-file hint (a directory store\'s ENOENT is a missing object)', () => {
    const cause = Object.assign(new Error("ENOENT: no such file or directory, open '/mnt/share/memories/x/a'"), { code: 'ENOENT' });
    const text = errorText(new AppError('not_found', 'get x/a: no such object', { cause }));
    expect(text).not.toContain('hint:');
    const local = errorText(new AppError('local_io', 'read /data/backups/x/a failed', { cause }));
    expect(local).toContain('hint:');
  });
});
