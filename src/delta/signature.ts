import { createHash } from 'node:crypto';
import { AppError } from '../errors.js';
import type { Chunk } from './chunker.js';
import { CHUNK_HASH_BYTES, CHUNKER_VERSION, DEFAULT_CHUNKER_PARAMS, sameChunkerParams, type ChunkerParams } from './chunker-params.js';

/**
 * The signature of a stored file version: its chunks, its size and SHA-256, and how it was cut.
 * Stored beside the object, it lets the next version be composed from ranges of this one without
 * reading it back. The bytes come from the bucket, where anyone with write access could put
 * anything: the parser trusts nothing it reads, and bounds everything before allocating.
 *
 * Layout (big-endian), deterministic for a given signature:
 *   0  "MSIG"                      4  format version (1)    5  chunker version
 *   6  chunk hash bytes (u16, 16)  8  min, normal, max chunk bytes (3 x u32)
 *   20 file size (u64)             28 file SHA-256 (32 bytes)   60 chunk count (u32)
 *   64 per chunk: length (u32) and hash (16 bytes); offsets are not stored but implied, so
 *      chunks are contiguous from 0 by construction and their lengths must add up to the size
 *   then the SHA-256 of everything before it, so a damaged object is refused as such.
 */

export interface Signature {
  chunkerVersion: number;
  params: ChunkerParams;
  size: number;
  /** SHA-256 of the whole file, hex. */
  sha256: string;
  chunks: Chunk[];
}

export const SIGNATURE_FORMAT_VERSION = 1;
const MAGIC = Buffer.from('MSIG', 'ascii');
const HEADER_BYTES = 64;
const ENTRY_BYTES = 4 + CHUNK_HASH_BYTES;
const TRAILER_BYTES = 32;

/** The sizes each chunker version cuts with: a signature claiming other sizes is not memsync's. */
const PARAMS_BY_VERSION: ReadonlyMap<number, Readonly<ChunkerParams>> = new Map([[CHUNKER_VERSION, DEFAULT_CHUNKER_PARAMS]]);

/**
 * Files above this get no signature and are uploaded whole. 64 GiB is 64 times the largest file
 * a memory-service backup holds, and bounds a signature to about 40 MiB (a file of the minimum
 * chunk size everywhere), which a planner can hold in memory.
 */
export const MAX_SIGNED_FILE_BYTES = 64 * 1024 ** 3;

const HEX_HASH = new RegExp(`^[0-9a-f]{${CHUNK_HASH_BYTES * 2}}$`);
const HEX_SHA256 = /^[0-9a-f]{64}$/;

function refuse(reason: string): AppError {
  // Reading the same object again gives the same bytes: not worth a retry, the file goes up whole.
  return new AppError('integrity', `signature refused: ${reason}`, { retryable: false, hint: 'the file is uploaded whole instead' });
}

/** Most chunks a file of `size` bytes can have: all but the last are at least the minimum. */
function maxChunkCount(size: number, params: ChunkerParams): number {
  return size === 0 ? 0 : Math.floor((size - 1) / params.minChunkBytes) + 1;
}

/**
 * The largest signature of a file of `fileSizeBytes` (of any signed file without it), so a
 * reader can refuse a larger object before reading it.
 */
export function signatureByteLimit(fileSizeBytes: number = MAX_SIGNED_FILE_BYTES): number {
  const size = Math.min(Math.max(0, Math.floor(fileSizeBytes)), MAX_SIGNED_FILE_BYTES);
  return HEADER_BYTES + maxChunkCount(size, DEFAULT_CHUNKER_PARAMS) * ENTRY_BYTES + TRAILER_BYTES;
}

/** Checks what a signature claims against the rules its chunker version cuts by. */
function validate(signature: Signature): void {
  const params = PARAMS_BY_VERSION.get(signature.chunkerVersion);
  if (params === undefined) throw refuse(`unknown chunker version ${signature.chunkerVersion}`);
  if (!sameChunkerParams(params, signature.params)) throw refuse(`chunk sizes are not those of chunker version ${signature.chunkerVersion}`);
  const { size, chunks } = signature;
  if (!Number.isSafeInteger(size) || size < 0 || size > MAX_SIGNED_FILE_BYTES) throw refuse(`file size ${size} out of range`);
  if (!HEX_SHA256.test(signature.sha256)) throw refuse('file SHA-256 is not 64 hex digits');
  if (chunks.length > maxChunkCount(size, params)) throw refuse(`${chunks.length} chunks for ${size} bytes`);
  let offset = 0;
  for (const [index, chunk] of chunks.entries()) {
    const last = index === chunks.length - 1;
    if (chunk.offset !== offset) throw refuse(`chunk ${index} starts at ${chunk.offset}, not ${offset}`);
    const tooShort = chunk.length < (last ? 1 : params.minChunkBytes);
    if (!Number.isInteger(chunk.length) || tooShort || chunk.length > params.maxChunkBytes) throw refuse(`chunk ${index} has ${chunk.length} bytes`);
    if (!HEX_HASH.test(chunk.hash)) throw refuse(`chunk ${index} hash is not ${CHUNK_HASH_BYTES * 2} hex digits`);
    offset += chunk.length;
  }
  if (offset !== size) throw refuse(`chunks add up to ${offset} bytes, the file has ${size}`);
}

