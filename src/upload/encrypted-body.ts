import { createHash } from 'node:crypto';
import { pipeline, type Readable } from 'node:stream';
import { encryptedSize } from '../crypto/format.js';
import type { WriteKey } from '../crypto/keys.js';
import { EncryptStream } from '../crypto/streams.js';
import { PartHasher, partSizeFor, usesMultipart, type FileDigest } from '../snapshot/digest.js';

/**
 * The upload of an encrypted file: its stored size and part layout follow from the plaintext
 * size alone, and the ETag to expect is computed from the ciphertext as it streams out, the
 * same check a plain upload gets, so a server that stores something else is caught.
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

/** MD5 (and multipart ETag) of the ciphertext of one upload attempt. */
export class CiphertextDigest {
  private readonly md5 = createHash('md5');
  private readonly parts: PartHasher | undefined;
  private size = 0;

  constructor(private readonly layout: SealedLayout) {
    this.parts = layout.multipart ? new PartHasher(layout.partSizeBytes) : undefined;
  }

  update(chunk: Buffer): void {
    this.md5.update(chunk);
    this.parts?.update(chunk);
    this.size += chunk.length;
  }

  /** What verifyStored checks the server's account against; call once the upload finished. */
  digest(): FileDigest {
    const md5 = this.md5.digest('hex');
    return { size: this.size, sha256: '', md5, etag: this.parts?.etag() ?? md5, partSizeBytes: this.layout.partSizeBytes, multipart: this.layout.multipart };
  }
}

/** The plaintext stream encrypted, its output digested on the way. Errors end the returned stream (destroying one end destroys both). */
export function encryptedBody(plaintext: Readable, writeKey: WriteKey, digest: CiphertextDigest): Readable {
  const encrypt = new EncryptStream(writeKey, { observe: (chunk) => digest.update(chunk) });
  // The failure surfaces on `encrypt`, which the store reads; nothing else needs to hear of it.
  pipeline(plaintext, encrypt, () => undefined);
  return encrypt;
}
