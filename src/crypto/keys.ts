import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError, describeError } from '../errors.js';
import { KEY_CHECK_BYTES, MAX_SCRYPT, SALT_BYTES, scryptParamsProblem, type KdfParams, type ScryptParams } from './format.js';
import { derivationQueue, DerivedKeyCache, MASTER_KEY_BYTES, scryptMasterKey, type DeriveMasterKey } from './kdf.js';

/**
 * Where encryption keys come from and how they are derived. The master key is either given
 * (32 random bytes) or stretched from a passphrase with scrypt, memory-hard, under a salt
 * stored in every object's header. Each object gets its own key from the master key and its
 * random id (HKDF-SHA256), and every object carries a key check value: a wrong key is found
 * from a header, before any content is fetched.
 */

export type KeySource = { kind: 'key'; key: Buffer } | { kind: 'passphrase'; passphrase: string };

/**
 * scrypt with N=2^17, r=8: 128 MiB and a few hundred milliseconds per derivation, done once per
 * salt. The most a reader accepts from a header, so raising it means raising that bound too.
 */
export const DEFAULT_SCRYPT: Readonly<ScryptParams> = MAX_SCRYPT;
/** Salts a keyring keeps derived keys for: a few writers' worth, not a bucket full of distinct salts. */
export const DEFAULT_MAX_CACHED_SALTS = 16;

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

/** What new objects are written with: the master key and the header fields that lead back to it. */
export interface WriteKey {
  masterKey: Buffer;
  kdf: KdfParams;
  keyCheck: Buffer;
}

export interface KeyringOptions {
  /** Salt for objects this process writes under a passphrase (kept in the state directory by the caller); random by default, ignored for a raw key. */
  writeSalt?: Buffer;
  /** scrypt parameters new objects are written with; DEFAULT_SCRYPT unless given (tests use cheaper ones). */
  scrypt?: ScryptParams;
  /** The passphrase stretching itself; scrypt unless given. Runs one at a time process-wide whichever it is. */
  derive?: DeriveMasterKey;
  /** Derived keys kept, by salt, least recently used dropped first; DEFAULT_MAX_CACHED_SALTS unless given. */
  maxCachedSalts?: number;
}

/**
 * The configured key, derived once per salt. Writing uses one salt for the life of the state
 * directory (so manifests encrypt the same way across restarts); reading derives whatever
 * salt an object names, and caches it.
 */
export class Keyring {
  private readonly writeSalt: Buffer;
  private readonly scryptParams: ScryptParams;
  private readonly derive: DeriveMasterKey;
  private readonly derived: DerivedKeyCache;

  constructor(
    private readonly source: KeySource,
    options: KeyringOptions = {},
  ) {
    this.writeSalt = options.writeSalt ?? randomBytes(SALT_BYTES);
    this.scryptParams = options.scrypt ?? DEFAULT_SCRYPT;
    // What this keyring writes, it and every other memsync must be able to read back.
    const problem = scryptParamsProblem(this.scryptParams);
    if (problem !== undefined) throw new RangeError(`cannot write with ${problem}`);
    this.derive = options.derive ?? scryptMasterKey;
    this.derived = new DerivedKeyCache(options.maxCachedSalts ?? DEFAULT_MAX_CACHED_SALTS);
  }

  async writeKey(): Promise<WriteKey> {
    const kdf: KdfParams = this.source.kind === 'key' ? { kind: 'none' } : { kind: 'scrypt', ...this.scryptParams, salt: this.writeSalt };
    const masterKey = await this.master(kdf, 'new objects');
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
    if (kdf.kind === 'scrypt') {
      // decodeHeader refuses these already; checked again so no caller can spend the memory.
      const problem = scryptParamsProblem(kdf);
      if (problem !== undefined) throw new AppError('integrity', `${what}: ${problem}`, { retryable: false, details: { object: what } });
    }
    const masterKey = await this.master(kdf, what);
    const expected = keyCheckValue(masterKey);
    if (keyCheck.length !== expected.length || !timingSafeEqual(keyCheck, expected)) {
      throw wrongKey(what, 'its key check value does not match the configured key');
    }
    return masterKey;
  }

  private async master(kdf: KdfParams, what: string): Promise<Buffer> {
    if (this.source.kind === 'key') return this.source.key;
    if (kdf.kind !== 'scrypt') throw new Error('a passphrase needs scrypt parameters');
    const { passphrase } = this.source;
    const { salt, log2N, r, p } = kdf;
    try {
      return await this.derived.get(`${log2N}:${r}:${p}:${salt.toString('hex')}`, () => derivationQueue.run(() => this.derive(passphrase, salt, { log2N, r, p })));
    } catch (error) {
      throw new AppError('encryption_key', `cannot derive the key for ${what} from the passphrase: ${describeError(error)}`, {
        retryable: true,
        cause: error,
        hint: 'scrypt needs about 128 MiB per derivation; check the memory available to memsync',
      });
    }
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
