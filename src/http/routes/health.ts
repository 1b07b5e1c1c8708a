import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { healthResponse, readyQuery, readyResponse, type ReadinessCheck } from '../schemas.js';

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

/**
 * Ready when every check not excluded passes; while disabled, a valid configuration is enough.
 * Excluding `remote` gives a sidecar a probe of memsync's own health: its readiness is the pod's,
 * and a store outage must not take the service beside it out of its Service.
 */
export function isReady(readiness: Readiness, excluded: readonly ReadinessCheck[]): boolean {
  const passes = (check: ReadinessCheck): boolean => excluded.includes(check) || readiness[check];
  return passes('config') && (!readiness.enabled || (passes('watcher') && passes('remote') && passes('state') && passes('localFiles')));
}

/** Unauthenticated probes for container health checks. */
export function registerHealthRoutes(app: FastifyInstance, readiness: () => Readiness): void {
  const typed = app.withTypeProvider<ZodTypeProvider>();
  typed.get('/healthz', { config: { access: 'public' }, schema: { summary: 'Process alive', response: { 200: healthResponse } } }, async () => ({ status: 'ok' as const }));
  typed.get(
    '/readyz',
    {
      config: { access: 'public' },
      schema: {
        summary: 'Config valid, watcher running, last S3 call succeeded, state saved, no backup-file operation stuck; ?exclude=remote leaves the store out',
        querystring: readyQuery,
        response: { 200: readyResponse, 503: readyResponse },
      },
    },
    async (request, reply) => {
      const r = readiness();
      const excluded = request.query.exclude;
      const ready = isReady(r, excluded);
      const checks = { config: r.config, watcher: r.watcher, remote: r.remote, state: r.state, localFiles: r.localFiles };
      return reply.status(ready ? 200 : 503).send({ ready, enabled: r.enabled, checks, ...(excluded.length > 0 ? { excluded } : {}) });
    },
  );
}
