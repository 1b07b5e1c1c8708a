import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { AppError, isAppError } from '../errors.js';
import { chunkNonce, decodeHeader, DEFAULT_CHUNK_LOG2, encodeHeader, FORMAT_VERSION, HEADER_BYTES, OBJECT_ID_BYTES, TAG_BYTES } from './format.js';
import { objectKey, type Keyring, type WriteKey } from './keys.js';

/**
 * Streaming AES-256-GCM in authenticated chunks (layout in format.ts). Memory is bounded by
 * one chunk whatever the object's size; a tampered, reordered or truncated object fails with
 * an integrity error naming it, and nothing of an unauthenticated chunk is ever passed on.
 */

const ALGORITHM = 'aes-256-gcm';

/** The sealed chunk as pieces (ciphertext, tag): concatenating them would copy every byte once more. */
function sealChunk(key: Buffer, header: Buffer, index: number, final: boolean, plaintext: Buffer): Buffer[] {
  const cipher = createCipheriv(ALGORITHM, key, chunkNonce(index, final), { authTagLength: TAG_BYTES });
  cipher.setAAD(header);
  const body = cipher.update(plaintext);
  cipher.final();
  return [body, cipher.getAuthTag()];
}

function openChunk(key: Buffer, header: Buffer, index: number, final: boolean, sealed: Buffer): Buffer | undefined {
  const decipher = createDecipheriv(ALGORITHM, key, chunkNonce(index, final), { authTagLength: TAG_BYTES });
  decipher.setAAD(header);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const plaintext = decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES));
  try {
    return Buffer.concat([plaintext, decipher.final()]);
  } catch {
    return undefined;
  }
}

/** Gathers incoming chunks and hands out fixed-size pieces, keeping whatever follows. */
class ChunkBuffer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  get length(): number {
    return this.pendingBytes;
  }

  push(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
  }

  take(bytes: number): Buffer {
    const first = this.pending[0];
    if (first !== undefined && first.length >= bytes) {
      // The common case (file reads as large as a chunk): no copy.
      const rest = first.subarray(bytes);
      if (rest.length > 0) this.pending[0] = rest;
      else this.pending.shift();
      this.pendingBytes -= bytes;
      return first.subarray(0, bytes);
    }
    const all = this.pending.length === 1 ? (first as Buffer) : Buffer.concat(this.pending, this.pendingBytes);
    const taken = all.subarray(0, bytes);
    const rest = all.subarray(bytes);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    return taken;
  }
}

export interface EncryptOptions {
  /** Random per object unless given (manifests derive theirs from their content). */
  objectId?: Buffer;
  chunkLog2?: number;
  /** Sees every output chunk, in order (to digest the ciphertext without another stream). */
  observe?: (chunk: Buffer) => void;
}

/** The header and key of a new object. */
function startObject(writeKey: WriteKey, options: EncryptOptions): { header: Buffer; key: Buffer; chunkSize: number } {
  const chunkLog2 = options.chunkLog2 ?? DEFAULT_CHUNK_LOG2;
  const objectId = options.objectId ?? randomBytes(OBJECT_ID_BYTES);
  const header = encodeHeader({ version: FORMAT_VERSION, chunkLog2, kdf: writeKey.kdf, keyCheck: writeKey.keyCheck, objectId });
  return { header, key: objectKey(writeKey.masterKey, objectId), chunkSize: 2 ** chunkLog2 };
}

/** Plaintext in, encrypted object out. */
export class EncryptStream extends Transform {
  private readonly header: Buffer;
  private readonly key: Buffer;
  private readonly chunkSize: number;
  private readonly buffer = new ChunkBuffer();
  private readonly observe: ((chunk: Buffer) => void) | undefined;
  private index = 0;
  private headerSent = false;

  constructor(writeKey: WriteKey, options: EncryptOptions = {}) {
    super({ highWaterMark: 1024 * 1024 });
    ({ header: this.header, key: this.key, chunkSize: this.chunkSize } = startObject(writeKey, options));
    this.observe = options.observe;
  }

