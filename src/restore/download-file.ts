import { open } from 'node:fs/promises';
import { pipeline, type Readable } from 'node:stream';
import type { Keyring } from '../crypto/keys.js';
import { noKeyConfigured } from '../crypto/keys.js';
import { DecryptStream } from '../crypto/streams.js';
import { AppError, isAppError } from '../errors.js';
import type { RemoteStore } from '../remote/store.js';
import { checkObject, ObjectDigester, type Verification } from '../snapshot/object-check.js';
import type { ExpectedFile } from './remote-snapshot.js';

export type { Verification } from '../snapshot/object-check.js';

const WRITE_BATCH_BYTES = 1024 * 1024; // 1 MiB

/**
 * Streams one object to a local file while hashing it, fsyncs it, and checks it against
 * what it must be. Nothing unverified is ever reported as a success.
 */
export async function downloadVerified(
  store: RemoteStore,
  key: string,
  targetPath: string,
  expected: ExpectedFile,
  signal: AbortSignal | undefined,
  onBytes: (bytes: number) => void,
  keyring?: Keyring,
): Promise<Verification> {
  const digester = new ObjectDigester(expected);
  const body = plaintextOf(await store.get(key, signal), key, expected, keyring);
  const handle = await open(targetPath, 'wx', 0o644).catch((error: unknown) => {
    throw localError(error, targetPath);
  });
  // Network chunks are small (16 to 64 KiB): one awaited write each would cost a thread-pool round trip per chunk.
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = async (): Promise<void> => {
    const data = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    for (let offset = 0; offset < data.length; ) {
      const { bytesWritten } = await handle.write(data, offset, data.length - offset).catch((error: unknown) => {
        throw localError(error, targetPath);
      });
      offset += bytesWritten;
    }
  };
  try {
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        digester.update(chunk);
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= WRITE_BATCH_BYTES) await flush();
        onBytes(chunk.length);
      }
      if (pendingBytes > 0) await flush();
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
  const check = checkObject(expected, digester.digest());
  if (!check.ok) throw new AppError('integrity', `${key}: ${check.reason}`);
  return check.verification;
}

/**
 * The object's bytes as they were before upload: decrypted when it is stored encrypted (a
 * tampered or truncated object fails inside the stream, naming the object).
 */
export function plaintextOf(body: Readable, key: string, expected: { encrypted: boolean }, keyring: Keyring | undefined): Readable {
  if (!expected.encrypted) return body;
  if (keyring === undefined) {
    body.destroy();
    throw noKeyConfigured(key);
  }
  const decrypt = new DecryptStream(keyring, key);
  pipeline(body, decrypt, () => undefined);
  return decrypt;
}

function localError(error: unknown, targetPath: string): AppError {
  if (isAppError(error)) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const hint = code === 'ENOSPC' ? 'the disk holding the backup directory is full' : undefined;
  return new AppError('local_io', `cannot write ${targetPath}: ${code ?? String(error)}`, { cause: error, retryable: false, hint });
}
