import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { makeTokenCheck } from './auth.js';
import { makeErrorHandler } from './errors.js';
import { registerHealthRoutes, type Readiness } from './routes/health.js';
import { registerMetricsRoutes, type MetricsEndpoint } from './routes/metrics.js';
import { registerSyncRoutes, type SyncApi } from './routes/sync.js';

export interface HttpDeps {
  /** Undefined when cloud sync is disabled: /sync/* then answer 503. */
  sync: SyncApi | undefined;
  readiness: () => Readiness;
  apiToken: string | undefined;
  metrics: MetricsEndpoint;
  /** CLOUD_SYNC_METRICS_OPEN: /metrics answers without the token, for scrapers that cannot send one. */
  metricsOpen: boolean;
  log: Logger;
}

/** Requests carry no bodies worth more than this; anything larger is refused before parsing. */
const BODY_LIMIT_BYTES = 16 * 1024;
/**
 * The router refuses longer path parameters before any schema sees them (its default is 100
 * characters, below the 200 a snapshot name may have); up to this length the schema answers.
 */
const MAX_PARAM_LENGTH = 1024;

/**
 * Dot segments are resolved by routing before any handler sees them (`/sync/restore/%2e%2e`
 * would become `/sync/`); refuse them outright so every traversal attempt gets the same 400.
 */
function rejectTraversal(rawPath: string): void {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    throw new AppError('bad_input', 'malformed percent-encoding in the URL');
  }
  if (decoded.split(/[/\\]/).some((segment) => segment === '..' || segment === '.') || decoded.includes('\0')) {
    throw new AppError('bad_input', 'path traversal is not allowed in URLs');
  }
}

function frameworkErrorMessage(code: string): string {
  if (code === 'FST_ERR_BAD_URL') return 'malformed percent-encoding in the URL';
  if (code === 'FST_ERR_MAX_PARAM_LENGTH') return `a path parameter is longer than ${MAX_PARAM_LENGTH} characters`;
  return 'the URL cannot be routed';
}

/** Builds the API without listening, so tests drive it with inject() and main decides where it listens. */
export async function buildServer(deps: HttpDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT_BYTES,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    return503OnClosing: true,
    // URLs the router cannot take apart (bad percent-encoding, an over-long parameter) get the
    // same error shape as every other bad request, instead of the framework's own.
    frameworkErrors: (error, _request, reply) => {
      void (reply as FastifyReply).status(400).send({ error: 'bad_input', message: frameworkErrorMessage(error.code) });
    },
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(makeErrorHandler(deps.log));
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ error: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0] ?? ''}` });
  });

  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'memsync', description: 'Cloud sync of memory-service backups to S3-compatible storage', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    transform: jsonSchemaTransform,
  });

  const checkToken = makeTokenCheck(deps.apiToken);
  app.addHook('onRequest', async (request) => {
    const path = request.url.split('?')[0] ?? '';
    rejectTraversal(path);
    if (path === '/docs' || path.startsWith('/sync/') || (path === '/metrics' && !deps.metricsOpen)) checkToken(request.headers.authorization);
  });

  registerHealthRoutes(app, deps.readiness);
  registerSyncRoutes(app, deps.sync);
  registerMetricsRoutes(app, deps.metrics, deps.metricsOpen);
  app.get('/docs', { schema: { hide: true } }, async () => app.swagger());
  return app;
}
