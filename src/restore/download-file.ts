import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { AppError, isAppError } from '../errors.js';
import type { RemoteStore } from '../remote/store.js';
import { PartHasher } from '../snapshot/digest.js';
import type { ExpectedFile } from './remote-snapshot.js';

/**
 * Streams one object to a local file while hashing it, fsyncs it, and checks it against
 * what it must be. Nothing unverified is ever reported as a success.
 */

const MIB = 1024 * 1024;
/** Part sizes other tools commonly use, tried when only a multipart ETag can verify a file. */
const COMMON_PART_SIZES_MIB = [5, 8, 15, 16, 64, 100];

export type Verification = 'sha256' | 'etag' | 'size-only';

export async function downloadVerified(
  store: RemoteStore,
  key: string,
  targetPath: string,
  expected: ExpectedFile,
  signal: AbortSignal | undefined,
  onBytes: (bytes: number) => void,
): Promise<Verification> {
  const sha256 = createHash('sha256');
  const md5 = createHash('md5');
  const partCount = Number(/-(\d+)$/.exec(expected.etag)?.[1] ?? 0);
  const partHashers = partCount > 0 ? candidatePartSizes(expected.size, partCount).map((size) => new PartHasher(size)) : [];
  let size = 0;
  const body = await store.get(key, signal);
  const handle = await open(targetPath, 'wx', 0o644).catch((error: unknown) => {
    throw localError(error, targetPath);
  });
  try {
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        sha256.update(chunk);
        md5.update(chunk);
        for (const hasher of partHashers) hasher.update(chunk);
        size += chunk.length;
        await handle.write(chunk).catch((error: unknown) => {
          throw localError(error, targetPath);
        });
        onBytes(chunk.length);
      }
    } catch (error) {
      if (isAppError(error)) throw error;
      throw new AppError('remote_unavailable', `download ${key}: connection failed mid-body`, { cause: error });
    }
    await handle.sync().catch((error: unknown) => {
      throw localError(error, targetPath);
    });
  } finally {
    await handle.close();
  }
  if (size !== expected.size) throw new AppError('integrity', `${key}: received ${size} bytes, expected ${expected.size}`);
  if (expected.sha256 !== undefined) {
    const actual = sha256.digest('hex');
    if (actual !== expected.sha256) throw new AppError('integrity', `${key}: SHA-256 ${actual} does not match the manifest's ${expected.sha256}`);
    return 'sha256';
  }
  if (partCount === 0) {
    const actual = md5.digest('hex');
    if (/^[0-9a-f]{32}$/.test(expected.etag) && actual !== expected.etag) throw new AppError('integrity', `${key}: MD5 ${actual} does not match the ETag ${expected.etag}`);
    return /^[0-9a-f]{32}$/.test(expected.etag) ? 'etag' : 'size-only';
  }
  return partHashers.some((hasher) => hasher.etag() === expected.etag) ? 'etag' : 'size-only';
}

function candidatePartSizes(size: number, parts: number): number[] {
  const exact = Math.ceil(size / parts);
  const roundedToMib = Math.ceil(exact / MIB) * MIB;
  const candidates = new Set([roundedToMib, ...COMMON_PART_SIZES_MIB.map((mib) => mib * MIB)]);
  // Only part sizes that yield exactly `parts` parts can have produced this ETag.
  return [...candidates].filter((partSize) => Math.ceil(size / partSize) === parts);
}

function localError(error: unknown, targetPath: string): AppError {
  if (isAppError(error)) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const hint = code === 'ENOSPC' ? 'the disk holding the backup directory is full' : undefined;
  return new AppError('local_io', `cannot write ${targetPath}: ${code ?? String(error)}`, { cause: error, retryable: false, hint });
}
