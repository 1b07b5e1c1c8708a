import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import type { SyncApi } from '../../src/http/routes/sync.js';
import { buildServer, registeredRoutes, type RegisteredRoute } from '../../src/http/server.js';
import { isForeignOrigin, isJsonContentType, isLoopbackHost } from '../../src/http/access.js';
import { seededRandom } from '../helpers/random.js';

const TOKEN = 'access-test-token-0123456789';
const SNAPSHOT = 'auto_20260101_000000';
const REACHED = 'protected handler reached';
const JSON_TYPE = { 'content-type': 'application/json' };

/** A sync API whose every entry point records the call and answers a recognisable 409. */
function recordingSync(calls: string[]): SyncApi {
  const reached = (what: string) => (): never => {
    calls.push(what);
    throw new AppError('conflict', REACHED);
  };
  return {
    upload: async () => reached('upload')(),
    describeDownload: async () => reached('describeDownload')(),
    download: async () => reached('download')(),
    restore: async () => reached('restore')(),
    status: reached('status'),
    remoteIndex: async () => reached('remoteIndex')(),
    serviceConfigured: true,
  };
}

interface Harness {
  app: FastifyInstance;
  calls: string[];
  metricsRendered: number;
}

async function harness(options: { token: string | undefined; metricsOpen?: boolean }): Promise<Harness> {
  const calls: string[] = [];
  const state = { metricsRendered: 0 };
  const app = await buildServer({
    sync: recordingSync(calls),
    readiness: () => ({ enabled: true, config: true, watcher: true, remote: true, state: true, localFiles: true }),
    apiToken: options.token,
    metrics: {
      contentType: 'text/plain; version=0.0.4',
      render: async () => {
        state.metricsRendered += 1;
        return 'memsync_up 1\n';
      },
    },
    metricsOpen: options.metricsOpen ?? false,
    log: silentLogger,
  });
  await app.ready();
  return {
    app,
    calls,
    get metricsRendered() {
      return state.metricsRendered;
    },
  };
}

/** A concrete, routable URL for a registered route (parameters filled, confirmations given). */
function concretePath(route: RegisteredRoute): string {
  return route.url.replace(/:[A-Za-z]+/g, SNAPSHOT).replace(/\*$/, 'anything');
}
function queryFor(route: RegisteredRoute): string {
  return route.method === 'POST' ? '?confirm=true' : '';
}

function percent(char: string, upper: boolean): string {
  const hex = char.charCodeAt(0).toString(16).padStart(2, '0');
  return `%${upper ? hex.toUpperCase() : hex.toLowerCase()}`;
}

