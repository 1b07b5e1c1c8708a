import { execFile } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { link, lstat, mkdir, open, symlink, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { digestFile } from '../../src/snapshot/digest.js';
import { fileOperationsPastDeadline, isStuckFileOperation, openLocalFile, withDeadline, type ExpectedFile, type OpenOptions } from '../../src/snapshot/safe-open.js';
import { mkfifo, releaseFifos } from '../helpers/fifo.js';
import { tempDir } from '../helpers/tmp.js';

/** A test that hangs shows as a failure instead of stalling the run. */
const BOUNDED_MS = 10_000;
const execFileAsync = promisify(execFile);

afterEach(releaseFifos);

async function refusal(absolute: string, options: OpenOptions = {}): Promise<AppError> {
  try {
    const file = await openLocalFile(absolute, options);
    await file.close();
  } catch (error) {
    if (error instanceof AppError) return error;
    throw error;
  }
  throw new Error(`expected ${absolute} to be refused`);
}

async function identityOf(absolute: string): Promise<ExpectedFile> {
  const stat = await lstat(absolute);
  return { size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs, dev: stat.dev, ino: stat.ino };
}

describe('openLocalFile', () => {
  it('opens the regular file that was scanned and reads it', async () => {
    const dir = await tempDir('safe-open');
    const absolute = path.join(dir, 'config.json');
    await writeFile(absolute, '{"dim":384}');
    const file = await openLocalFile(absolute, { expected: await identityOf(absolute), refuseHardlinks: true });
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of file.stream(5) as AsyncIterable<Buffer>) chunks.push(chunk);
      expect(Buffer.concat(chunks).toString()).toBe('{"dim');
    } finally {
      await file.close();
    }
  });

  it(
    'refuses a FIFO at once, naming it, without waiting for a writer',
    async () => {
      const dir = await tempDir('safe-open');
      const absolute = path.join(dir, 'index.faiss');
      await mkfifo(absolute);
      const error = await refusal(absolute);
      expect(error.kind).toBe('local_io');
      expect(error.message).toBe(`${absolute} is not a regular file (a FIFO); refused`);
    },
    BOUNDED_MS,
  );

  it('refuses a directory', async () => {
    const dir = await tempDir('safe-open');
    const absolute = path.join(dir, 'sub');
    await mkdir(absolute);
    expect((await refusal(absolute)).message).toBe(`${absolute} is not a regular file (a directory); refused`);
  });

  it('refuses a symbolic link rather than follow it', async () => {
    const dir = await tempDir('safe-open');
    const target = path.join(dir, 'elsewhere');
    const absolute = path.join(dir, 'metadata.json');
    await writeFile(target, 'outside');
    await symlink(target, absolute);
    const error = await refusal(absolute);
    expect(error.kind).toBe('local_io');
    expect(error.message).toContain(absolute);
    expect(error.message).toMatch(/symbolic link/);
  });

  it('refuses a file with another hard link only when asked to', async () => {
    const dir = await tempDir('safe-open');
    const outside = path.join(dir, 'outside');
    const absolute = path.join(dir, 'metadata.json');
    await writeFile(outside, 'outside');
    await link(outside, absolute);
    const error = await refusal(absolute, { refuseHardlinks: true });
    expect(error.kind).toBe('local_io');
    expect(error.message).toBe(`${absolute} has 2 hard links; refused`);
    await (await openLocalFile(absolute, { refuseHardlinks: false })).close();
  });

  it('refuses another file where the scanned one was, as changed', async () => {
    const dir = await tempDir('safe-open');
    const absolute = path.join(dir, 'index.faiss');
    await writeFile(absolute, 'scanned');
    const scanned = await identityOf(absolute);
    const replacement = path.join(dir, 'replacement');
    await writeFile(replacement, 'swapped');
    await execFileAsync('mv', [replacement, absolute]);
    const error = await refusal(absolute, { expected: scanned });
    expect(error.kind).toBe('snapshot_gone');
    expect(error.message).toBe(`${absolute} was replaced or changed after it was scanned`);
  });

  it('reports a file that is gone as such', async () => {
    const dir = await tempDir('safe-open');
    expect((await refusal(path.join(dir, 'missing'))).kind).toBe('snapshot_gone');
  });
});

describe('digestFile', () => {
  it(
    'refuses a FIFO instead of blocking on it',
    async () => {
      const dir = await tempDir('safe-open');
      const absolute = path.join(dir, 'index.faiss');
      await mkfifo(absolute);
      await expect(digestFile(absolute, 10, 8 * 1024 * 1024)).rejects.toThrow(`${absolute} is not a regular file (a FIFO); refused`);
    },
    BOUNDED_MS,
  );
});

describe('withDeadline', () => {
  it(
    'gives up on an open() that blocks, naming the file, and closes the handle once it arrives',
    async () => {
      const dir = await tempDir('safe-open');
      const fifo = path.join(dir, 'index.faiss');
      await mkfifo(fifo);
      const stuckNames: string[] = [];
      let lateHandle: (handle: FileHandle) => void = () => undefined;
      const arrived = new Promise<FileHandle>((resolve) => (lateHandle = resolve));
      // Without O_NONBLOCK: blocked in the kernel until a writer comes.
      const blocked = open(fifo, 'r');
      const error = await withDeadline(blocked, 'open', { absolutePath: fifo, deadlineMs: 50, onStuck: (file) => stuckNames.push(file) }, lateHandle).then(
        () => undefined,
        (failure: unknown) => failure,
      );
      expect(isStuckFileOperation(error)).toBe(true);
      expect((error as Error).message).toBe(`open of ${fifo} did not finish within 50 ms`);
      expect(stuckNames).toEqual([fifo]);
      expect(fileOperationsPastDeadline()).toBe(1);

      // The writer the open waits for: it returns now, after the deadline, and its handle is handed over to be closed.
      closeSync(openSync(fifo, 'r+'));
      await (await arrived).close();
      expect(fileOperationsPastDeadline()).toBe(0);
    },
    BOUNDED_MS,
  );
});
