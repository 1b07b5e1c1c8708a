import { isAppError, type ErrorKind } from '../errors.js';

/** What a CLI exit code means; the same numbers the agent uses for configuration (2) and a refusing store (3). Listed in `memsync --help`. */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  remoteRejected: 3,
  remoteUnavailable: 4,
  conflict: 5,
  verificationFailed: 6,
  interrupted: 130,
} as const;

/** The one place where error kinds become exit codes (as http/errors.ts maps them to statuses). */
const EXIT_BY_KIND: Record<ErrorKind, number> = {
  config: EXIT.usage,
  bad_input: EXIT.usage,
  disabled: EXIT.usage,
  remote_rejected: EXIT.remoteRejected,
  object_refused: EXIT.failed,
  unauthenticated: EXIT.remoteRejected,
  // The HTTP API's refusals; the CLI never makes requests that meet them.
  forbidden: EXIT.usage,
  unsupported_media_type: EXIT.usage,
  remote_unavailable: EXIT.remoteUnavailable,
  conflict: EXIT.conflict,
  integrity: EXIT.verificationFailed,
  encryption_key: EXIT.usage,
  cancelled: EXIT.interrupted,
  not_found: EXIT.failed,
  local_io: EXIT.failed,
  snapshot_gone: EXIT.failed,
};

export function exitCodeForKind(kind: ErrorKind | string): number {
  return Object.hasOwn(EXIT_BY_KIND, kind) ? EXIT_BY_KIND[kind as ErrorKind] : EXIT.failed;
}

export function exitCodeFor(error: unknown): number {
  return isAppError(error) ? exitCodeForKind(error.kind) : EXIT.failed;
}
