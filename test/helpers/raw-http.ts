// HTTP requests exactly as written, over a plain TCP socket: no URL normalization (fetch would
// resolve `../` before sending), no header checks, and bodies a server may refuse half-way.
// One request per connection (`Connection: close`), so an answer ends when the socket does.
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface RawRequest {
  method: string;
  /** Sent as is: dot segments, percent-encodings and NUL escapes included. */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Replaces the whole request head (method line and headers) for malformed-HTTP cases. */
  rawHead?: string;
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The body parsed as JSON, when it is JSON. */
  json: unknown;
  /** The whole answer as received (status line, headers, body), for transcripts. */
  raw: string;
}

const WRITE_CHUNK_BYTES = 16 * 1024;
/**
 * Pauses that let an early answer be read before the next write: a server refusing a body
 * answers and closes, and a write after that fails the socket with the answer still unread.
 */
const AFTER_HEAD_PAUSE_MS = 50;
const BETWEEN_CHUNKS_PAUSE_MS = 2;

/**
 * Sends one request to 127.0.0.1:`port` and reads the answer. A body is sent in chunks and
 * sending stops as soon as the server answers, as a server refusing a large body does long
 * before it has all of it. Rejects when no complete answer arrives within `timeoutMs`.
 */
export function rawRequest(port: number, request: RawRequest, timeoutMs = 15_000): Promise<RawAnswer> {
  return new Promise<RawAnswer>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let answered = false;
    let finished = false;
    const finish = (error?: Error): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      const bytes = Buffer.concat(received);
      if (bytes.length === 0) {
        reject(error ?? new Error(`${request.method} ${request.path}: the connection closed without an answer`));
        return;
      }
      try {
        resolve(parseAnswer(bytes));
      } catch (parseError) {
        reject(parseError instanceof Error ? parseError : new Error(String(parseError)));
      }
    };
    const timer = setTimeout(() => finish(new Error(`${request.method} ${request.path}: no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      answered = true;
      received.push(chunk);
      if (isComplete(Buffer.concat(received))) finish();
    });
    socket.on('end', () => finish());
    socket.on('close', () => finish());
    // A server that answers and closes while the body is still being sent resets the connection.
    socket.on('error', (error) => finish(error));
    socket.once('connect', () => {
      void send();
    });

    const send = async (): Promise<void> => {
      const body = request.body === undefined ? Buffer.alloc(0) : Buffer.from(request.body);
      const headers: Record<string, string> = { host: `127.0.0.1:${port}`, connection: 'close', ...request.headers };
      if (request.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length' || h.toLowerCase() === 'transfer-encoding')) {
        headers['content-length'] = String(body.length);
      }
      const chunked = Object.entries(headers).some(([h, v]) => h.toLowerCase() === 'transfer-encoding' && v === 'chunked');
      const head = request.rawHead ?? `${request.method} ${request.path} HTTP/1.1\r\n${Object.entries(headers).map(([h, v]) => `${h}: ${v}`).join('\r\n')}\r\n\r\n`;
      if (!(await write(Buffer.from(head, 'latin1')))) return;
      if (body.length > 0) await sleep(AFTER_HEAD_PAUSE_MS);
      for (let offset = 0; offset < body.length && !answered; offset += WRITE_CHUNK_BYTES) {
        if (offset > 0) await sleep(BETWEEN_CHUNKS_PAUSE_MS);
        if (answered) return;
        const piece = body.subarray(offset, offset + WRITE_CHUNK_BYTES);
        const framed = chunked ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece;
        if (!(await write(framed))) return;
      }
      if (chunked && !answered) await write(Buffer.from('0\r\n\r\n'));
    };
    const write = (bytes: Buffer): Promise<boolean> =>
      new Promise((done) => {
        if (socket.destroyed) {
          done(false);
          return;
        }
        socket.write(bytes, (error) => done(error === undefined || error === null));
      });
  });
}

function headEnd(bytes: Buffer): number {
  return bytes.indexOf('\r\n\r\n');
}

/** Complete once Content-Length bytes of body are in; otherwise the server's close ends it. */
function isComplete(bytes: Buffer): boolean {
  const end = headEnd(bytes);
  if (end < 0) return false;
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(bytes.subarray(0, end).toString('latin1'))?.[1];
  return length !== undefined && bytes.length - (end + 4) >= Number(length);
}

function parseAnswer(bytes: Buffer): RawAnswer {
  const end = headEnd(bytes);
  const headText = (end < 0 ? bytes : bytes.subarray(0, end)).toString('latin1');
  const [statusLine = '', ...headerLines] = headText.split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? Number.NaN);
  if (!Number.isInteger(status)) throw new Error(`not an HTTP answer: ${JSON.stringify(headText.slice(0, 200))}`);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let bodyBytes = end < 0 ? Buffer.alloc(0) : bytes.subarray(end + 4);
  if (headers['transfer-encoding'] === 'chunked') bodyBytes = unchunk(bodyBytes);
  const body = bodyBytes.toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status, headers, body, json, raw: `${headText}\r\n\r\n${body}` };
}

function unchunk(bytes: Buffer): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const lineEnd = bytes.indexOf('\r\n', offset);
    if (lineEnd < 0) break;
    const size = Number.parseInt(bytes.subarray(offset, lineEnd).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size));
    offset = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}
