import { createHash } from 'node:crypto';
import { AppError, isAppError } from '../errors.js';
import type { RemoteStore } from './store.js';

/** Reading a downloaded body: a connection that breaks mid-stream is a retryable remote failure. */
export async function consumeBody(stream: NodeJS.ReadableStream, what: string, onChunk: (chunk: Buffer) => void): Promise<void> {
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) onChunk(chunk);
  } catch (error) {
    if (isAppError(error)) throw error;
    throw new AppError('remote_unavailable', `download ${what}: connection failed mid-body`, { cause: error });
  }
}

/**
 * A whole body in memory, of at most `maxBytes`: past that, the stream is destroyed (nothing more
 * is downloaded) and the read fails. The caller sets the bound from what memsync writes there.
 */
export async function readBody(stream: NodeJS.ReadableStream, what: string, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let totalBytes = 0;
  try {
    await consumeBody(stream, what, (chunk) => {
      totalBytes += chunk.length;
      if (totalBytes > maxBytes) throw tooLarge(what, undefined, maxBytes);
      chunks.push(chunk);
    });
  } catch (error) {
    destroy(stream);
    throw error;
  }
  return Buffer.concat(chunks, totalBytes);
}

/**
 * An object memsync reads whole (a manifest), refused before the GET when its listed size
 * already says it is over `maxBytes`, and cut off at `maxBytes` when the listing understated it.
 */
export async function readSmallObject(store: RemoteStore, key: string, maxBytes: number, options: { signal?: AbortSignal | undefined; listedSizeBytes?: number | undefined } = {}): Promise<Buffer> {
  if (options.listedSizeBytes !== undefined && options.listedSizeBytes > maxBytes) throw tooLarge(key, options.listedSizeBytes, maxBytes);
  return readBody(await store.get(key, options.signal), key, maxBytes);
}

/**
 * Not what memsync writes there, so the snapshot it belongs to fails (integrity), and is not
 * retried: the same object would be refused again. The store itself answered, so it stays healthy.
 */
function tooLarge(what: string, sizeBytes: number | undefined, maxBytes: number): AppError {
  const size = sizeBytes === undefined ? `more than ${maxBytes} bytes` : `${sizeBytes} bytes`;
  return new AppError('integrity', `${what} is larger than memsync writes there (${size}, at most ${maxBytes}); not read`, {
    retryable: false,
    details: { key: what, maxBytes, ...(sizeBytes === undefined ? {} : { sizeBytes }) },
  });
}

function destroy(stream: NodeJS.ReadableStream): void {
  const destroyable = stream as NodeJS.ReadableStream & { destroy?: () => void };
  destroyable.destroy?.();
}

export async function sha256OfBody(stream: NodeJS.ReadableStream, what: string): Promise<string> {
  const hash = createHash('sha256');
  await consumeBody(stream, what, (chunk) => hash.update(chunk));
  return hash.digest('hex');
}