  private output(chunk: Buffer): void {
    this.observe?.(chunk);
    this.push(chunk);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.sendHeader();
    this.buffer.push(chunk);
    // Only a chunk known not to be the last is sealed here: the last one is sealed as final in _flush.
    while (this.buffer.length > this.chunkSize) {
      for (const piece of sealChunk(this.key, this.header, this.index++, false, this.buffer.take(this.chunkSize))) this.output(piece);
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.sendHeader();
    for (const piece of sealChunk(this.key, this.header, this.index++, true, this.buffer.take(this.buffer.length))) this.output(piece);
    callback();
  }

  private sendHeader(): void {
    if (this.headerSent) return;
    this.headerSent = true;
    this.output(this.header);
  }
}

/** Encrypted object in, plaintext out; `what` names the object in errors. */
export class DecryptStream extends Transform {
  private readonly buffer = new ChunkBuffer();
  private header: Buffer | undefined;
  private key: Buffer | undefined;
  private sealedSize = 0;
  private index = 0;

  constructor(
    private readonly keyring: Keyring,
    private readonly what: string,
  ) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.buffer.push(chunk);
    if (this.key === undefined) {
      if (this.buffer.length < HEADER_BYTES) return callback();
      this.readHeader().then(
        () => callback(this.drain(false)),
        (error: unknown) => callback(error as Error),
      );
      return;
    }
    callback(this.drain(false));
  }

  override _flush(callback: TransformCallback): void {
    if (this.key === undefined) {
      if (this.buffer.length < HEADER_BYTES) return callback(this.integrity(`truncated: ${this.buffer.length} bytes, shorter than the encryption header`));
      this.readHeader().then(
        () => callback(this.drain(true)),
        (error: unknown) => callback(error as Error),
      );
      return;
    }
    callback(this.drain(true));
  }

  private async readHeader(): Promise<void> {
    const bytes = this.buffer.take(HEADER_BYTES);
    const parsed = decodeHeader(bytes);
    if (!parsed.ok) throw this.integrity(parsed.reason);
    const masterKey = await this.keyring.readKey(parsed.header.kdf, parsed.header.keyCheck, this.what);
    this.header = Buffer.from(bytes);
    this.key = objectKey(masterKey, parsed.header.objectId);
    this.sealedSize = 2 ** parsed.header.chunkLog2 + TAG_BYTES;
  }

  /** Opens every complete chunk that is provably not the last; at the end, the rest as the final one. */
  private drain(atEnd: boolean): Error | null {
    const key = this.key as Buffer;
    const header = this.header as Buffer;
    const parts: Buffer[] = [];
    while (this.buffer.length > this.sealedSize) {
      const plain = openChunk(key, header, this.index, false, this.buffer.take(this.sealedSize));
      if (plain === undefined) return this.integrity(`chunk ${this.index} failed authentication (altered, reordered or corrupted)`);
      parts.push(plain);
      this.index += 1;
    }
    if (atEnd) {
      if (this.buffer.length < TAG_BYTES) return this.integrity(`truncated after chunk ${this.index}`);
      const plain = openChunk(key, header, this.index, true, this.buffer.take(this.buffer.length));
      if (plain === undefined) return this.integrity(`final chunk ${this.index} failed authentication (truncated, altered or corrupted)`);
      parts.push(plain);
    }
    if (parts.length > 0) this.push(parts.length === 1 ? parts[0] : Buffer.concat(parts));
    return null;
  }

  private integrity(reason: string): AppError {
    return new AppError('integrity', `${this.what}: ${reason}`, { retryable: false, details: { object: this.what } });
  }
}

/** Encrypts a small object held in memory (manifests), in the same layout as EncryptStream. */
export function encryptBuffer(writeKey: WriteKey, plaintext: Buffer, options: EncryptOptions = {}): Buffer {
  const { header, key, chunkSize } = startObject(writeKey, options);
  const parts = [header];
  const count = Math.max(1, Math.ceil(plaintext.length / chunkSize));
  for (let index = 0; index < count; index += 1) {
    parts.push(...sealChunk(key, header, index, index === count - 1, plaintext.subarray(index * chunkSize, (index + 1) * chunkSize)));
  }
  return Buffer.concat(parts);
}

/** Decrypts a small object held in memory (manifests). */
export async function decryptBuffer(keyring: Keyring, sealed: Buffer, what: string): Promise<Buffer> {
  const stream = new DecryptStream(keyring, what);
  const out: Buffer[] = [];
  try {
    for await (const chunk of stream.end(sealed) as AsyncIterable<Buffer>) out.push(chunk);
  } catch (error) {
    if (isAppError(error)) throw error;
    throw new AppError('integrity', `${what}: ${String(error)}`, { retryable: false, cause: error });
  }
  return Buffer.concat(out);
}
