// Faults of the file system the directory store must not mistake for success: an unlink refused
// on a real object, and a copy source swapped between the store's look at it and the copy.
import { createHash } from 'node:crypto';
import * as fsPromises from 'node:fs/promises';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { FsRemoteStore } from '../../src/remote/fs-store.js';
import type { FsOperations } from '../../src/remote/fs-operations.js';
import type { PutOptions } from '../../src/remote/store.js';
import { tempDir } from '../helpers/tmp.js';

const PREFIX = 'memories/';
const md5Hex = (bytes: Buffer): string => createHash('md5').update(bytes).digest('hex');

function putOptions(bytes: Buffer, metadata: Record<string, string> = {}): PutOptions {
  return { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: true, metadata, signal: undefined, onProgress: undefined };
}

async function failure(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the operation failed').toBeInstanceOf(AppError);
  return error as AppError;
}

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected`), { code });
}

describe('FsRemoteStore file-system faults', () => {
  it('an unlink refused with EPERM on an object fails the delete, and the object keeps its sidecar (ETag and metadata)', async () => {
    const directory = await tempDir('memsync-fs-faults');
    const objectPath = path.join(directory, PREFIX, 'auto_20260101_000000', 'metadata.json');
    const unlink: FsOperations['unlink'] = async (target) => {
      if (target === objectPath) throw errno('EPERM');
      await fsPromises.unlink(target);
    };
    const store = new FsRemoteStore({ directory, prefix: PREFIX, fileSystem: { unlink } });
    const bytes = Buffer.from('{"memories":[]}');
    await store.put('auto_20260101_000000/metadata.json', () => bytes, putOptions(bytes, { 'memsync-agent': 'me' }));

    const error = await failure(store.delete('auto_20260101_000000/metadata.json'));
    expect(error.kind, error.message).toBe('remote_rejected');
    expect(error.message).toContain('EPERM');
    expect(await store.head('auto_20260101_000000/metadata.json')).toEqual({ size: bytes.length, etag: `"${md5Hex(bytes)}"`, metadata: { 'memsync-agent': 'me' } });
  });

  it('a key that names a directory has no object: delete leaves the directory and what is in it', async () => {
    const directory = await tempDir('memsync-fs-faults');
    const store = new FsRemoteStore({ directory, prefix: PREFIX });
    const bytes = Buffer.from('{}');
    await store.put('auto_20260101_000000/metadata.json', () => bytes, putOptions(bytes));
    await store.delete('auto_20260101_000000');
    expect((await store.head('auto_20260101_000000/metadata.json'))?.etag).toBe(`"${md5Hex(bytes)}"`);
  });

  it('a copy source swapped for a link after the store looked at it is not copied: conflict, and no target', async () => {
    const parent = await tempDir('memsync-fs-faults');
    const directory = path.join(parent, 'share');
    const outside = path.join(parent, 'outside', 'secret.txt');
    await mkdir(path.dirname(outside), { recursive: true });
    await mkdir(directory);
    await writeFile(outside, 'not the store\'s');
    const sourcePath = path.join(directory, PREFIX, 'auto_20260101_000000', 'index.faiss');
    let swapped = false;
    // The swap lands right after the store's lstat of the source: the window between its check and the copy.
    const lstat: FsOperations['lstat'] = async (target) => {
      const stat = await fsPromises.lstat(target, { bigint: true });
      if (target === sourcePath && !swapped && stat.isFile()) {
        swapped = true;
        await fsPromises.rename(`${sourcePath}.link`, sourcePath);
      }
      return stat;
    };
    const store = new FsRemoteStore({ directory, prefix: PREFIX, fileSystem: { lstat } });
    const bytes = Buffer.from('the source object');
    await store.put('auto_20260101_000000/index.faiss', () => bytes, putOptions(bytes));
    await symlink(outside, `${sourcePath}.link`);

    const error = await failure(
      store.copy('auto_20260101_000000/index.faiss', 'auto_20260102_000000/index.faiss', { sizeBytes: bytes.length, partSizeBytes: undefined, sourceEtag: `"${md5Hex(bytes)}"`, metadata: {}, signal: undefined }),
    );
    expect(swapped).toBe(true);
    expect(error.kind, error.message).toBe('conflict');
    expect(await store.head('auto_20260102_000000/index.faiss')).toBeUndefined();
    expect(await store.listMultipartUploads('')).toEqual([]);
    expect(await readdir(path.join(directory, PREFIX))).toEqual(['auto_20260101_000000']);
  });
});
