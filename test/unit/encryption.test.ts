import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { decodeHeader, DEFAULT_CHUNK_LOG2, encryptedSize, HEADER_BYTES, TAG_BYTES } from '../../src/crypto/format.js';
import { Keyring, parseKeyText, type KeySource } from '../../src/crypto/keys.js';
import { DecryptStream, decryptBuffer, encryptBuffer, EncryptStream } from '../../src/crypto/streams.js';
import { isAppError } from '../../src/errors.js';
import { buildManifest } from '../../src/snapshot/manifest.js';
import { decodeManifest, encryptedManifestCodec, plainManifestCodec } from '../../src/snapshot/manifest-codec.js';
import { seededRandom } from '../helpers/random.js';

const CHUNK = 2 ** DEFAULT_CHUNK_LOG2;
const rawKey: KeySource = { kind: 'key', key: Buffer.alloc(32, 7) };
// Buffers are compared with equals(): a deep equality over megabytes is very slow.
/** Cheap scrypt parameters: the derivation is what is tested here, not its cost. */
const FAST_SCRYPT = { log2N: 10, r: 8, p: 1 };

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Feeds `data` in uneven pieces, as a file or a socket would. */
function piecewise(data: Buffer, seed: number): Readable {
  const random = seededRandom(seed);
  const pieces: Buffer[] = [];
  for (let at = 0; at < data.length; ) {
    const size = 1 + Math.floor(random() * 100_000);
    pieces.push(data.subarray(at, at + size));
    at += size;
  }
  return Readable.from(pieces);
}

async function encrypt(plaintext: Buffer, keyring = new Keyring(rawKey), seed = 1): Promise<Buffer> {
  return collect(piecewise(plaintext, seed).pipe(new EncryptStream(await keyring.writeKey())));
}

async function decrypt(sealed: Buffer, keyring = new Keyring(rawKey), seed = 2): Promise<Buffer> {
  return collect(piecewise(sealed, seed).pipe(new DecryptStream(keyring, 'snap_20250101_000000/index.faiss')));
}

async function failure(promise: Promise<unknown>): Promise<{ kind: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isAppError(error)) return { kind: error.kind, message: error.message };
    throw error;
  }
  throw new Error('expected a failure');
}

describe('encrypted object format', () => {
  it.each([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17])('round-trips %i bytes and predicts the stored size', async (size) => {
    const plaintext = randomBytes(size);
    const sealed = await encrypt(plaintext);
    expect(sealed.length).toBe(encryptedSize(size));
    expect((await decrypt(sealed)).equals(plaintext)).toBe(true);
  });

  it('gives every object its own id, so the same file never encrypts to the same bytes', async () => {
    const plaintext = Buffer.from('same content');
    const [a, b] = [await encrypt(plaintext), await encrypt(plaintext)];
    expect(a.equals(b)).toBe(false);
    const [ha, hb] = [decodeHeader(a), decodeHeader(b)];
    expect(ha.ok && hb.ok && ha.header.objectId.equals(hb.header.objectId)).toBe(false);
  });

  it('writes the same bytes from a buffer as from a stream for a given object id', async () => {
    const writeKey = await new Keyring(rawKey).writeKey();
    const objectId = Buffer.alloc(32, 3);
    const plaintext = randomBytes(2 * CHUNK + 5);
    const streamed = await collect(piecewise(plaintext, 9).pipe(new EncryptStream(writeKey, { objectId })));
    expect(encryptBuffer(writeKey, plaintext, { objectId }).equals(streamed)).toBe(true);
    expect((await decryptBuffer(new Keyring(rawKey), streamed, 'x')).equals(plaintext)).toBe(true);
  });

  it('never puts plaintext on the wire', async () => {
    const marker = Buffer.from('a memory the assistant must keep private');
    const sealed = await encrypt(Buffer.concat([marker, marker, marker]));
    expect(sealed.includes(marker)).toBe(false);
  });
});

