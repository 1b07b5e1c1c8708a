import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { healthResponse, readyResponse } from '../schemas.js';

export interface Readiness {
  enabled: boolean;
  config: boolean;
  watcher: boolean;
  /** The last call to the store succeeded (false when disabled: no call is made). */
  remote: boolean;
  /** The last save to the state directory succeeded (true when disabled: nothing to save). */
  state: boolean;
  /** No open or read of a backup file is stuck past its deadline (a FIFO, a hung mount). */
  localFiles: boolean;
}

/** Unauthenticated probes for container health checks. */
export function registerHealthRoutes(app: FastifyInstance, readiness: () => Readiness): void {
  const typed = app.withTypeProvider<ZodTypeProvider>();
  typed.get('/healthz', { config: { access: 'public' }, schema: { summary: 'Process alive', response: { 200: healthResponse } } }, async () => ({ status: 'ok' as const }));
  typed.get('/readyz', { config: { access: 'public' }, schema: { summary: 'Config valid, watcher running, last S3 call succeeded', response: { 200: readyResponse, 503: readyResponse } } }, async (_request, reply) => {
    const r = readiness();
    const ready = r.config && (!r.enabled || (r.watcher && r.remote && r.state && r.localFiles));
    return reply.status(ready ? 200 : 503).send({ ready, enabled: r.enabled, checks: { config: r.config, watcher: r.watcher, remote: r.remote, state: r.state, localFiles: r.localFiles } });
  });
}
