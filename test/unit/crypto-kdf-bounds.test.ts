import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeHeader, encodeHeader, FORMAT_VERSION, type KdfParams, type ScryptParams } from '../../src/crypto/format.js';
import type { DeriveMasterKey } from '../../src/crypto/kdf.js';
import { DEFAULT_SCRYPT, Keyring, keyCheckValue, type KeySource, type WriteKey } from '../../src/crypto/keys.js';
import { decryptBuffer, encryptBuffer } from '../../src/crypto/streams.js';
import { isAppError } from '../../src/errors.js';

/**
 * What an object's header may ask of a reader holding a passphrase: no more memory than
 * memsync's own parameters, one derivation per salt, one derivation at a time.
 */

const OBJECT = 'snap_20250101_000000/index.faiss';
const passphrase: KeySource = { kind: 'passphrase', passphrase: 'correct horse battery staple' };
const CHEAP_SCRYPT: ScryptParams = { log2N: 10, r: 8, p: 1 };

/** Stands in for scrypt: deterministic, so writers and readers agree, and free. */
function fakeMasterKey(secret: string, salt: Buffer, params: ScryptParams): Buffer {
  return createHmac('sha256', secret).update(salt).update(`${params.log2N}:${params.r}:${params.p}`).digest();
}

/** A derivation that records its calls and how many ran at once, and can be told to fail. */
function observedDerive(): { derive: DeriveMasterKey; salts: string[]; maxConcurrent: () => number; failNext: (count: number) => void } {
  const salts: string[] = [];
  let running = 0;
  let maxRunning = 0;
  let failuresLeft = 0;
  const derive: DeriveMasterKey = async (secret, salt, params) => {
    salts.push(salt.toString('hex'));
    running += 1;
    maxRunning = Math.max(maxRunning, running);
    // Yield to the event loop, as a derivation on the thread pool does: another one started meanwhile overlaps this one.
    await new Promise<void>((resolve) => setImmediate(resolve));
    running -= 1;
    if (failuresLeft > 0) {
      failuresLeft -= 1;
      throw new Error('scrypt: memory limit exceeded');
    }
    return fakeMasterKey(secret, salt, params);
  };
  return { derive, salts, maxConcurrent: () => maxRunning, failNext: (count) => (failuresLeft = count) };
}

const freeDerive: DeriveMasterKey = (secret, salt, params) => Promise.resolve(fakeMasterKey(secret, salt, params));

/** An object written under a passphrase with `salt`, as another memsync would have written it. */
async function sealedUnder(salt: Buffer, plaintext = Buffer.from(`content under ${salt.toString('hex')}`)): Promise<Buffer> {
  const writer = new Keyring(passphrase, { writeSalt: salt, scrypt: CHEAP_SCRYPT, derive: freeDerive });
  return encryptBuffer(await writer.writeKey(), plaintext);
}

/** A planted object whose header asks for `params`; its key check could only be checked after deriving. */
function plantedObject(params: ScryptParams): Buffer {
  const kdf: KdfParams = { kind: 'scrypt', ...params, salt: randomBytes(16) };
  const masterKey = randomBytes(32);
  const writeKey: WriteKey = { masterKey, kdf, keyCheck: keyCheckValue(masterKey) };
  return encryptBuffer(writeKey, Buffer.from('planted'));
}

async function failure(promise: Promise<unknown>): Promise<{ kind: string; message: string; retryable: boolean }> {
  try {
    await promise;
  } catch (error) {
    if (isAppError(error)) return { kind: error.kind, message: error.message, retryable: error.retryable };
    throw error;
  }
  throw new Error('expected a failure');
}