describe('tampered, truncated and reordered objects', () => {
  const plaintext = randomBytes(3 * CHUNK + 100);
  const chunkStart = (index: number): number => HEADER_BYTES + index * (CHUNK + TAG_BYTES);

  it('refuses a flipped bit in a chunk, naming the object and the chunk', async () => {
    const sealed = await encrypt(plaintext);
    sealed[chunkStart(1) + 10] = (sealed[chunkStart(1) + 10] as number) ^ 1;
    const error = await failure(decrypt(sealed));
    expect(error.kind).toBe('integrity');
    expect(error.message).toMatch(/snap_20250101_000000\/index\.faiss: chunk 1 failed authentication/);
  });

  it('refuses an altered header (object id), which every chunk authenticates', async () => {
    const sealed = await encrypt(plaintext);
    sealed[HEADER_BYTES - 1] = (sealed[HEADER_BYTES - 1] as number) ^ 0x80;
    expect((await failure(decrypt(sealed))).kind).toBe('integrity');
  });

  it('refuses an object cut at a chunk boundary (the last chunk left was not sealed as final)', async () => {
    const sealed = await encrypt(plaintext);
    const error = await failure(decrypt(sealed.subarray(0, chunkStart(2))));
    expect(error).toMatchObject({ kind: 'integrity' });
    expect(error.message).toMatch(/final chunk 1 failed authentication/);
  });

  it('refuses an object cut mid-chunk, cut inside the header, or empty', async () => {
    const sealed = await encrypt(plaintext);
    expect((await failure(decrypt(sealed.subarray(0, chunkStart(1) + 500)))).kind).toBe('integrity');
    expect((await failure(decrypt(sealed.subarray(0, 20)))).message).toMatch(/shorter than the encryption header/);
    expect((await failure(decrypt(Buffer.alloc(0)))).kind).toBe('integrity');
  });

  it('refuses swapped chunks and an appended chunk', async () => {
    const sealed = await encrypt(plaintext);
    const swapped = Buffer.concat([sealed.subarray(0, chunkStart(0)), sealed.subarray(chunkStart(1), chunkStart(2)), sealed.subarray(chunkStart(0), chunkStart(1)), sealed.subarray(chunkStart(2))]);
    expect((await failure(decrypt(swapped))).message).toMatch(/chunk 0 failed authentication/);
    const appended = Buffer.concat([sealed, sealed.subarray(chunkStart(1), chunkStart(2))]);
    expect((await failure(decrypt(appended))).kind).toBe('integrity');
  });

  it('refuses something that is not an encrypted object at all', async () => {
    const error = await failure(decrypt(randomBytes(1000)));
    expect(error.message).toMatch(/not an object encrypted by memsync/);
  });
});

describe('keys', () => {
  it('detects a wrong key from the header, before any chunk', async () => {
    const sealed = await encrypt(randomBytes(10));
    const error = await failure(decrypt(sealed, new Keyring({ kind: 'key', key: Buffer.alloc(32, 8) })));
    expect(error.kind).toBe('encryption_key');
    expect(error.message).toMatch(/key check value does not match/);
  });

  it('derives a passphrase key from the salt each object names, whatever salt this process writes with', async () => {
    const passphrase: KeySource = { kind: 'passphrase', passphrase: 'correct horse battery staple' };
    const writer = new Keyring(passphrase, { writeSalt: Buffer.alloc(16, 1), scrypt: FAST_SCRYPT });
    const reader = new Keyring(passphrase, { writeSalt: Buffer.alloc(16, 2), scrypt: FAST_SCRYPT });
    const plaintext = randomBytes(CHUNK + 1);
    expect((await decrypt(await encrypt(plaintext, writer), reader)).equals(plaintext)).toBe(true);
    const wrong = new Keyring({ kind: 'passphrase', passphrase: 'incorrect horse battery staple' }, { writeSalt: Buffer.alloc(16, 1), scrypt: FAST_SCRYPT });
    expect((await failure(decrypt(await encrypt(plaintext, writer), wrong))).kind).toBe('encryption_key');
  });

  it('says which kind of secret an object needs when the other kind is configured', async () => {
    const passphraseRing = new Keyring({ kind: 'passphrase', passphrase: 'correct horse battery staple' }, { writeSalt: Buffer.alloc(16, 1), scrypt: FAST_SCRYPT });
    expect((await failure(decrypt(await encrypt(Buffer.from('x')), passphraseRing))).message).toMatch(/encrypted with a raw key/);
    expect((await failure(decrypt(await encrypt(Buffer.from('x'), passphraseRing)))).message).toMatch(/encrypted with a passphrase/);
  });

  it.each([
    ['64 hex digits', 'ab'.repeat(32), true],
    ['base64', Buffer.alloc(32, 200).toString('base64'), true],
    ['base64url', Buffer.alloc(32, 251).toString('base64url'), true],
    ['63 hex digits', 'a'.repeat(63), false],
    ['base64 of 16 bytes', Buffer.alloc(16).toString('base64'), false],
    ['a passphrase', 'correct horse battery staple', false],
  ])('parses a key given as %s: %s', (_label, text, valid) => {
    expect(parseKeyText(text)?.length === 32).toBe(valid);
  });
});

