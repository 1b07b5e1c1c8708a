/**
 * The byte layout of an encrypted object, as pure functions. Every object memsync encrypts,
 * file or manifest, is self-describing:
 *
 *   header (74 bytes, authenticated as associated data of every chunk)
 *     magic "MSEC" | version (1) | log2 of the chunk size | kdf id | scrypt log2 N, r, p
 *     | kdf salt (16) | key check value (16) | object id (32)
 *   chunks: AES-256-GCM ciphertext of `chunkSize` plaintext bytes (the last one shorter,
 *   possibly empty) followed by its 16-byte tag.
 *
 * Each object is encrypted under its own key, derived from the master key and the object's
 * random id, so the chunk counter can serve as the nonce without ever repeating one under a
 * key. The nonce's last byte marks the final chunk: a stream cut at a chunk boundary fails to
 * authenticate instead of passing as a shorter file (the STREAM construction).
 */

export const MAGIC = Buffer.from('MSEC', 'ascii');
export const FORMAT_VERSION = 1;
export const SALT_BYTES = 16;
export const KEY_CHECK_BYTES = 16;
export const OBJECT_ID_BYTES = 32;
export const TAG_BYTES = 16;
export const NONCE_BYTES = 12;
export const HEADER_BYTES = MAGIC.length + 1 + 1 + 1 + 3 + SALT_BYTES + KEY_CHECK_BYTES + OBJECT_ID_BYTES;
/**
 * 1 MiB chunks: setting up a cipher per chunk costs about as much as encrypting 64 KiB, so
 * smaller chunks would halve throughput; the tag overhead is 16 bytes per MiB, and memory a
 * couple of chunks per stream.
 */
export const DEFAULT_CHUNK_LOG2 = 20;

export interface ScryptParams {
  log2N: number;
  r: number;
  p: number;
}

export type KdfParams = { kind: 'none' } | ({ kind: 'scrypt'; salt: Buffer } & ScryptParams);

export interface ObjectHeader {
  version: number;
  chunkLog2: number;
  kdf: KdfParams;
  keyCheck: Buffer;
  objectId: Buffer;
}

const KDF_NONE = 0;
const KDF_SCRYPT = 1;

/**
 * The most a header may ask of a reader, and exactly what memsync writes (DEFAULT_SCRYPT).
 * Anyone able to put an object in the bucket chooses these numbers, and the reader pays for
 * them before it can tell the object is not its own: scrypt holds 128 * N * r bytes while it
 * runs (128 MiB here; N=2^20 with r=16 would be 2 GiB), and p multiplies its time. No
 * memsync has written anything stronger, so nothing legitimate is refused. Weaker values cost
 * the reader less and stay readable (tests write with N=2^10).
 */
export const MAX_SCRYPT: Readonly<ScryptParams> = { log2N: 17, r: 8, p: 1 };
/** Below N=2^10, scrypt hardly stretches anything; memsync never writes that. */
const MIN_SCRYPT_LOG2N = 10;

/** Why a reader refuses these scrypt parameters, or undefined when it accepts them. */
export function scryptParamsProblem({ log2N, r, p }: ScryptParams): string | undefined {
  const asked = `N=2^${log2N}, r=${r}, p=${p}`;
  if (log2N < MIN_SCRYPT_LOG2N || r < 1 || p < 1) return `scrypt parameters ${asked} are too weak to be memsync's`;
  if (log2N > MAX_SCRYPT.log2N || r > MAX_SCRYPT.r || p > MAX_SCRYPT.p) {
    return `scrypt parameters ${asked} exceed what memsync writes (at most N=2^${MAX_SCRYPT.log2N}, r=${MAX_SCRYPT.r}, p=${MAX_SCRYPT.p}); refused rather than spend the memory they ask for`;
  }
  return undefined;
}

