import type { FastifyInstance } from 'fastify';

/** What the route needs of the metrics module: the exposition text and its content type. */
export interface MetricsEndpoint {
  readonly contentType: string;
  render(): Promise<string>;
}

/** Prometheus scrape endpoint: public when `open` (CLOUD_SYNC_METRICS_OPEN), protected like every other route otherwise. */
export function registerMetricsRoutes(app: FastifyInstance, metrics: MetricsEndpoint, open: boolean): void {
  const security = open ? [] : [{ bearer: [] }];
  app.get('/metrics', { ...(open ? { config: { access: 'public' as const } } : {}), schema: { summary: 'Prometheus metrics (text exposition format)', security } }, async (_request, reply) =>
    reply.type(metrics.contentType).send(await metrics.render()),
  );
}
