// A mount that stops answering (a hard NFS mount whose server is gone) must not stall memsync:
// every file operation of the directory store has a deadline, a missed one is reported as the
// store being unavailable, and while one is stuck no new operation is started behind it.
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import * as fsPromises from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { FsRemoteStore } from '../../src/remote/fs-store.js';
import type { FsOperations } from '../../src/remote/fs-operations.js';
import type { PutOptions } from '../../src/remote/store.js';
import { tempDir } from '../helpers/tmp.js';

const PREFIX = 'memories/';
/** Short, so a stuck call is declared stuck soon; nothing here waits on it passing by the clock. */
const DEADLINE_MS = 50;

function putOptions(bytes: Buffer): PutOptions {
  return { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: true, metadata: {}, signal: undefined, onProgress: undefined };
}

async function failure(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the operation failed').toBeInstanceOf(AppError);
  return error as AppError;
}

/** An lstat that hangs on `hangOn` until released, as a hard mount does; every call is counted. */
function hangingLstat(hangOn: string): { fileSystem: Partial<FsOperations>; calls: () => number; release: () => void } {
  let calls = 0;
  let release: () => void = () => undefined;
  const hung = new Promise<void>((resolve) => (release = resolve));
  const lstat: FsOperations['lstat'] = async (target) => {
    calls += 1;
    if (target === hangOn) await hung;
    return fsPromises.lstat(target, { bigint: true });
  };
  return { fileSystem: { lstat }, calls: () => calls, release };
}

describe('FsRemoteStore deadlines', () => {
  it('an operation that never returns fails as remote_unavailable naming it and the path; others are refused at once until it returns', async () => {
    const directory = await tempDir('memsync-fs-deadline');
    const snapshotDir = path.join(directory, PREFIX, 'auto_20260101_000000');
    await mkdir(snapshotDir, { recursive: true });
    const hang = hangingLstat(snapshotDir);
    const store = new FsRemoteStore({ directory, prefix: PREFIX, operationDeadlineMs: DEADLINE_MS, fileSystem: hang.fileSystem });

    const stuck = await failure(store.head('auto_20260101_000000/metadata.json'));
    expect(stuck.kind).toBe('remote_unavailable');
    expect(stuck.retryable).toBe(true);
    expect(stuck.message).toContain('lstat');
    expect(stuck.message).toContain(snapshotDir);
    expect(stuck.message).toContain(`${DEADLINE_MS} ms`);

    // Refused before any file call: a new call would only wait behind the stuck one for a thread.
    const callsBefore = hang.calls();
    const bytes = Buffer.from('{}');
    const refused = await failure(store.put('auto_20260102_000000/metadata.json', () => bytes, putOptions(bytes)));
    expect(refused.kind).toBe('remote_unavailable');
    expect(refused.message).toContain(snapshotDir);
    expect((await failure(store.checkAccess())).kind).toBe('remote_unavailable');
    expect(hang.calls()).toBe(callsBefore);

    // The mount answers again: the stuck call returns, and the store works as before.
    hang.release();
    await store.whenUnstuck();
    await store.put('auto_20260102_000000/metadata.json', () => bytes, putOptions(bytes));
    expect((await store.head('auto_20260102_000000/metadata.json'))?.size).toBe(bytes.length);
  });

  it('a FIFO where an object should be is no object: get answers at once instead of blocking in open()', async () => {
    const directory = await tempDir('memsync-fs-deadline');
    const snapshotDir = path.join(directory, PREFIX, 'auto_20260101_000000');
    await mkdir(snapshotDir, { recursive: true });
    execFileSync('mkfifo', [path.join(snapshotDir, 'metadata.json')]);
    const store = new FsRemoteStore({ directory, prefix: PREFIX, operationDeadlineMs: 60_000 });
    expect((await failure(store.get('auto_20260101_000000/metadata.json'))).kind).toBe('not_found');
    expect(await store.head('auto_20260101_000000/metadata.json')).toBeUndefined();
  });
});
