import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import type { Encryption } from '../crypto/encryption.js';
import { encryptedSize } from '../crypto/format.js';
import type { WriteKey } from '../crypto/keys.js';
import { EncryptStream } from '../crypto/streams.js';
import { AppError } from '../errors.js';
import type { FileBody } from '../remote/store.js';
import { DigestAccumulator, partSizeFor, usesMultipart, type FileDigest } from '../snapshot/digest.js';
import type { LocalFile } from '../snapshot/safe-open.js';

/**
 * What is sent for a file, with the digests of exactly those bytes taken on the way: an
 * encrypted body (whose stored size and part layout follow from the plaintext size alone, and
 * whose ETag is known only once it has streamed out), or a plain file hashed as it is sent
 * instead of in a pass of its own. Either way what the server reports is checked against
 * what went out, as for every other upload.
 */

export interface SealedLayout {
  sizeBytes: number;
  multipart: boolean;
  partSizeBytes: number;
}

export function sealedLayout(plainBytes: number, multipartThresholdBytes: number): SealedLayout {
  const sizeBytes = encryptedSize(plainBytes);
  return { sizeBytes, multipart: usesMultipart(sizeBytes, multipartThresholdBytes), partSizeBytes: partSizeFor(sizeBytes) };
}

/** MD5 and multipart ETag of the ciphertext of one upload attempt; its SHA-256 only where the object is read back to verify it. */
export function ciphertextDigest(layout: SealedLayout, options: { sha256: boolean } = { sha256: false }): DigestAccumulator {
  return new DigestAccumulator(layout.partSizeBytes, layout.multipart, options.sha256);
}

/** The plaintext stream encrypted, its output digested on the way. Errors end the returned stream (destroying one end destroys both). */
export function encryptedBody(plaintext: Readable, writeKey: WriteKey, digest: DigestAccumulator): Readable {
  const encrypt = new EncryptStream(writeKey, { observe: (chunk) => digest.update(chunk) });
  // The failure surfaces on `encrypt`, which the store reads; nothing else needs to hear of it.
  pipeline(plaintext, encrypt, () => undefined);
  return encrypt;
}

/** The file's bytes unchanged, digested as they pass. */
export function digestedBody(source: Readable, digest: DigestAccumulator): Readable {
  const tap = new Transform({
    highWaterMark: 1024 * 1024,
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      digest.update(chunk);
      callback(null, chunk);
    },
  });
  pipeline(source, tap, () => undefined);
  return tap;
}

/** How an encrypted object of this file is recognised in the bucket; undefined without encryption. */
export function sealedIdentity(encryption: Encryption | undefined, digest: FileDigest, multipartThresholdBytes: number): { sizeBytes: number; contentTag: string } | undefined {
  if (encryption === undefined) return undefined;
  return { sizeBytes: sealedLayout(digest.size, multipartThresholdBytes).sizeBytes, contentTag: encryption.contentTag(digest.sha256) };
}

/** The file for a multipart upload, read part by part at its offsets; a file that ends early changed since it was settled. */
export function fileBody(file: LocalFile, absolute: string): FileBody {
  return {
    kind: 'file',
    async read(target: Buffer, position: number): Promise<void> {
      for (let filled = 0; filled < target.length; ) {
        const bytesRead = await file.read(target, filled, target.length - filled, position + filled);
        if (bytesRead === 0) throw new AppError('snapshot_gone', `${absolute} ended at byte ${position + filled} while being sent`);
        filled += bytesRead;
      }
    },
  };
}

/**
 * A stream of the file's `sizeBytes` (as hashed) from an open handle; one per upload attempt. The handle outlives
 * the stream (closed by the caller), and a read error after the store gave up on the stream
 * must not become an unhandled 'error' event: the store reports failures through put().
 */
export function readFrom(file: LocalFile, sizeBytes: number): Readable {
  // Cut at the hashed size: bytes appended since are not part of this snapshot (the final stat check catches the change).
  const stream = file.stream(sizeBytes);
  stream.on('error', () => undefined);
  return stream;
}
