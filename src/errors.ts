/**
 * Every failure memsync reports is an AppError of one kind. Vendor errors (AWS SDK, fs)
 * are translated at the edge that calls the vendor; the rest of the code, and the HTTP
 * layer's single status mapping, only ever see these kinds.
 */
export type ErrorKind =
  | 'config' // bad configuration: fix the environment and restart
  | 'bad_input' // a request or a name that cannot be valid
  | 'unauthenticated'
  | 'forbidden' // authenticated or not, this caller may not make this request (a foreign origin or host)
  | 'unsupported_media_type' // a request body of a type the route does not take
  | 'not_found' // unknown snapshot or object
  | 'conflict' // same name, different content: never overwritten
  | 'remote_unavailable' // network failure, 5xx, throttling: worth retrying
  | 'remote_rejected' // 4xx from the store that retrying will not fix (credentials, missing bucket)
  | 'object_refused' // the store refused one request for its own content (key too long, body too large): that snapshot fails, the store is fine
  | 'integrity' // what the store holds is not what was sent or what the manifest says
  | 'encryption_key' // an encrypted snapshot and no key, or not the key it was written with
  | 'local_io' // reading or writing the local disk failed
  | 'snapshot_gone' // the snapshot was deleted or rewritten while being worked on
  | 'cancelled' // stopped on purpose (shutdown, superseded)
  | 'disabled'; // the feature is switched off

export interface AppErrorOptions {
  cause?: unknown;
  /** Overrides the kind's default. */
  retryable?: boolean;
  /** What an operator can do about it. */
  hint?: string;
  /** Structured detail safe to show to a client (no secrets, no internals). */
  details?: Record<string, unknown>;
}

const RETRYABLE_BY_DEFAULT: ReadonlySet<ErrorKind> = new Set(['remote_unavailable', 'integrity']);

export class AppError extends Error {
  readonly kind: ErrorKind;
  readonly retryable: boolean;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(kind: ErrorKind, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.kind = kind;
    this.retryable = options.retryable ?? RETRYABLE_BY_DEFAULT.has(kind);
    this.hint = options.hint;
    this.details = options.details;
  }
}

export function isAppError(error: unknown, kind?: ErrorKind): error is AppError {
  return error instanceof AppError && (kind === undefined || error.kind === kind);
}

/** A one-line description of any thrown value, including the chain of causes. */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth += 1) {
    if (current instanceof Error) {
      const code = (current as { code?: unknown }).code;
      parts.push(typeof code === 'string' && !current.message.includes(code) ? `${current.message} (${code})` : current.message);
      current = current.cause;
    } else {
      parts.push(String(current));
      break;
    }
  }
  return parts.filter((part) => part.length > 0).join(': ');
}

/** Wraps anything thrown into an AppError of the given kind, keeping AppErrors as they are. */
export function asAppError(error: unknown, kind: ErrorKind, context: string): AppError {
  if (error instanceof AppError) return error;
  return new AppError(kind, `${context}: ${describeError(error)}`, { cause: error });
}
