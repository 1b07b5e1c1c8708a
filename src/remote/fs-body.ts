import { createHash, type Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { AppError, asAppError } from '../errors.js';
import { PartHasher } from '../snapshot/digest.js';
import { isAborted, translateFsError } from './fs-errors.js';
import type { TempObject } from './fs-write.js';
import { isFileBody, type FileBody, type PutOptions } from './store.js';

/**
 * Writes an upload's body into a temporary object and takes the ETag S3 would give the same
 * upload on the way: the MD5 of the bytes for one request, the MD5 of the parts' MD5s (`-N`)
 * for a write in parts, so the uploader's prediction and its check after the write mean the
 * same here as against S3. As S3 checks Content-MD5, a body that does not match the MD5 the
 * caller gave (md5Hex, or a part's MD5 from onPart) is refused, and nothing is stored.
 */

const MIB = 1024 * 1024;
/** Reads of a FileBody in one request go in pieces of this size, so memory does not follow file size. */
const SINGLE_READ_BYTES = 8 * MIB;

class BodyDigest {
  private readonly md5: Hash | undefined;
  private readonly parts: PartHasher | undefined;

  constructor(options: PutOptions) {
    // As lib-storage does, a body that fits in one part is one request, whose ETag is its plain MD5.
    const inParts = options.partSizeBytes !== undefined && options.sizeBytes > options.partSizeBytes;
    this.parts = inParts && options.partSizeBytes !== undefined ? new PartHasher(options.partSizeBytes) : undefined;
    this.md5 = inParts && options.md5Hex === undefined ? undefined : createHash('md5');
  }

  update(bytes: Buffer): void {
    this.md5?.update(bytes);
    this.parts?.update(bytes);
  }

  /** One whole part, in order; its raw MD5. */
  addPart(bytes: Buffer): Buffer {
    this.md5?.update(bytes);
    return this.parts?.addPart(bytes) ?? createHash('md5').update(bytes).digest();
  }

  /** Call once. */
  finish(): { md5Hex: string | undefined; etag: string } {
    const md5Hex = this.md5?.digest('hex');
    return { md5Hex, etag: this.parts?.etag() ?? md5Hex ?? '' };
  }
}

/** Writes the body; returns the object's ETag (unquoted). Fails with cancelled, integrity, or the body's own error. */
export async function writeBody(temp: TempObject, source: Readable | Buffer | FileBody, options: PutOptions, what: string): Promise<string> {
  const digest = new BodyDigest(options);
  const append = async (bytes: Buffer): Promise<void> => {
    if (isAborted(options.signal)) throw new AppError('cancelled', `${what}: aborted`);
    try {
      await temp.write(bytes);
    } catch (error) {
      throw translateFsError(error, what, 'remote_unavailable');
    }
    options.onProgress?.(temp.bytesWritten);
  };
  if (Buffer.isBuffer(source)) {
    digest.update(source);
    await append(source);
  } else if (isFileBody(source)) {
    await writeFileBody(source, options, digest, append, what);
  } else {
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        digest.update(chunk);
        await append(chunk);
      }
    } catch (error) {
      source.destroy();
      throw asAppError(error, 'local_io', `${what}: reading the body`);
    }
  }
  const { md5Hex, etag } = digest.finish();
  if (temp.bytesWritten !== options.sizeBytes) throw new AppError('integrity', `${what}: received ${temp.bytesWritten} bytes, expected ${options.sizeBytes}`);
  if (options.md5Hex !== undefined && md5Hex !== options.md5Hex.toLowerCase()) throw new AppError('integrity', `${what}: BadDigest (the body is not the bytes of the MD5 given)`, { details: { code: 'BadDigest' } });
  return etag;
}

/** A FileBody read at its offsets into one reused buffer, part by part when written in parts (each shown to onPart). */
async function writeFileBody(body: FileBody, options: PutOptions, digest: BodyDigest, append: (bytes: Buffer) => Promise<void>, what: string): Promise<void> {
  const pieceBytes = options.partSizeBytes ?? Math.min(SINGLE_READ_BYTES, Math.max(1, options.sizeBytes));
  const buffer = Buffer.allocUnsafe(Math.min(pieceBytes, Math.max(1, options.sizeBytes)));
  for (let offset = 0, part = 1; offset < options.sizeBytes; offset += pieceBytes, part += 1) {
    if (isAborted(options.signal)) throw new AppError('cancelled', `${what}: aborted`);
    const piece = buffer.subarray(0, Math.min(pieceBytes, options.sizeBytes - offset));
    // The body's own failure (a file that ended early) surfaces as it is.
    await body.read(piece, offset);
    if (options.partSizeBytes === undefined) {
      digest.update(piece);
    } else {
      const expected = options.onPart?.(piece);
      const actual = digest.addPart(piece);
      if (expected !== undefined && !expected.equals(actual)) {
        throw new AppError('integrity', `${what}: part ${part}: BadDigest (the part is not the bytes of the MD5 given)`, { details: { code: 'BadDigest', partNumber: part } });
      }
    }
    await append(piece);
  }
}