describe('encrypted manifests', () => {
  const manifest = buildManifest('snap_20250101_000000', 'directory', [{ path: 'metadata.json', size: 3, sha256: 'a'.repeat(64) }]);

  it('encrypt deterministically under one key (a predictable ETag) and differently under another', async () => {
    const codec = encryptedManifestCodec(await new Keyring(rawKey).writeKey());
    expect(codec.encode(manifest).equals(codec.encode(manifest))).toBe(true);
    expect(codec.etag(manifest)).toMatch(/^[0-9a-f]{32}$/);
    const other = encryptedManifestCodec(await new Keyring({ kind: 'key', key: Buffer.alloc(32, 9) }).writeKey());
    expect(other.etag(manifest)).not.toBe(codec.etag(manifest));
    const changed = buildManifest('snap_20250101_000000', 'directory', [{ path: 'metadata.json', size: 3, sha256: 'b'.repeat(64) }]);
    expect(codec.etag(changed)).not.toBe(codec.etag(manifest));
  });

  it('use their own object name, so a listing tells them from plain ones', async () => {
    const codec = encryptedManifestCodec(await new Keyring(rawKey).writeKey());
    expect(codec.key('snap_20250101_000000')).toBe('snap_20250101_000000/.memsync-manifest.enc');
    expect(plainManifestCodec().key('snap_20250101_000000')).toBe('snap_20250101_000000/.memsync-manifest.json');
  });

  it('read back with the key, and are refused without it or with another', async () => {
    const bytes = encryptedManifestCodec(await new Keyring(rawKey).writeKey()).encode(manifest);
    expect(await decodeManifest(bytes, 'encrypted', manifest.snapshot, new Keyring(rawKey))).toEqual(manifest);
    expect(await failure(decodeManifest(bytes, 'encrypted', manifest.snapshot, undefined))).toMatchObject({ kind: 'encryption_key', message: expect.stringMatching(/no encryption key is configured/) });
    expect((await failure(decodeManifest(bytes, 'encrypted', manifest.snapshot, new Keyring({ kind: 'key', key: Buffer.alloc(32, 1) })))).kind).toBe('encryption_key');
  });
});

describe('encryption configuration', () => {
  const enabled = { CLOUD_SYNC_ENABLED: 'true', CLOUD_SYNC_BUCKET: 'my-memories' };
  const problems = (env: Record<string, string>): string => {
    try {
      loadConfig({ ...enabled, ...env });
    } catch (error) {
      if (isAppError(error, 'config')) return error.message;
      throw error;
    }
    return '';
  };

  it('accepts a key or a passphrase, and is off by default', () => {
    expect(loadConfig(enabled).encryption).toBeUndefined();
    expect(loadConfig({ ...enabled, CLOUD_SYNC_ENCRYPTION_KEY: 'cd'.repeat(32) }).encryption).toEqual({ kind: 'key', key: Buffer.alloc(32, 0xcd) });
    expect(loadConfig({ ...enabled, CLOUD_SYNC_ENCRYPTION_PASSPHRASE: 'correct horse battery staple' }).encryption).toEqual({ kind: 'passphrase', passphrase: 'correct horse battery staple' });
  });

  it('names the variable and what is expected, never echoing the secret', () => {
    const badKey = 'not-a-key-but-a-secret-value';
    const message = problems({ CLOUD_SYNC_ENCRYPTION_KEY: badKey });
    expect(message).toMatch(/CLOUD_SYNC_ENCRYPTION_KEY=\(secret, \d+ characters\): expected a 256-bit key/);
    expect(message).not.toContain(badKey);
    expect(problems({ CLOUD_SYNC_ENCRYPTION_PASSPHRASE: 'short' })).toMatch(/CLOUD_SYNC_ENCRYPTION_PASSPHRASE=\(secret, 5 characters\): expected a passphrase of at least 12 characters/);
    expect(problems({ CLOUD_SYNC_ENCRYPTION_KEY: 'cd'.repeat(32), CLOUD_SYNC_ENCRYPTION_PASSPHRASE: 'correct horse battery staple' })).toMatch(/set either CLOUD_SYNC_ENCRYPTION_KEY or CLOUD_SYNC_ENCRYPTION_PASSPHRASE/);
  });
});
