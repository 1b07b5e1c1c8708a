import { AppError } from '../errors.js';
import { parseSignature, serializeSignature, signatureByteLimit, type Signature } from './signature.js';

/**
 * The signatures of a snapshot's large files in one small object next to its manifest
 * (SIGNATURES_FILE_NAME), so an agent on another machine, with no state of its own, can compose
 * the next versions of those files too. JSON with each signature base64-encoded: a dot-file any
 * S3 tool lists and nothing has to understand. Read strictly: a bundle is only a hint, each
 * signature is checked against the manifest's size and SHA-256 before it is used.
 */

const FORMAT = 'memsync-signatures';
const VERSION = 1;
/** JSON and base64 around the signatures themselves. */
const ENVELOPE_BYTES_PER_FILE = 2048;

export function serializeSignatureBundle(signatures: ReadonlyMap<string, Signature>): Buffer {
  const files: Record<string, string> = {};
  for (const [path, signature] of [...signatures].sort(([a], [b]) => (a < b ? -1 : 1))) files[path] = serializeSignature(signature).toString('base64');
  return Buffer.from(JSON.stringify({ format: FORMAT, version: VERSION, files }));
}

/** The most a bundle for files of these sizes can legitimately take. */
export function signatureBundleByteLimit(fileSizes: readonly number[]): number {
  return fileSizes.reduce((sum, size) => sum + Math.ceil((signatureByteLimit(size) * 4) / 3) + ENVELOPE_BYTES_PER_FILE, ENVELOPE_BYTES_PER_FILE);
}

/**
 * The signature of `path` in a bundle, checked against what the manifest says of that file;
 * throws AppError integrity when the bundle or that entry is not one memsync wrote.
 */
export function signatureFromBundle(bytes: Buffer, path: string, expected: { size: number; sha256: string }): Signature | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new AppError('integrity', 'signature bundle is not JSON', { retryable: false });
  }
  if (typeof parsed !== 'object' || parsed === null) throw new AppError('integrity', 'signature bundle is not an object', { retryable: false });
  const { format, version, files } = parsed as { format?: unknown; version?: unknown; files?: unknown };
  if (format !== FORMAT || version !== VERSION || typeof files !== 'object' || files === null || Array.isArray(files)) {
    throw new AppError('integrity', `signature bundle is not ${FORMAT} version ${VERSION}`, { retryable: false });
  }
  if (!Object.hasOwn(files, path)) return undefined;
  const encoded = (files as Record<string, unknown>)[path];
  if (typeof encoded !== 'string' || encoded.length > Math.ceil((signatureByteLimit(expected.size) * 4) / 3) + 4) {
    throw new AppError('integrity', `signature bundle entry for ${JSON.stringify(path)} is not a signature of a ${expected.size}-byte file`, { retryable: false });
  }
  return parseSignature(Buffer.from(encoded, 'base64'), expected);
}
