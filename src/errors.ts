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
    this.hint = options.hint === undefined ? undefined : asHintSentence(options.hint);
    this.details = options.details;
  }
}

export function isAppError(error: unknown, kind?: ErrorKind): error is AppError {
  return error instanceof AppError && (kind === undefined || error.kind === kind);
}

/**
 * A hint is a sentence of its own, wherever it is shown (CLI, HTTP body, log field): text built
 * to be appended to a message (" (check the bucket)") loses its leading punctuation and brackets.
 */
export function asHintSentence(raw: string): string | undefined {
  let text = raw.trim();
  const bracketed = text.startsWith('(') && text.endsWith(')');
  if (bracketed) text = text.slice(1, -1);
  text = text.replace(/^[\s(:;,.\-\u2013\u2014]+/, '').trim();
  return text === '' ? undefined : text;
}

/** What the SDK says when the server sent no message: nothing the code has not said. */
const SAYS_NOTHING: ReadonlySet<string> = new Set(['UnknownError', 'Unknown']);

/** One error's own words: its message, with its code when the message does not carry it. */
function ownText(error: Error): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code !== '' && !error.message.includes(code) ? `${error.message} (${code})` : error.message;
}

/**
 * What a cause adds to the text so far: nothing when the text already says it (a wrapper that
 * quoted its cause, an SDK placeholder), and never its code again when the wrapper ended with it
 * ("ENOTDIR" then "ENOTDIR: not a directory").
 */
function addedBy(text: string, said: string): string {
  if (said === '') return text;
  if (said.includes(text) || SAYS_NOTHING.has(text)) return '';
  const leadingCode = /^([A-Za-z][\w.]*): /.exec(text)?.[1];
  if (leadingCode !== undefined && said.endsWith(leadingCode)) return text.slice(leadingCode.length + 2);
  return text;
}

/** A one-line description of any thrown value, including the chain of causes, each thing said once. */
export function describeError(error: unknown): string {
  let said = '';
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth += 1) {
    const own = current instanceof Error ? ownText(current) : String(current);
    const added = addedBy(own, said);
    if (added !== '') said = said === '' ? added : `${said}: ${added}`;
    if (!(current instanceof Error)) break;
    current = current.cause;
  }
  return said;
}

/** Wraps anything thrown into an AppError of the given kind, keeping AppErrors as they are. */
export function asAppError(error: unknown, kind: ErrorKind, context: string): AppError {
  if (error instanceof AppError) return error;
  return new AppError(kind, `${context}: ${describeError(error)}`, { cause: error });
}
