import { createHmac, hkdfSync, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { AppError } from '../errors.js';
import { KEY_CHECK_BYTES, SALT_BYTES, type KdfParams } from './format.js';

/**
 * Where encryption keys come from and how they are derived. The master key is either given
 * (32 random bytes) or stretched from a passphrase with scrypt, memory-hard, under a salt
 * stored in every object's header. Each object gets its own key from the master key and its
 * random id (HKDF-SHA256), and every object carries a key check value: a wrong key is found
 * from a header, before any content is fetched.
 */

export type KeySource = { kind: 'key'; key: Buffer } | { kind: 'passphrase'; passphrase: string };

export const MASTER_KEY_BYTES = 32;
/** scrypt with N=2^17, r=8: 128 MiB and a few hundred milliseconds per derivation, done once per salt. */
export const DEFAULT_SCRYPT = { log2N: 17, r: 8, p: 1 } as const;

/** Parses a 256-bit key written as 64 hex digits or as base64; undefined when it is neither. */
export function parseKeyText(text: string): Buffer | undefined {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(trimmed)) {
    const decoded = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (decoded.length === MASTER_KEY_BYTES) return decoded;
  }
  return undefined;
}

const KEY_CHECK_LABEL = 'memsync key check v1';
const OBJECT_KEY_INFO = 'memsync object key v1';
const MANIFEST_ID_LABEL = 'memsync manifest id v1';
const CONTENT_TAG_LABEL = 'memsync content tag v1';

export function keyCheckValue(masterKey: Buffer): Buffer {
  return createHmac('sha256', masterKey).update(KEY_CHECK_LABEL).digest().subarray(0, KEY_CHECK_BYTES);
}

/** The AES-256-GCM key of one object: unique per object id, so chunk counters never repeat a nonce under a key. */
export function objectKey(masterKey: Buffer, objectId: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, objectId, OBJECT_KEY_INFO, 32));
}

/**
 * The id of an encrypted manifest, derived from its content: the same manifest under the same
 * master key always encrypts to the same bytes, so its ETag is predictable and a sweep can
 * recognise an uploaded snapshot from a listing alone. Distinct manifests get distinct ids.
 */
export function manifestObjectId(masterKey: Buffer, plaintext: Buffer): Buffer {
  return createHmac('sha256', masterKey).update(MANIFEST_ID_LABEL).update(plaintext).digest();
}

/**
 * A keyed tag of a file's SHA-256, stored as object metadata instead of the SHA-256 itself,
 * which would let anyone holding a guess of a file confirm it. Lets memsync recognise its own
 * encrypted objects of the same content without downloading them.
 */
export function contentTag(masterKey: Buffer, sha256Hex: string): string {
  return createHmac('sha256', masterKey).update(CONTENT_TAG_LABEL).update(sha256Hex).digest('hex');
}

function scryptAsync(passphrase: string, salt: Buffer, log2N: number, r: number, p: number): Promise<Buffer> {
  const N = 2 ** log2N;
  return new Promise((resolve, reject) => {
    // maxmem must cover 128 * N * r bytes, plus headroom.
    scrypt(passphrase, salt, MASTER_KEY_BYTES, { N, r, p, maxmem: 128 * N * r * (p + 1) + 16 * 1024 * 1024 }, (error, key) => (error === null ? resolve(key) : reject(error)));
  });
}

/** What new objects are written with: the master key and the header fields that lead back to it. */
export interface WriteKey {
  masterKey: Buffer;
  kdf: KdfParams;
  keyCheck: Buffer;
}

/**
 * The configured key, derived once per salt. Writing uses one salt for the life of the state
 * directory (so manifests encrypt the same way across restarts); reading derives whatever
 * salt an object names, and caches it.
 */
export class Keyring {
  private readonly derived = new Map<string, Promise<Buffer>>();

  /**
   * @param writeSalt salt for objects this process writes under a passphrase (kept in the state
   * directory by the caller); ignored for a raw key.
   */
  constructor(
    private readonly source: KeySource,
    private readonly writeSalt: Buffer = randomBytes(SALT_BYTES),
    private readonly scryptParams: { log2N: number; r: number; p: number } = DEFAULT_SCRYPT,
  ) {}

  async writeKey(): Promise<WriteKey> {
    const kdf: KdfParams = this.source.kind === 'key' ? { kind: 'none' } : { kind: 'scrypt', ...this.scryptParams, salt: this.writeSalt };
    const masterKey = await this.master(kdf);
    return { masterKey, kdf, keyCheck: keyCheckValue(masterKey) };
  }

  /**
   * The master key an object's header leads to. Throws AppError('encryption_key') when the
   * configured key is of the other kind or its check value does not match: a wrong key, found
   * before any content is read.
   */
  async readKey(kdf: KdfParams, keyCheck: Buffer, what: string): Promise<Buffer> {
    if (kdf.kind === 'none' && this.source.kind === 'passphrase') {
      throw wrongKey(what, 'it was encrypted with a raw key (CLOUD_SYNC_ENCRYPTION_KEY), but a passphrase is configured');
    }
    if (kdf.kind === 'scrypt' && this.source.kind === 'key') {
      throw wrongKey(what, 'it was encrypted with a passphrase (CLOUD_SYNC_ENCRYPTION_PASSPHRASE), but a raw key is configured');
    }
    const masterKey = await this.master(kdf);
    const expected = keyCheckValue(masterKey);
    if (keyCheck.length !== expected.length || !timingSafeEqual(keyCheck, expected)) {
      throw wrongKey(what, 'its key check value does not match the configured key');
    }
    return masterKey;
  }

  private master(kdf: KdfParams): Promise<Buffer> {
    if (this.source.kind === 'key') return Promise.resolve(this.source.key);
    if (kdf.kind !== 'scrypt') return Promise.reject(new Error('a passphrase needs scrypt parameters'));
    const cacheKey = `${kdf.log2N}:${kdf.r}:${kdf.p}:${kdf.salt.toString('hex')}`;
    let derived = this.derived.get(cacheKey);
    if (derived === undefined) {
      derived = scryptAsync(this.source.passphrase, kdf.salt, kdf.log2N, kdf.r, kdf.p);
      this.derived.set(cacheKey, derived);
    }
    return derived;
  }
}

function wrongKey(what: string, reason: string): AppError {
  return new AppError('encryption_key', `cannot decrypt ${what}: ${reason}`, {
    retryable: false,
    hint: 'configure the key (or passphrase) the snapshot was uploaded with; see "Client-side encryption" in the README',
  });
}

/** A snapshot or object is encrypted and memsync has no key configured. */
export function noKeyConfigured(what: string): AppError {
  return new AppError('encryption_key', `${what} is encrypted and no encryption key is configured`, {
    retryable: false,
    hint: 'set CLOUD_SYNC_ENCRYPTION_KEY (or CLOUD_SYNC_ENCRYPTION_PASSPHRASE) to the one it was uploaded with',
  });
}
