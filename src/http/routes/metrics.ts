import type { FastifyInstance } from 'fastify';

/** What the route needs of the metrics module: the exposition text and its content type. */
export interface MetricsEndpoint {
  readonly contentType: string;
  render(): Promise<string>;
}

/**
 * Prometheus scrape endpoint. Authentication is decided with the other routes in the server's
 * onRequest hook; `open` only documents it in the OpenAPI description.
 */
export function registerMetricsRoutes(app: FastifyInstance, metrics: MetricsEndpoint, open: boolean): void {
  const security = open ? [] : [{ bearer: [] }];
  app.get('/metrics', { schema: { summary: 'Prometheus metrics (text exposition format)', security } }, async (_request, reply) =>
    reply.type(metrics.contentType).send(await metrics.render()),
  );
}