/** Spellings of one path that a client might hope the guard and the router read differently. */
function variants(path: string): string[] {
  const out = new Set<string>();
  for (let i = 0; i < path.length; i += 1) {
    const char = path[i] as string;
    const before = path.slice(0, i);
    const after = path.slice(i + 1);
    out.add(`${before}${percent(char, true)}${after}`);
    out.add(`${before}${percent(char, false)}${after}`);
    out.add(`${before}%25${percent(char, true).slice(1)}${after}`);
  }
  const segments = path.split('/');
  out.add(path.toUpperCase());
  out.add(segments.map((s) => (s.length > 0 ? `${s[0]?.toUpperCase() ?? ''}${s.slice(1)}` : s)).join('/'));
  out.add(`${path}/`);
  out.add(`/${path}`);
  out.add(path.replace(/\//g, '//'));
  out.add(path.replace(/\//g, '%2F'));
  out.add(path.replace(/\//g, '%2f'));
  out.add(`${path};x=1`);
  out.add(`${path}%00`);
  out.add(`${path}%20`);
  out.add(`${path}#frag`);
  out.add(encodeURIComponent(path));
  out.add(path.split('').map((c) => (c === '/' ? c : percent(c, true))).join(''));
  out.add(path);
  return [...out];
}

async function send(app: FastifyInstance, options: InjectOptions) {
  const response = await app.inject(options);
  return { status: response.statusCode, body: response.body };
}

describe('route access', () => {
  let secured: Harness;
  beforeAll(async () => {
    secured = await harness({ token: TOKEN });
  });
  afterAll(async () => secured.app.close());

  it('declares only the health probes public, and every other route protected', () => {
    const table = registeredRoutes(secured.app);
    expect(table.length).toBeGreaterThan(8);
    const publicRoutes = table.filter((route) => route.access === 'public').map((route) => `${route.method} ${route.url}`);
    expect(publicRoutes.sort()).toEqual(['GET /healthz', 'GET /readyz', 'HEAD /healthz', 'HEAD /readyz']);
  });

  it('reaches every protected route with the token, so the walk below exercises real handlers', async () => {
    for (const route of registeredRoutes(secured.app).filter((r) => r.access === 'protected' && r.method !== 'HEAD')) {
      const answer = await send(secured.app, { method: route.method as 'GET', url: `${concretePath(route)}${queryFor(route)}`, headers: { authorization: `Bearer ${TOKEN}`, ...JSON_TYPE } });
      if (route.url === '/sync/*') continue;
      expect(answer.status, `${route.method} ${route.url}`).toBeLessThan(500);
      if (route.url.startsWith('/sync/')) expect(answer.body, `${route.method} ${route.url}`).toContain(REACHED);
    }
  });

  it('never runs a protected handler without the token, whatever the spelling of the path', async () => {
    const protectedRoutes = registeredRoutes(secured.app).filter((route) => route.access === 'protected');
    secured.calls.length = 0;
    let tried = 0;
    for (const route of protectedRoutes) {
      for (const path of variants(concretePath(route))) {
        for (const headers of [{}, { authorization: 'Bearer ' }, { authorization: `Bearer ${TOKEN}x` }, { authorization: `Basic ${TOKEN}` }]) {
          const before = secured.metricsRendered;
          const answer = await send(secured.app, { method: route.method as 'GET', url: `${path}${queryFor(route)}`, headers: { ...headers, ...JSON_TYPE } });
          tried += 1;
          expect(answer.status, `${route.method} ${path} ${JSON.stringify(headers)} -> ${answer.status} ${answer.body}`).toBeGreaterThanOrEqual(400);
          expect(answer.body).not.toContain(REACHED);
          expect(secured.metricsRendered, `${route.method} ${path} rendered metrics`).toBe(before);
        }
      }
    }
    expect(secured.calls).toEqual([]);
    expect(tried).toBeGreaterThan(1000);
  });

  it('answers an unknown path 401 without the token, so probing reveals nothing', async () => {
    const answer = await send(secured.app, { method: 'GET', url: '/no/such/route' });
    expect(answer.status).toBe(401);
  });

  it('lets /metrics answer without the token only when declared open', async () => {
    const open = await harness({ token: TOKEN, metricsOpen: true });
    try {
      expect((await send(open.app, { method: 'GET', url: '/metrics' })).status).toBe(200);
      expect((await send(secured.app, { method: 'GET', url: '/metrics' })).status).toBe(401);
      expect((await send(secured.app, { method: 'GET', url: '/%6detrics' })).status).toBe(401);
    } finally {
      await open.app.close();
    }
  });
});

describe('requests from browsers', () => {
  let open: Harness;
  let secured: Harness;
  beforeAll(async () => {
    open = await harness({ token: undefined });
    secured = await harness({ token: TOKEN });
  });
  afterAll(async () => {
    await open.app.close();
    await secured.app.close();
  });

  it('without a token, refuses a rebound host name before any handler runs', async () => {
    const answer = await send(open.app, { method: 'POST', url: '/sync/upload', headers: { host: 'attacker.example', ...JSON_TYPE } });
    expect(answer.status).toBe(403);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'forbidden' });
    expect(open.calls).toEqual([]);
  });

  it('refuses a foreign Origin with or without a token', async () => {
    const fromPage = { host: 'localhost:8901', origin: 'http://attacker.example', ...JSON_TYPE };
    expect((await send(open.app, { method: 'POST', url: '/sync/upload', headers: fromPage })).status).toBe(403);
    expect((await send(secured.app, { method: 'POST', url: '/sync/upload', headers: { ...fromPage, authorization: `Bearer ${TOKEN}` } })).status).toBe(403);
    expect((await send(open.app, { method: 'POST', url: '/sync/upload', headers: { ...fromPage, origin: 'null' } })).status).toBe(403);
    expect(open.calls).toEqual([]);
    expect(secured.calls).toEqual([]);
  });

  it('without a token, requires a JSON content type on POST (no simple cross-site request can send one)', async () => {
    for (const contentType of [undefined, 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const headers: Record<string, string> = { host: '127.0.0.1:8901' };
      if (contentType !== undefined) headers['content-type'] = contentType;
      const answer = await send(open.app, { method: 'POST', url: '/sync/upload', headers, payload: contentType === undefined ? undefined : 'x' });
      expect(answer.status, String(contentType)).toBe(415);
    }
    expect(open.calls).toEqual([]);
    const json = await send(open.app, { method: 'POST', url: '/sync/upload', headers: { host: '127.0.0.1:8901', 'content-type': 'application/json' } });
    expect(json.body).toContain(REACHED);
  });

  it('answers same-origin and loopback requests', async () => {
    for (const host of ['localhost:8901', '127.0.0.1:8901', '[::1]:8901', 'LOCALHOST']) {
      const answer = await send(open.app, { method: 'GET', url: '/sync/status', headers: { host, origin: `http://${host}` } });
      expect(answer.body, host).toContain(REACHED);
    }
  });
});

describe('request guards, as pure rules', () => {
  it.each([
    ['localhost', true],
    ['localhost:1', true],
    ['127.0.0.1:8901', true],
    ['127.1.2.3', true],
    ['[::1]:80', true],
    ['localhost.attacker.example', false],
    ['127.0.0.1.nip.io', false],
    ['attacker.example', false],
    ['', false],
    [undefined, false],
  ])('host %j is loopback: %s', (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });

  it.each([
    [undefined, 'localhost:8901', false],
    ['http://localhost:8901', 'localhost:8901', false],
    ['http://localhost:8902', 'localhost:8901', true],
    ['null', 'localhost:8901', true],
    ['file://', 'localhost:8901', true],
    ['not a url', 'localhost:8901', true],
  ])('origin %j for host %j is foreign: %s', (origin, host, expected) => {
    expect(isForeignOrigin(origin, host)).toBe(expected);
  });

  it.each([
    ['application/json', true],
    ['Application/JSON; charset=utf-8', true],
    ['application/jsonx', false],
    ['text/plain', false],
    [undefined, false],
  ])('content type %j is JSON: %s', (contentType, expected) => {
    expect(isJsonContentType(contentType)).toBe(expected);
  });
});

describe('fuzzed requests', () => {
  it('only public routes ever answer without the token', async () => {
    const secured = await harness({ token: TOKEN });
    try {
      const seed = Number(process.env.HTTP_FUZZ_SEED) || 20261206;
      const random = seededRandom(seed);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
      const segments = ['sync', 'status', 'snapshots', 'upload', 'download', 'restore', SNAPSHOT, 'docs', 'metrics', 'healthz', 'readyz', '', '.', '..', 'SYNC', '%2e', 'a'];
      const methods = ['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'] as const;
      const encode = (text: string): string => text.split('').map((c) => (random() < 0.3 ? percent(c, random() < 0.5) : random() < 0.05 ? `%25${percent(c, true).slice(1)}` : c)).join('');
      const publicBodies = new Set(['{"status":"ok"}', '{"ready":true,"enabled":true,"checks":{"config":true,"watcher":true,"remote":true,"state":true,"localFiles":true}}']);
      for (let i = 0; i < 3000; i += 1) {
        const depth = 1 + Math.floor(random() * 4);
        const path = `/${Array.from({ length: depth }, () => encode(pick(segments))).join(pick(['/', '/', '/', '//', '%2F']))}${pick(['', '', '/', '?confirm=true', '?name=x&confirm=1'])}`;
        const headers: Record<string, string> = {};
        if (random() < 0.3) headers.authorization = pick(['Bearer', 'Bearer  ', `bearer ${TOKEN.toUpperCase()}`, `Bearer ${TOKEN.slice(1)}`, 'Basic x']);
        if (random() < 0.3) headers['content-type'] = pick(['application/json', 'text/plain', 'application/x-www-form-urlencoded']);
        if (random() < 0.2) headers.origin = pick(['http://localhost', 'http://attacker.example', 'null']);
        if (random() < 0.2) headers.host = pick(['localhost', 'attacker.example', '127.0.0.1:8901']);
        const method = pick(methods);
        const answer = await send(secured.app, { method, url: path, headers, ...(method === 'POST' && random() < 0.3 ? { payload: '{}' } : {}) });
        const context = `seed ${seed} #${i}: ${method} ${path} ${JSON.stringify(headers)} -> ${answer.status}`;
        expect(answer.body, context).not.toContain(REACHED);
        if (answer.status < 300 && method !== 'HEAD') expect(publicBodies.has(answer.body), context).toBe(true);
      }
      expect(secured.calls).toEqual([]);
      expect(secured.metricsRendered).toBe(0);
    } finally {
      await secured.app.close();
    }
  });
});

describe('request bodies', () => {
  it('takes an empty JSON body, refuses malformed JSON and prototype keys with 400, before any handler runs', async () => {
    const open = await harness({ token: undefined });
    try {
      const post = (payload: string | undefined) => send(open.app, { method: 'POST', url: '/sync/upload', headers: { host: 'localhost', 'content-type': 'application/json' }, ...(payload === undefined ? {} : { payload }) });
      expect((await post(undefined)).body).toContain(REACHED);
      expect((await post('   ')).body).toContain(REACHED);
      open.calls.length = 0;
      for (const payload of ['{"a":', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}']) {
        const answer = await post(payload);
        expect(answer.status, payload).toBe(400);
      }
      expect(open.calls).toEqual([]);
    } finally {
      await open.app.close();
    }
  });
});
