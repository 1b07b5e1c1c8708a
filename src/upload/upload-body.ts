import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { encryptedSize } from '../crypto/format.js';
import type { WriteKey } from '../crypto/keys.js';
import { EncryptStream } from '../crypto/streams.js';
import { DigestAccumulator, partSizeFor, usesMultipart } from '../snapshot/digest.js';

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

/** MD5 and multipart ETag of the ciphertext of one upload attempt (its SHA-256 is of no use). */
export function ciphertextDigest(layout: SealedLayout): DigestAccumulator {
  return new DigestAccumulator(layout.partSizeBytes, layout.multipart, false);
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