describe('scrypt parameters a header may ask for', () => {
  const header = (params: ScryptParams): Buffer =>
    encodeHeader({ version: FORMAT_VERSION, chunkLog2: 20, kdf: { kind: 'scrypt', ...params, salt: Buffer.alloc(16, 1) }, keyCheck: Buffer.alloc(16), objectId: Buffer.alloc(32) });

  it.each([
    ['N=2^20', { log2N: 20, r: 8, p: 1 }],
    ['r=16', { log2N: 17, r: 16, p: 1 }],
    ['p=2', { log2N: 17, r: 8, p: 2 }],
    ['N=2^18', { log2N: 18, r: 8, p: 1 }],
    ['N=2^20, r=16, p=4', { log2N: 20, r: 16, p: 4 }],
  ])('refuses %s, more than memsync ever writes', (_label, params) => {
    const parsed = decodeHeader(header(params));
    expect(parsed.ok).toBe(false);
    expect(parsed.ok ? '' : parsed.reason).toMatch(/scrypt parameters/);
  });

  it.each([
    ['the parameters memsync writes', DEFAULT_SCRYPT],
    ['cheaper ones', CHEAP_SCRYPT],
  ])('accepts %s', (_label, params) => {
    expect(decodeHeader(header(params)).ok).toBe(true);
  });

  it.each([
    ['N=2^20', { log2N: 20, r: 8, p: 1 }],
    ['r=16', { log2N: 17, r: 16, p: 1 }],
  ])('fails a planted object asking for %s as an integrity error naming it, before deriving anything', async (_label, params) => {
    const observed = observedDerive();
    const reader = new Keyring(passphrase, { scrypt: CHEAP_SCRYPT, derive: observed.derive });
    const error = await failure(decryptBuffer(reader, plantedObject(params), OBJECT));
    expect(error).toMatchObject({ kind: 'integrity', retryable: false });
    expect(error.message).toMatch(new RegExp(`^${OBJECT}: scrypt parameters`));
    expect(observed.salts).toEqual([]);
  });

  it('will not write with parameters it would refuse to read back', () => {
    expect(() => new Keyring(passphrase, { scrypt: { log2N: 18, r: 8, p: 1 } })).toThrow(/scrypt parameters/);
    expect(() => new Keyring(passphrase, { scrypt: { log2N: 17, r: 16, p: 1 } })).toThrow(/scrypt parameters/);
  });
});

describe('passphrase derivations', () => {
  it('derives a salt once for concurrent readers of objects under it', async () => {
    const salt = Buffer.alloc(16, 3);
    const objects = [await sealedUnder(salt, Buffer.from('a')), await sealedUnder(salt, Buffer.from('b')), await sealedUnder(salt, Buffer.from('c'))];
    const observed = observedDerive();
    const reader = new Keyring(passphrase, { scrypt: CHEAP_SCRYPT, derive: observed.derive });
    const plain = await Promise.all(objects.map((sealed, index) => decryptBuffer(reader, sealed, `object ${index}`)));
    expect(plain.map(String)).toEqual(['a', 'b', 'c']);
    expect(observed.salts).toEqual([salt.toString('hex')]);
  });

  it('runs one derivation at a time, across keyrings, however many distinct salts are asked for at once', async () => {
    const salts = [1, 2, 3, 4].map((fill) => Buffer.alloc(16, 0x10 + fill));
    const objects = await Promise.all(salts.map((salt) => sealedUnder(salt)));
    const observed = observedDerive();
    const first = new Keyring(passphrase, { scrypt: CHEAP_SCRYPT, derive: observed.derive });
    const second = new Keyring(passphrase, { scrypt: CHEAP_SCRYPT, derive: observed.derive });
    const plain = await Promise.all(objects.map((sealed, index) => decryptBuffer(index % 2 === 0 ? first : second, sealed, `object ${index}`)));
    expect(plain.map(String)).toEqual(salts.map((salt) => `content under ${salt.toString('hex')}`));
    expect(observed.salts.sort()).toEqual(salts.map((salt) => salt.toString('hex')).sort());
    expect(observed.maxConcurrent()).toBe(1);
  });

  it('derives again after a failed derivation instead of remembering the failure', async () => {
    const salt = Buffer.alloc(16, 5);
    const sealed = await sealedUnder(salt, Buffer.from('kept'));
    const observed = observedDerive();
    const reader = new Keyring(passphrase, { scrypt: CHEAP_SCRYPT, derive: observed.derive });
    observed.failNext(1);
    const failed = await Promise.allSettled([decryptBuffer(reader, sealed, OBJECT), decryptBuffer(reader, sealed, OBJECT)]);
    expect(failed.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected']);
    expect(observed.salts).toHaveLength(1);
    expect(String(await decryptBuffer(reader, sealed, OBJECT))).toBe('kept');
    expect(observed.salts).toHaveLength(2);
  });

  it('keeps a bounded number of derived salts, dropping the least recently used', async () => {
    const [a, b, c] = [0xa, 0xb, 0xc].map((fill) => Buffer.alloc(16, fill)) as [Buffer, Buffer, Buffer];
    const sealed = new Map(await Promise.all([a, b, c].map(async (salt) => [salt, await sealedUnder(salt)] as const)));
    const observed = observedDerive();
    const reader = new Keyring(passphrase, { scrypt: CHEAP_SCRYPT, derive: observed.derive, maxCachedSalts: 2 });
    for (const salt of [a, b, a, c, a, b]) await decryptBuffer(reader, sealed.get(salt) as Buffer, OBJECT);
    // a was used again before c arrived, so b was the one dropped.
    expect(observed.salts).toEqual([a, b, c, b].map((salt) => salt.toString('hex')));
  });
});
