import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { AppError } from '../errors.js';

/**
 * Where FsRemoteStore keeps what: an object's key is a path under the store's root (the mounted
 * directory plus the prefix), so the folder is a plain copy of the snapshots. Beside each object
 * lie two kinds of dot-files of the store's own, which no listing shows: the sidecar holding the
 * object's ETag and metadata, and the temporary file an object is written to before it is put
 * in place (what an unfinished multipart upload is to S3). Pure: names only, no I/O.
 */

/** Prefix of an object being written; listed as an unfinished upload, never as an object. */
export const TEMP_PREFIX = '.memsync-tmp-';
/** Prefix of an object's sidecar (ETag, metadata, which file it describes). */
export const SIDECAR_PREFIX = '.memsync-object.';
/** Most file systems allow names of up to 255 bytes. */
const NAME_MAX_BYTES = 255;
const UPLOAD_ID_HEX = 16;

/** Whether a directory entry is the store's own bookkeeping, never an object. */
export function isStoreOwnName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX) || name.startsWith(SIDECAR_PREFIX);
}

/**
 * Refuses a key that cannot name a file under the root: empty or dot segments would name another
 * place than the key says, and a segment with the store's own prefixes would be hidden from
 * listings. memsync's keys never are any of these; the check keeps a bug from writing elsewhere.
 */
export function checkKey(key: string): void {
  const problem = keyProblem(key);
  if (problem !== undefined) throw new AppError('object_refused', `key ${JSON.stringify(key.slice(0, 200))} ${problem}`, { retryable: false, details: { code: 'InvalidKey' } });
}

function keyProblem(key: string): string | undefined {
  if (key.length === 0) return 'is empty';
  if (key.includes('\0') || key.includes('\\')) return 'contains a NUL or a backslash';
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') return 'has an empty, "." or ".." segment';
    if (Buffer.byteLength(segment, 'utf8') > NAME_MAX_BYTES) return `has a segment longer than ${NAME_MAX_BYTES} bytes, which the file system cannot name`;
    if (isStoreOwnName(segment)) return `has a segment starting with ${TEMP_PREFIX} or ${SIDECAR_PREFIX}, names the directory store keeps for itself`;
  }
  return undefined;
}

/** The key's directory part ('' at the root) and its last segment. */
export function splitKey(key: string): { dirKey: string; base: string } {
  const slash = key.lastIndexOf('/');
  return slash < 0 ? { dirKey: '', base: key } : { dirKey: key.slice(0, slash), base: key.slice(slash + 1) };
}

export function joinKey(dirKey: string, name: string): string {
  return dirKey === '' ? name : `${dirKey}/${name}`;
}

/** The absolute path of a key (or directory key) under `root`. */
export function pathOf(root: string, key: string): string {
  return key === '' ? root : path.join(root, ...key.split('/'));
}

/** A name that fits the file system: `prefix + base` when it does, else `prefix` and a digest of `base`. */
function boundedName(prefix: string, base: string): string {
  const whole = `${prefix}${base}`;
  return Buffer.byteLength(whole, 'utf8') <= NAME_MAX_BYTES ? whole : `${prefix}#${createHash('sha256').update(base).digest('hex')}`;
}

/** The sidecar of the object named `base`, in the same directory. */
export function sidecarName(base: string): string {
  return boundedName(SIDECAR_PREFIX, base);
}

/** A fresh temporary name for writing the object `base` (its upload id is the whole name). */
export function temporaryName(base: string): string {
  return boundedName(`${TEMP_PREFIX}${randomBytes(UPLOAD_ID_HEX / 2).toString('hex')}.`, base);
}

/**
 * The object a temporary file was going to be, from its name; the temporary name itself when
 * the object's name was too long to keep in it. Undefined for names that are no temporary file.
 */
export function targetOfTemporary(name: string): string | undefined {
  if (!name.startsWith(TEMP_PREFIX)) return undefined;
  const rest = name.slice(TEMP_PREFIX.length + UPLOAD_ID_HEX);
  if (!/^[0-9a-f]+$/.test(name.slice(TEMP_PREFIX.length, TEMP_PREFIX.length + UPLOAD_ID_HEX)) || !rest.startsWith('.')) return undefined;
  const base = rest.slice(1);
  return base === '' || /^#[0-9a-f]{64}$/.test(base) ? name : base;
}

/** Whether `uploadId` can be a temporary name this store made (so an abort never unlinks anything else). */
export function isTemporaryName(uploadId: string): boolean {
  return !uploadId.includes('/') && targetOfTemporary(uploadId) !== undefined;
}
