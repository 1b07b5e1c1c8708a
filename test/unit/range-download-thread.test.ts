// The range-download thread against a local server: connections kept across ranges, a kept
// connection the server dropped meanwhile, and a cut body reported as far as it was written.
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isAppError } from '../../src/errors.js';
import { RangeDownloadThread } from '../../src/remote/range-download-thread-client.js';
import { translateS3Error } from '../../src/remote/s3-errors.js';
import { tempDir } from '../helpers/tmp.js';

const OBJECT = randomBytes(3 * 1024 * 1024 + 17);

/** What the server does with the n-th request of a connection: answer the range, or something else. */
type Behaviour = (socket: Socket, range: { start: number; end: number }, requestOnConnection: number) => void;

const answerRange: Behaviour = (socket, { start, end }) => {
  socket.write(`HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${start}-${end - 1}/${OBJECT.length}\r\nContent-Length: ${end - start}\r\n\r\n`);
  socket.write(OBJECT.subarray(start, end));
};

let server: Server | undefined;
let thread: RangeDownloadThread | undefined;
let fd: number | undefined;
afterEach(async () => {
  await thread?.close();
  if (fd !== undefined) closeSync(fd);
  await new Promise((resolve) => (server === undefined ? resolve(undefined) : server.close(resolve)));
  [server, thread, fd] = [undefined, undefined, undefined];
});

async function serve(behaviour: Behaviour): Promise<{ url: string; connections: () => number; requests: () => number }> {
  let connections = 0;
  let requests = 0;
  server = createServer((socket) => {
    connections += 1;
    let onConnection = 0;
    let pending = '';
    socket.on('error', () => undefined);
    socket.on('data', (data: Buffer) => {
      pending += data.toString('latin1');
      for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
        const match = /\r\nRange: bytes=(\d+)-(\d+)/i.exec(pending.slice(0, end));
        pending = pending.slice(end + 4);
        requests += 1;
        onConnection += 1;
        behaviour(socket, { start: Number(match?.[1]), end: Number(match?.[2]) + 1 }, onConnection);
      }
    });
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/bucket/key?X-Amz-Signature=abc`, connections: () => connections, requests: () => requests };
}

async function openThread(sockets: number): Promise<{ file: string; extents: [number, number][]; onWritten: (position: number, length: number) => void }> {
  const file = path.join(await tempDir('range-thread'), 'object');
  fd = openSync(file, 'w+');
  thread = new RangeDownloadThread({ fd, sockets, connectTimeoutMs: 10_000, idleTimeoutMs: 10_000 }, translateS3Error);
  const extents: [number, number][] = [];
  return { file, extents, onWritten: (position, length) => extents.push([position, length]) };
}

describe('the range-download thread', () => {
  it('fetches range after range over one kept connection, reporting each write in order', async () => {
    const remote = await serve(answerRange);
    const { file, extents, onWritten } = await openThread(1);
    const rangeBytes = 1024 * 1024;
    for (let start = 0; start < OBJECT.length; start += rangeBytes) {
      await thread?.fetch({ url: remote.url, start, end: Math.min(OBJECT.length, start + rangeBytes) }, `range ${start}`, onWritten);
    }
    expect(readFileSync(file).equals(OBJECT)).toBe(true);
    expect({ connections: remote.connections(), requests: remote.requests() }).toEqual({ connections: 1, requests: 4 });
    let next = 0;
    for (const [position, length] of extents) {
      expect(position).toBe(next);
      next = position + length;
    }
    expect(next).toBe(OBJECT.length);
  });

  it('asks again on a new connection when the server dropped a kept one before answering', async () => {
    // The second request on a connection finds it closed, as after a server's keep-alive timeout.
    const remote = await serve((socket, range, n) => (n === 1 ? answerRange(socket, range, n) : socket.destroy()));
    const { file, onWritten } = await openThread(1);
    const half = Math.floor(OBJECT.length / 2);
    await thread?.fetch({ url: remote.url, start: 0, end: half }, 'first half', onWritten);
    await thread?.fetch({ url: remote.url, start: half, end: OBJECT.length }, 'second half', onWritten);
    expect(readFileSync(file).equals(OBJECT)).toBe(true);
    expect({ connections: remote.connections(), requests: remote.requests() }).toEqual({ connections: 2, requests: 3 });
  });

  it('keeps its other idle connections when it replaces one the server dropped', async () => {
    // Two connections carry the first two ranges; the third request (the second on one of them) finds it dropped.
    let requests = 0;
    const remote = await serve((socket, range, n) => {
      requests += 1;
      if (requests === 3 && n === 2) socket.destroy();
      else answerRange(socket, range, n);
    });
    const { file, onWritten } = await openThread(2);
    const fifth = Math.ceil(OBJECT.length / 5);
    const range = (i: number): { url: string; start: number; end: number } => ({ url: remote.url, start: i * fifth, end: Math.min(OBJECT.length, (i + 1) * fifth) });
    await Promise.all([0, 1].map((i) => thread?.fetch(range(i), `range ${i}`, onWritten)));
    await thread?.fetch(range(2), 'range 2', onWritten);
    await Promise.all([3, 4].map((i) => thread?.fetch(range(i), `range ${i}`, onWritten)));
    expect(readFileSync(file).equals(OBJECT)).toBe(true);
    // The two first ones, less the dropped one, plus its replacement: the last two ranges needed no new one.
    expect({ connections: remote.connections(), requests: remote.requests() }).toEqual({ connections: 3, requests: 6 });
  });

  it('reports a body cut in transit as far as it was written, and fails as retryable', async () => {
    const cutAt = 1024 * 1024 + 5;
    const remote = await serve((socket, { start, end }) => {
      socket.write(`HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${start}-${end - 1}/${OBJECT.length}\r\nContent-Length: ${end - start}\r\n\r\n`);
      socket.end(OBJECT.subarray(start, start + cutAt));
    });
    const { file, extents, onWritten } = await openThread(1);
    const error = await thread?.fetch({ url: remote.url, start: 0, end: OBJECT.length }, 'the object', onWritten).catch((e: unknown) => e);
    expect(isAppError(error, 'remote_unavailable') && error.retryable, String(error)).toBe(true);
    expect(extents.reduce((sum, [, length]) => sum + length, 0)).toBe(cutAt);
    expect(readFileSync(file).subarray(0, cutAt).equals(OBJECT.subarray(0, cutAt))).toBe(true);
  });
});