export function encodeHeader(header: ObjectHeader): Buffer {
  const out = Buffer.alloc(HEADER_BYTES);
  let at = MAGIC.copy(out, 0);
  out[at++] = header.version;
  out[at++] = header.chunkLog2;
  if (header.kdf.kind === 'scrypt') {
    out[at++] = KDF_SCRYPT;
    out[at++] = header.kdf.log2N;
    out[at++] = header.kdf.r;
    out[at++] = header.kdf.p;
    at += header.kdf.salt.copy(out, at, 0, SALT_BYTES);
  } else {
    out[at++] = KDF_NONE;
    at += 3 + SALT_BYTES;
  }
  at += header.keyCheck.copy(out, at, 0, KEY_CHECK_BYTES);
  header.objectId.copy(out, at, 0, OBJECT_ID_BYTES);
  return out;
}

export type HeaderParse = { ok: true; header: ObjectHeader } | { ok: false; reason: string };

/** Whether the bytes start like an object memsync encrypted (cheap check before a full parse). */
export function hasMagic(bytes: Buffer): boolean {
  return bytes.length >= MAGIC.length && bytes.subarray(0, MAGIC.length).equals(MAGIC);
}

export function decodeHeader(bytes: Buffer): HeaderParse {
  if (bytes.length < HEADER_BYTES) return { ok: false, reason: `too short for an encrypted object (${bytes.length} bytes)` };
  if (!hasMagic(bytes)) return { ok: false, reason: 'not an object encrypted by memsync (no MSEC header)' };
  let at = MAGIC.length;
  const version = bytes[at++] as number;
  if (version !== FORMAT_VERSION) return { ok: false, reason: `encryption format version ${version} is not supported (this memsync reads version ${FORMAT_VERSION})` };
  const chunkLog2 = bytes[at++] as number;
  if (chunkLog2 < 10 || chunkLog2 > 24) return { ok: false, reason: `invalid chunk size 2^${chunkLog2}` };
  const kdfId = bytes[at++] as number;
  const log2N = bytes[at++] as number;
  const r = bytes[at++] as number;
  const p = bytes[at++] as number;
  const salt = Buffer.from(bytes.subarray(at, at + SALT_BYTES));
  at += SALT_BYTES;
  let kdf: KdfParams;
  if (kdfId === KDF_NONE) kdf = { kind: 'none' };
  else if (kdfId === KDF_SCRYPT) {
    const problem = scryptParamsProblem({ log2N, r, p });
    if (problem !== undefined) return { ok: false, reason: problem };
    kdf = { kind: 'scrypt', log2N, r, p, salt };
  } else return { ok: false, reason: `unknown key derivation ${kdfId}` };
  const keyCheck = Buffer.from(bytes.subarray(at, at + KEY_CHECK_BYTES));
  at += KEY_CHECK_BYTES;
  const objectId = Buffer.from(bytes.subarray(at, at + OBJECT_ID_BYTES));
  return { ok: true, header: { version, chunkLog2, kdf, keyCheck, objectId } };
}

/** Chunks of a plaintext of `plainBytes`: at least one, so an empty file still carries a final, authenticated chunk. */
export function chunkCount(plainBytes: number, chunkLog2: number = DEFAULT_CHUNK_LOG2): number {
  return Math.max(1, Math.ceil(plainBytes / 2 ** chunkLog2));
}

/** Stored size of a plaintext of `plainBytes`: known before reading it, so uploads can be planned and listings checked. */
export function encryptedSize(plainBytes: number, chunkLog2: number = DEFAULT_CHUNK_LOG2): number {
  return HEADER_BYTES + plainBytes + chunkCount(plainBytes, chunkLog2) * TAG_BYTES;
}

/** The nonce of chunk `index`: a 32-bit big-endian counter, then the final-chunk flag. */
export function chunkNonce(index: number, final: boolean): Buffer {
  if (!Number.isInteger(index) || index < 0 || index > 0xffff_ffff) throw new RangeError(`chunk index ${index} out of range`);
  const nonce = Buffer.alloc(NONCE_BYTES);
  nonce.writeUInt32BE(index, NONCE_BYTES - 5);
  nonce[NONCE_BYTES - 1] = final ? 1 : 0;
  return nonce;
}