/** A signature of the default chunker from what one read pass gave; refuses chunks that do not tile the file. */
export function createSignature(chunks: readonly Chunk[], size: number, sha256: string): Signature {
  const signature: Signature = { chunkerVersion: CHUNKER_VERSION, params: { ...DEFAULT_CHUNKER_PARAMS }, size, sha256, chunks: [...chunks] };
  validate(signature);
  return signature;
}

export function serializeSignature(signature: Signature): Buffer {
  validate(signature); // never write what the parser would refuse
  const bytes = Buffer.alloc(HEADER_BYTES + signature.chunks.length * ENTRY_BYTES + TRAILER_BYTES);
  MAGIC.copy(bytes, 0);
  bytes.writeUInt8(SIGNATURE_FORMAT_VERSION, 4);
  bytes.writeUInt8(signature.chunkerVersion, 5);
  bytes.writeUInt16BE(CHUNK_HASH_BYTES, 6);
  bytes.writeUInt32BE(signature.params.minChunkBytes, 8);
  bytes.writeUInt32BE(signature.params.normalChunkBytes, 12);
  bytes.writeUInt32BE(signature.params.maxChunkBytes, 16);
  bytes.writeBigUInt64BE(BigInt(signature.size), 20);
  bytes.write(signature.sha256, 28, 'hex');
  bytes.writeUInt32BE(signature.chunks.length, 60);
  let at = HEADER_BYTES;
  for (const chunk of signature.chunks) {
    bytes.writeUInt32BE(chunk.length, at);
    bytes.write(chunk.hash, at + 4, 'hex');
    at += ENTRY_BYTES;
  }
  createHash('sha256').update(bytes.subarray(0, at)).digest().copy(bytes, at);
  return bytes;
}

export interface ExpectedFile {
  size?: number;
  sha256?: string;
}

/**
 * The signature in `bytes`, or an 'integrity' AppError. `expected` is what the manifest says of
 * the stored version: a signature of some other content is refused, not used.
 */
export function parseSignature(bytes: Uint8Array, expected: ExpectedFile = {}): Signature {
  const limit = signatureByteLimit(expected.size);
  if (bytes.length < HEADER_BYTES + TRAILER_BYTES || bytes.length > limit) throw refuse(`${bytes.length} bytes, expected ${HEADER_BYTES + TRAILER_BYTES} to ${limit}`);
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const body = data.subarray(0, data.length - TRAILER_BYTES);
  if (!createHash('sha256').update(body).digest().equals(data.subarray(body.length))) throw refuse('checksum mismatch (damaged or not a signature)');
  if (!data.subarray(0, 4).equals(MAGIC)) throw refuse('not a signature (magic)');
  if (data.readUInt8(4) !== SIGNATURE_FORMAT_VERSION) throw refuse(`unknown format version ${data.readUInt8(4)}`);
  if (data.readUInt16BE(6) !== CHUNK_HASH_BYTES) throw refuse(`chunk hashes of ${data.readUInt16BE(6)} bytes`);
  const size = data.readBigUInt64BE(20);
  if (size > BigInt(MAX_SIGNED_FILE_BYTES)) throw refuse(`file size ${size} out of range`);
  const count = data.readUInt32BE(60);
  if (body.length !== HEADER_BYTES + count * ENTRY_BYTES) throw refuse(`${count} chunks do not fit ${bytes.length} bytes`);
  const chunks: Chunk[] = [];
  let offset = 0;
  for (let at = HEADER_BYTES; at < body.length; at += ENTRY_BYTES) {
    const length = data.readUInt32BE(at);
    chunks.push({ offset, length, hash: data.toString('hex', at + 4, at + ENTRY_BYTES) });
    offset += length;
  }
  const signature: Signature = {
    chunkerVersion: data.readUInt8(5),
    params: { minChunkBytes: data.readUInt32BE(8), normalChunkBytes: data.readUInt32BE(12), maxChunkBytes: data.readUInt32BE(16) },
    size: Number(size),
    sha256: data.toString('hex', 28, 60),
    chunks,
  };
  validate(signature);
  if (expected.size !== undefined && signature.size !== expected.size) throw refuse(`describes ${signature.size} bytes, the stored file has ${expected.size}`);
  if (expected.sha256 !== undefined && signature.sha256 !== expected.sha256) throw refuse('describes another content (SHA-256 differs)');
  return signature;
}
