import { createHash } from 'node:crypto';
import { AppError, isAppError } from '../errors.js';

/** Reading a downloaded body: a connection that breaks mid-stream is a retryable remote failure. */
export async function consumeBody(stream: NodeJS.ReadableStream, what: string, onChunk: (chunk: Buffer) => void): Promise<void> {
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) onChunk(chunk);
  } catch (error) {
    if (isAppError(error)) throw error;
    throw new AppError('remote_unavailable', `download ${what}: connection failed mid-body`, { cause: error });
  }
}

export async function readBody(stream: NodeJS.ReadableStream, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await consumeBody(stream, what, (chunk) => chunks.push(chunk));
  return Buffer.concat(chunks);
}

export async function sha256OfBody(stream: NodeJS.ReadableStream, what: string): Promise<string> {
  const hash = createHash('sha256');
  await consumeBody(stream, what, (chunk) => hash.update(chunk));
  return hash.digest('hex');
}
