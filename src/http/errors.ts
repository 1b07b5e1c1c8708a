import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, describeError, type ErrorKind } from '../errors.js';
import type { Logger } from '../log.js';

/** The one place where error kinds become HTTP statuses. */
export const STATUS_BY_KIND: Record<ErrorKind, number> = {
  bad_input: 400,
  unauthenticated: 401,
  forbidden: 403,
  unsupported_media_type: 415,
  not_found: 404,
  conflict: 409,
  snapshot_gone: 409,
  integrity: 502,
  // The request is understood, but the configured key cannot open that snapshot.
  encryption_key: 422,
  remote_unavailable: 503,
  remote_rejected: 503,
  // The store works but will not take this snapshot as it is (e.g. a path too long for a key).
  object_refused: 422,
  disabled: 503,
  cancelled: 503,
  config: 500,
  local_io: 500,
};

/** What a client may see of a server-side failure: the kind, never internals. */
const PUBLIC_5XX_MESSAGE: Partial<Record<ErrorKind, string>> = {
  remote_unavailable: 'the remote store is unavailable; memsync retries, see its log for details',
  remote_rejected: 'the remote store refused the request; see memsync\'s log for details',
  integrity: 'data from the remote store failed verification; nothing was written, see memsync\'s log',
  cancelled: 'memsync is stopping',
  disabled: 'cloud sync is disabled',
  local_io: 'a local disk operation failed; see memsync\'s log',
  config: 'memsync is misconfigured; see its log',
};

export interface ErrorBody {
  error: string;
  message: string;
  hint?: string | undefined;
  details?: Record<string, unknown> | undefined;
}

export function errorBody(error: AppError): { status: number; body: ErrorBody } {
  const status = STATUS_BY_KIND[error.kind];
  if (status >= 500) return { status, body: { error: error.kind, message: PUBLIC_5XX_MESSAGE[error.kind] ?? 'internal error' } };
  return { status, body: { error: error.kind, message: error.message, hint: error.hint, details: error.details } };
}

export function makeErrorHandler(log: Logger) {
  return (error: FastifyError | AppError | Error, request: FastifyRequest, reply: FastifyReply): void => {
    if (error instanceof AppError) {
      const { status, body } = errorBody(error);
      if (status >= 500) log.error('request failed', { method: request.method, url: request.url, kind: error.kind, error: describeError(error), hint: error.hint });
      void reply.status(status).send(body);
      return;
    }
    const fastifyError = error as FastifyError;
    if (fastifyError.validation !== undefined || (fastifyError.statusCode !== undefined && fastifyError.statusCode < 500)) {
      void reply.status(fastifyError.statusCode ?? 400).send({ error: 'bad_input', message: fastifyError.message });
      return;
    }
    log.error('request failed', { method: request.method, url: request.url, error: describeError(error) });
    void reply.status(500).send({ error: 'internal', message: 'internal error' });
  };
}
