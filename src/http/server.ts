import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { accessOf, checkRequestOrigin, type RouteAccess } from './access.js';
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
  /** Overrides of DEFAULT_HTTP_LIMITS (tests shorten them). */
  limits?: Partial<HttpLimits>;
}

/** Requests carry no bodies worth more than this; anything larger is refused before parsing. */
const BODY_LIMIT_BYTES = 16 * 1024;
/**
 * The router refuses longer path parameters before any schema sees them (its default is 100
 * characters, below the 200 a snapshot name may have); up to this length the schema answers.
 */
const MAX_PARAM_LENGTH = 1024;
/**
 * Bounds on what a client that sends nothing useful can hold. A request's headers and its body
 * (at most BODY_LIMIT_BYTES) must arrive in seconds; an idle keep-alive connection closes soon.
 * There is deliberately no socket-inactivity timeout: a restore answers only when it is done,
 * minutes later, and the socket is silent until then.
 */
export interface HttpLimits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** How often Node looks for requests over their deadline (its default, 30 s, would let them live twice as long). */
  timeoutCheckIntervalMs: number;
  /** The API serves an operator and a scraper: a few dozen connections are plenty, and a flood cannot take every descriptor. */
  maxConnections: number;
}
export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  keepAliveTimeoutMs: 10_000,
  timeoutCheckIntervalMs: 2_000,
  maxConnections: 64,
};

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
  const limits = { ...DEFAULT_HTTP_LIMITS, ...deps.limits };
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT_BYTES,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: { headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: limits.timeoutCheckIntervalMs },
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

  app.server.maxConnections = limits.maxConnections;
  // No body is required, but a POST without a token must say JSON (see access.ts); an empty one is fine.
  // The framework's parser stays in charge of the JSON itself (it refuses __proto__ and constructor keys).
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    parseJson(request, text, done);
  });

  const routes: RegisteredRoute[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url, access: accessOf(route.config) });
  });
  routeTables.set(app, routes);

  const checkToken = makeTokenCheck(deps.apiToken);
  app.addHook('onRequest', async (request) => {
    rejectTraversal(request.url.split('?')[0] ?? '');
    if (accessOf(request.routeOptions.config) === 'public') return;
    checkRequestOrigin(
      { method: request.method, host: request.headers.host, origin: request.headers.origin, contentType: request.headers['content-type'] },
      deps.apiToken !== undefined,
    );
    checkToken(request.headers.authorization);
  });

  registerHealthRoutes(app, deps.readiness);
  registerSyncRoutes(app, deps.sync);
  registerMetricsRoutes(app, deps.metrics, deps.metricsOpen);
  app.get('/docs', { schema: { hide: true } }, async () => app.swagger());
  return app;
}

export interface RegisteredRoute {
  method: string;
  url: string;
  access: RouteAccess;
}
const routeTables = new WeakMap<FastifyInstance, readonly RegisteredRoute[]>();

/** Every route the server registered and who may call it, for tests that walk the whole table. */
export function registeredRoutes(app: FastifyInstance): readonly RegisteredRoute[] {
  return routeTables.get(app) ?? [];
}
