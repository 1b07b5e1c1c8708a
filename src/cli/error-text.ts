import { describeError, isAppError, type ErrorKind } from '../errors.js';

/**
 * How a failure reads to the person who ran a command: what happened (a word for the kind of
 * failure a script can grep, then the message), to what (the store, when the store is
 * involved), and what to do (the hint). Pure.
 */

/** Refusals and silence are different problems with different fixes: say which one this is. */
const HEADLINE: Partial<Record<ErrorKind, string>> = {
  remote_rejected: 'REFUSED',
  remote_unavailable: 'UNREACHABLE',
};

const STORE_SITUATION: Partial<Record<ErrorKind, string>> = {
  remote_rejected: 'it answered and refused; running the command again will not help until this is fixed',
  remote_unavailable: 'no usable answer',
};

/**
 * What to do about a local system error that carries no hint of its own, by its errno code.
 * The message already names the path and the system call.
 */
const SYSTEM_ERROR_HINTS: Record<string, string> = {
  EEXIST: 'a file is where a directory is needed: move it aside or point the configuration at a directory',
  ENOTDIR: 'a part of that path is a file, not a directory: fix the path in the configuration',
  ENOENT: 'that path does not exist: create it or fix the path in the configuration',
  EACCES: 'memsync may not use that path: check its owner and permissions against the user memsync runs as',
  EPERM: 'memsync may not use that path: check its owner and permissions against the user memsync runs as',
  EROFS: 'that filesystem is read-only: use a writable directory',
  ENOSPC: 'the disk is full: free some space, then run the command again',
  EMFILE: 'too many open files: raise the limit (ulimit -n), then run the command again',
};

export interface ErrorTextOptions {
  /** Where the store is (`s3://bucket/prefix at endpoint`), shown with refusals and silence. */
  storeLocation?: string | undefined;
}

export function errorText(error: unknown, options: ErrorTextOptions = {}): string {
  const kind = isAppError(error) ? error.kind : undefined;
  const headline = kind === undefined ? undefined : HEADLINE[kind];
  const lines = [`memsync: ${headline === undefined ? '' : `${headline}: `}${describeError(error)}`];
  const situation = kind === undefined ? undefined : STORE_SITUATION[kind];
  if (situation !== undefined && options.storeLocation !== undefined) lines.push(`  store: ${options.storeLocation} (${situation})`);
  const hint = hintFor(error);
  if (hint !== undefined) lines.push(`  hint: ${hint}`);
  const differing = differingFiles(error);
  if (differing.length > 0) lines.push(`  differing files: ${differing.slice(0, 10).join(', ')}${differing.length > 10 ? ` and ${differing.length - 10} more` : ''}`);
  return `${lines.join('\n')}\n`;
}

/** Kinds whose system error is about this machine's files: another kind's errno (a directory store's ENOENT) means something else. */
const LOCAL_KINDS: ReadonlySet<string> = new Set(['local_io', 'config', 'snapshot_gone']);

/** The error's own hint; else, for a local system error anywhere in its causes, what its code calls for. */
export function hintFor(error: unknown): string | undefined {
  if (isAppError(error) && error.hint !== undefined) return error.hint;
  if (isAppError(error) && !LOCAL_KINDS.has(error.kind)) return undefined;
  const code = systemErrorCode(error);
  return code === undefined ? undefined : SYSTEM_ERROR_HINTS[code];
}

function systemErrorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < 5; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && Object.hasOwn(SYSTEM_ERROR_HINTS, code)) return code;
    current = current.cause;
  }
  return undefined;
}

function differingFiles(error: unknown): string[] {
  if (!isAppError(error)) return [];
  const differing = error.details?.differingFiles;
  if (!Array.isArray(differing)) return [];
  return differing.map((d: unknown) => (typeof d === 'object' && d !== null && typeof (d as { path?: unknown }).path === 'string' ? (d as { path: string }).path : String(d)));
}
