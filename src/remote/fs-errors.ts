import { AppError } from '../errors.js';

/**
 * File-system errors of the directory store in memsync's kinds, at the store's edge. A mounted
 * directory fails like a remote server: a mount that hangs or went stale is worth retrying; a
 * directory memsync may not write is an operator's to fix; a name the file system cannot hold
 * fails only the snapshot it belongs to.
 */

/** The errno code of a Node fs error, or undefined. */
export function errnoOf(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function isMissing(error: unknown): boolean {
  const code = errnoOf(error);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** ELOOP on Linux, EMLINK on the BSDs: an open with O_NOFOLLOW met a link. */
export function isLinkRefused(error: unknown): boolean {
  const code = errnoOf(error);
  return code === 'ELOOP' || code === 'EMLINK';
}

const REFUSED_BY_PERMISSION = new Set(['EACCES', 'EPERM', 'EROFS']);
/** One object's name or shape the file system cannot hold; the store itself is fine. */
const REFUSED_OBJECT = new Set(['ENAMETOOLONG', 'EISDIR', 'ENOTDIR', 'EEXIST', 'EFBIG', 'EINVAL']);

/**
 * Translates a failed file operation on the store's directory; AppErrors pass through as they are.
 * A missing file is `not_found` when reading an object; while writing one, the directory itself
 * went away (an unmounted share), which is `remote_unavailable`.
 */
export function translateFsError(error: unknown, operation: string, missing: 'not_found' | 'remote_unavailable' = 'not_found'): AppError {
  if (error instanceof AppError) return error;
  const code = errnoOf(error) ?? 'unknown error';
  const context = `${operation}: ${code}`;
  if (code === 'ABORT_ERR') return new AppError('cancelled', `${operation}: aborted`, { cause: error });
  if (code === 'ENOENT') return new AppError(missing, context, { cause: error, details: { code: 'NoSuchKey' } });
  if (REFUSED_BY_PERMISSION.has(code)) {
    return new AppError('remote_rejected', context, { cause: error, hint: 'make CLOUD_SYNC_BUCKET (the directory) readable and writable by the user memsync runs as, and mounted read-write' });
  }
  if (REFUSED_OBJECT.has(code)) return new AppError('object_refused', context, { cause: error, retryable: false, details: { code } });
  // ENOSPC, EDQUOT, EIO, ESTALE, ETIMEDOUT, ENOTCONN and anything else: the mount may recover.
  return new AppError('remote_unavailable', context, { cause: error, details: { code } });
}

/** A function, not a narrowed property: a callback in between (onPart, onPartDone) may abort the signal. */
export function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}
