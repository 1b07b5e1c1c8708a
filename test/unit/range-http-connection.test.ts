// The range-download thread's own HTTP/1.1 connection against local servers that answer with
// exactly the bytes each case needs: split, short, long, wrong, erroneous and quiet answers.
import { execFileSync } from 'node:child_process';
import { stripTypeScriptTypes } from 'node:module';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import * as heads from '../../src/remote/http-response-head.js';
import { RangeConnection, type RangeConnectionOptions, type RangeGet, type RangeGetEnd } from '../../src/remote/range-http-connection.js';

const BODY = Buffer.from('abcdefghijklmnopqrstuvwxyz0123456789');
const GET: RangeGet = { target: '/bucket/key?X-Amz-Signature=abc', host: 'example.test:9000', start: 100, end: 100 + BODY.length };
const RANGE_HEAD = `HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-${100 + BODY.length - 1}/1000\r\nContent-Length: ${BODY.length}\r\n\r\n`;

/** A server that answers each request (a complete head) with `answer(socket, request, n)`, n counting requests over all connections. */
interface TestServer {
  server: Server;
  port: number;
  connections: number;
  requests: string[];
}
const servers: Server[] = [];
const connections: RangeConnection[] = [];
afterEach(async () => {
  for (const connection of connections.splice(0)) connection.destroy();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** `event`: the server's event for a connection ready for bytes ('secureConnection' for TLS). */
function answering(server: Server, answer: (socket: Socket, request: string, n: number) => void, event = 'connection'): TestServer {
  const state: TestServer = { server, port: 0, connections: 0, requests: [] };
  server.on(event, (socket: Socket) => {
    state.connections += 1;
    let pending = '';
    socket.on('error', () => undefined);
    socket.on('data', (data: Buffer) => {
      pending += data.toString('latin1');
      for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
        const request = pending.slice(0, end);
        pending = pending.slice(end + 4);
        state.requests.push(request);
        answer(socket, request, state.requests.length);
      }
    });
  });
  servers.push(server);
  return state;
}

async function listen(state: TestServer): Promise<TestServer> {
  await new Promise<void>((resolve) => state.server.listen(0, '127.0.0.1', resolve));
  state.port = (state.server.address() as AddressInfo).port;
  return state;
}

const plainServer = (answer: (socket: Socket, request: string, n: number) => void): Promise<TestServer> => listen(answering(createServer(), answer));

function connectTo(port: number, overrides: Partial<RangeConnectionOptions> = {}): RangeConnection {
  const connection = new RangeConnection({ protocol: 'http:', hostname: '127.0.0.1', port, readBufferBytes: 8, connectTimeoutMs: 10_000, idleTimeoutMs: 10_000, heads, ...overrides });
  connections.push(connection);
  return connection;
}

/** A sink that keeps what it is given at the object's offsets, copied (the buffer is reused). */
function recordingSink(): { sink: (buffer: Buffer, offset: number, length: number, position: number) => void; bytes: () => Buffer; writes: number } {
  const pieces: { position: number; bytes: Buffer }[] = [];
  const record = {
    writes: 0,
    sink: (buffer: Buffer, offset: number, length: number, position: number): void => {
      pieces.push({ position, bytes: Buffer.from(buffer.subarray(offset, offset + length)) });
      record.writes += 1;
    },
    bytes: (): Buffer => {
      let expected = GET.start;
      for (const piece of pieces) {
        if (piece.position !== expected) throw new Error(`write at ${piece.position}, expected ${expected}`);
        expected += piece.bytes.length;
      }
      return Buffer.concat(pieces.map((piece) => piece.bytes));
    },
  };
  return record;
}

/** Writes `bytes` one piece after the other, each piece its own write. */
function writeInPieces(socket: Socket, bytes: Buffer, pieceBytes: number): void {
  for (let offset = 0; offset < bytes.length; offset += pieceBytes) socket.write(bytes.subarray(offset, offset + pieceBytes));
}

describe('RangeConnection', () => {
  it('sends the GET of the range and writes the body at its offsets, through one small reused read buffer', async () => {
    const server = await plainServer((socket) => writeInPieces(socket, Buffer.concat([Buffer.from(RANGE_HEAD, 'latin1'), BODY]), 5));
    const received = recordingSink();
    const ended = await connectTo(server.port).get(GET, received.sink);
    expect(ended).toEqual<RangeGetEnd>({ failure: undefined, unanswered: false });
    expect(received.bytes().equals(BODY)).toBe(true);
    // An 8-byte read buffer: the body cannot have come in fewer writes than that allows.
    expect(received.writes).toBeGreaterThanOrEqual(Math.ceil(BODY.length / 8));
    expect(server.requests[0]).toBe(`GET ${GET.target} HTTP/1.1\r\nHost: example.test:9000\r\nRange: bytes=100-${100 + BODY.length - 1}\r\nConnection: keep-alive`);
  });

  it('keeps the connection open for the next range', async () => {
    const server = await plainServer((socket) => socket.write(Buffer.concat([Buffer.from(RANGE_HEAD, 'latin1'), BODY])));
    const connection = connectTo(server.port);
    expect((await connection.get(GET, recordingSink().sink)).failure).toBeUndefined();
    expect(connection.reusable).toBe(true);
    expect((await connection.get(GET, recordingSink().sink)).failure).toBeUndefined();
    expect({ connections: server.connections, requests: server.requests.length, carried: connection.carried }).toEqual({ connections: 1, requests: 2, carried: 2 });
  });

  it('does not keep a connection the server closes after its answer', async () => {
    const server = await plainServer((socket) => socket.write(`${RANGE_HEAD.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n')}${BODY.toString('latin1')}`));
    const connection = connectTo(server.port);
    expect((await connection.get(GET, recordingSink().sink)).failure).toBeUndefined();
    expect(connection.reusable).toBe(false);
  });

  it('reports a body cut short by the server in transit, with what did arrive written', async () => {
    const server = await plainServer((socket) => socket.end(Buffer.concat([Buffer.from(RANGE_HEAD, 'latin1'), BODY.subarray(0, 20)])));
    const received = recordingSink();
    const ended = await connectTo(server.port).get(GET, received.sink);
    expect(ended.failure).toMatchObject({ reason: 'transit', message: expect.stringContaining(`after 20 of ${BODY.length} bytes`) });
    expect(received.bytes().equals(BODY.subarray(0, 20))).toBe(true);
  });

  it('reports a connection closed mid-head in transit, as answered', async () => {
    const server = await plainServer((socket) => socket.end('HTTP/1.1 206 Partial Content\r\nContent-Ra'));
    expect(await connectTo(server.port).get(GET, recordingSink().sink)).toEqual({ failure: { reason: 'transit', message: expect.any(String) }, unanswered: false });
  });

  it('says when a connection closed before any byte of the answer (a kept connection the server dropped)', async () => {
    const server = await plainServer((socket) => socket.destroy());
    expect(await connectTo(server.port).get(GET, recordingSink().sink)).toEqual({ failure: { reason: 'transit', message: expect.any(String) }, unanswered: true });
  });

  it('refuses a whole object (200) sent for a range, and writes nothing of it', async () => {
    const server = await plainServer((socket) => socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY.toString('latin1')}`));
    const received = recordingSink();
    const connection = connectTo(server.port);
    expect((await connection.get(GET, received.sink)).failure).toMatchObject({ reason: 'answer', message: expect.stringContaining('answered 200') });
    expect(received.writes).toBe(0);
    expect(connection.reusable).toBe(false);
  });

  it('refuses a Content-Length other than the range', async () => {
    const server = await plainServer((socket) => socket.write(RANGE_HEAD.replace(`Content-Length: ${BODY.length}`, 'Content-Length: 10') + BODY.toString('latin1')));
    expect((await connectTo(server.port).get(GET, recordingSink().sink)).failure).toMatchObject({ reason: 'answer', message: expect.stringContaining('answered 10 bytes') });
  });

  it('refuses a range sent chunked: its length is not known', async () => {
    const server = await plainServer((socket) => socket.write(RANGE_HEAD.replace(`Content-Length: ${BODY.length}`, 'Transfer-Encoding: chunked')));
    expect((await connectTo(server.port).get(GET, recordingSink().sink)).failure).toMatchObject({ reason: 'answer', message: expect.stringContaining('chunked') });
  });

  it('refuses an answer that is not HTTP', async () => {
    const server = await plainServer((socket) => socket.write('SSH-2.0-OpenSSH_9.2\r\n\r\n'));
    expect((await connectTo(server.port).get(GET, recordingSink().sink)).failure).toMatchObject({ reason: 'answer' });
  });

  it("reports an error answer's status and S3's code, and keeps the connection once its body is read", async () => {
    const xml = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';
    const server = await plainServer((socket) => writeInPieces(socket, Buffer.from(`HTTP/1.1 503 Slow Down\r\nContent-Length: ${xml.length}\r\n\r\n${xml}`, 'latin1'), 7));
    const connection = connectTo(server.port);
    expect((await connection.get(GET, recordingSink().sink)).failure).toEqual({ reason: 'status', status: 503, code: 'SlowDown' });
    expect(connection.reusable).toBe(true);
  });

  it('reads a chunked error answer to its last chunk, without waiting for the connection to close', async () => {
    const xml = '<Error><Code>NoSuchKey</Code></Error>';
    const server = await plainServer((socket) => socket.write(`HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n${xml.length.toString(16)}\r\n${xml}\r\n0\r\n\r\n`));
    const connection = connectTo(server.port, { idleTimeoutMs: 600_000 });
    expect((await connection.get(GET, recordingSink().sink)).failure).toEqual({ reason: 'status', status: 404, code: 'NoSuchKey' });
    expect(connection.reusable).toBe(false);
  });

  it('ends a GET that goes quiet after the idle timeout, with what arrived written', async () => {
    const server = await plainServer((socket) => socket.write(Buffer.concat([Buffer.from(RANGE_HEAD, 'latin1'), BODY.subarray(0, 4)])));
    const received = recordingSink();
    const ended = await connectTo(server.port, { idleTimeoutMs: 200 }).get(GET, received.sink);
    expect(ended).toEqual({ failure: { reason: 'transit', message: expect.stringContaining('no byte for 200 ms') }, unanswered: false });
    expect(received.bytes().equals(BODY.subarray(0, 4))).toBe(true);
  });

  it('reports a write that fails as local, with its code', async () => {
    const server = await plainServer((socket) => socket.write(Buffer.concat([Buffer.from(RANGE_HEAD, 'latin1'), BODY])));
    const full = (): void => {
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    };
    expect((await connectTo(server.port).get(GET, full)).failure).toMatchObject({ reason: 'local', code: 'ENOSPC' });
  });

  it('fails a connection that cannot be made, in transit', async () => {
    const server = await plainServer(() => undefined);
    const port = server.port;
    await new Promise((resolve) => server.server.close(resolve));
    servers.splice(servers.indexOf(server.server), 1);
    expect((await connectTo(port).get(GET, recordingSink().sink)).failure).toMatchObject({ reason: 'transit', message: expect.stringContaining('ECONNREFUSED') });
  });

  it('speaks TLS, trusting the CA it is given', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'range-tls-'));
    const [key, cert] = [path.join(dir, 'key.pem'), path.join(dir, 'cert.pem')];
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' });
    const [keyPem, certPem] = await Promise.all([readFile(key), readFile(cert)]);
    const server = await listen(answering(createTlsServer({ key: keyPem, cert: certPem }), (socket) => socket.write(Buffer.concat([Buffer.from(RANGE_HEAD, 'latin1'), BODY])), 'secureConnection'));
    const received = recordingSink();
    const trusted = connectTo(server.port, { protocol: 'https:', hostname: 'localhost', readBufferBytes: 1024, tls: { ca: certPem } });
    expect((await trusted.get(GET, received.sink)).failure).toBeUndefined();
    expect(received.bytes().equals(BODY)).toBe(true);
    // Without that CA, the server is not trusted.
    const untrusted = connectTo(server.port, { protocol: 'https:', hostname: 'localhost' });
    expect((await untrusted.get(GET, recordingSink().sink)).failure).toMatchObject({ reason: 'transit', message: expect.stringMatching(/self[- ]signed/i) });
  });
});

describe("the download thread's own modules", () => {
  // The thread runs these files as they are, from src/ too: Node strips their types, and refuses syntax it would have to transform.
  it.each(['s3-range-download-thread.ts', 'range-http-connection.ts', 'http-response-head.ts'])('%s is TypeScript that erases to JavaScript', async (file) => {
    const source = await readFile(new URL(`../../src/remote/${file}`, import.meta.url), 'utf8');
    expect(() => stripTypeScriptTypes(source)).not.toThrow();
  });
});
