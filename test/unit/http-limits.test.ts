import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { buildServer, DEFAULT_HTTP_LIMITS, type HttpLimits } from '../../src/http/server.js';

const running: FastifyInstance[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const app of running.splice(0)) await app.close();
});

async function listening(limits: Partial<HttpLimits>): Promise<number> {
  const app = await buildServer({
    sync: undefined,
    readiness: () => ({ enabled: false, config: true, watcher: false, remote: true, state: true, localFiles: true }),
    apiToken: 'limits-test-token-0123456789',
    metrics: { contentType: 'text/plain', render: async () => '' },
    metricsOpen: false,
    log: silentLogger,
    limits,
  });
  running.push(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  return (app.server.address() as AddressInfo).port;
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.on('error', reject);
    sockets.push(socket);
  });
}

/** Resolves with what the server sent once it closes the connection. */
function closedByServer(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('close', () => resolve(received));
  });
}

describe('HTTP connection limits', () => {
  it('has finite defaults for every timeout and the connection count', () => {
    for (const value of Object.values(DEFAULT_HTTP_LIMITS)) {
      expect(value).toBeGreaterThan(0);
      expect(Number.isFinite(value)).toBe(true);
    }
  });

  it('closes a connection that dribbles its body instead of holding it', async () => {
    const port = await listening({ headersTimeoutMs: 300, requestTimeoutMs: 600, timeoutCheckIntervalMs: 100 });
    const socket = await open(port);
    const closed = closedByServer(socket);
    // With the token, so the request passes authentication and its body is awaited.
    socket.write('POST /sync/upload HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer limits-test-token-0123456789\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{');
    const dribble = setInterval(() => socket.writable && socket.write(' '), 50);
    try {
      expect(await closed).toMatch(/^HTTP\/1\.1 408/);
    } finally {
      clearInterval(dribble);
    }
  });

  it('closes a connection that never finishes its headers', async () => {
    const port = await listening({ headersTimeoutMs: 300, requestTimeoutMs: 600, timeoutCheckIntervalMs: 100 });
    const socket = await open(port);
    const closed = closedByServer(socket);
    socket.write('GET /healthz HTTP/1.1\r\nhost: localhost\r\n');
    expect(await closed).toMatch(/^HTTP\/1\.1 408/);
  });

  it('refuses connections beyond the cap while others are held', async () => {
    const port = await listening({ maxConnections: 3 });
    const held = await Promise.all([1, 2, 3].map(() => open(port)));
    for (const socket of held) socket.write('GET /healthz HTTP/1.1\r\nhost: localhost\r\n');
    // The server only counts a connection once it has accepted it; wait until all three are in.
    const app = running[0] as FastifyInstance;
    await expect.poll(() => new Promise<number>((resolve) => app.server.getConnections((_error, count) => resolve(count)))).toBe(3);
    const extra = await open(port);
    expect(await closedByServer(extra)).toBe('');
    const healthy = held[0] as Socket;
    healthy.write('\r\n');
    const answer = await new Promise<string>((resolve) => healthy.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1'))));
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
  });
});
