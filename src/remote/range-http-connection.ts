// One keep-alive HTTP/1.1 connection that GETs byte ranges, for the range-download thread (see
// s3-range-download-thread.ts, which loads this file as it is: Node's own modules only, and only
// syntax that erases to JavaScript).
//
// Why not node:http: every socket read there is a new buffer outside the heap, freed only by a
// full collection, and a GB restored made a hundred of them. Here the socket reads into one
// buffer for the life of the connection (`onread`), and the body goes to its sink from that
// buffer before the next read; the sink must use the bytes before it returns.
import net from 'node:net';
import tls from 'node:tls';
import type * as HttpResponseHead from './http-response-head.js';

/**
 * Why a GET failed:
 * - transit: the connection failed or went quiet; what arrived before is written and reported;
 * - status: the server answered with an error (status, and S3's error code when the body had one);
 * - answer: the server answered with other bytes than those asked for;
 * - local: the file could not be written (errno code).
 */
export type RangeFailure =
  | { reason: 'transit'; message: string }
  | { reason: 'status'; status: number; code: string | undefined }
  | { reason: 'answer'; message: string }
  | { reason: 'local'; code: string | undefined; message: string };

export interface RangeConnectionOptions {
  protocol: 'http:' | 'https:';
  hostname: string;
  port: number;
  readBufferBytes: number;
  connectTimeoutMs: number;
  /** No byte either way for this long while a GET is under way: it failed in transit. */
  idleTimeoutMs: number;
  /** The answer-reading functions (http-response-head.ts), handed in: see the note at the top. */
  heads: typeof HttpResponseHead;
  /** TLS settings beyond the defaults (tests give their own CA); otherwise Node's trust store, as for every other request. */
  tls?: tls.ConnectionOptions | undefined;
}

/** A GET of bytes [start, end) of `target` (path and query of a presigned URL) from `host`. */
export interface RangeGet {
  target: string;
  host: string;
  start: number;
  /** Exclusive. */
  end: number;
}

/** Takes body bytes [offset, offset + length) of `buffer`, which belong at `position` of the object; throws when it cannot write them. */
export type RangeSink = (buffer: Buffer, offset: number, length: number, position: number) => void;

export interface RangeGetEnd {
  failure: RangeFailure | undefined;
  /** The connection closed before any byte of the answer: on a kept-alive connection, the server had closed it meanwhile. */
  unanswered: boolean;
}

/** Enough of an error answer to find S3's <Code> in it. */
const ERROR_BODY_BYTES = 4096;

interface Exchange {
  get: RangeGet;
  sink: RangeSink;
  done: (end: RangeGetEnd) => void;
  phase: 'head' | 'body' | 'error-body';
  answered: boolean;
  /** Body bytes taken (written, or kept of an error body). */
  received: number;
  /** Body length of the answer (Content-Length), when it has one. */
  bodyBytes: number | undefined;
  chunked: boolean;
  status: number;
  keepAlive: boolean;
}

export class RangeConnection {
  private readonly options: RangeConnectionOptions;
  private readonly socket: net.Socket;
  private readonly readBuffer: Buffer;
  private readonly errorBody = Buffer.allocUnsafe(ERROR_BODY_BYTES);
  private readonly headReader: HttpResponseHead.ResponseHeadReader;
  private exchange: Exchange | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private usable = true;
  /** GETs this connection has carried: a connection that carried one may have been closed by the server since. */
  private gets = 0;

  constructor(options: RangeConnectionOptions) {
    this.options = options;
    this.readBuffer = Buffer.allocUnsafe(options.readBufferBytes);
    this.headReader = new options.heads.ResponseHeadReader();
    const onread = { buffer: this.readBuffer, callback: (bytes: number, buffer: Uint8Array) => this.onRead(bytes, buffer) };
    const target = { host: options.hostname, port: options.port, onread };
    // An IP address is no server name for TLS (SNI), and Node warns when given one.
    this.socket =
      options.protocol === 'https:' ? tls.connect({ ...target, servername: net.isIP(options.hostname) === 0 ? options.hostname : undefined, ...options.tls }) : net.connect(target);
    this.connectTimer = setTimeout(() => this.fail(`no connection within ${options.connectTimeoutMs} ms`), options.connectTimeoutMs);
    this.socket.once(options.protocol === 'https:' ? 'secureConnect' : 'connect', () => this.clearConnectTimer());
    this.socket.on('timeout', () => this.fail(`no byte for ${options.idleTimeoutMs} ms`, false));
    this.socket.on('error', (error) => this.fail(error.message));
    this.socket.on('end', () => this.fail('the server closed the connection'));
    this.socket.on('close', () => this.fail('the connection closed'));
  }

  /** Whether another GET may go over this connection. */
  get reusable(): boolean {
    return this.usable && this.exchange === undefined;
  }

  get carried(): number {
    return this.gets;
  }

  /** Sends the GET and hands the body to `sink` as it arrives; resolves when it ended, well or not. */
  get(get: RangeGet, sink: RangeSink): Promise<RangeGetEnd> {
    if (!this.reusable) return Promise.resolve({ failure: { reason: 'transit', message: 'the connection is closed' }, unanswered: true });
    this.gets += 1;
    return new Promise<RangeGetEnd>((done) => {
      this.exchange = { get, sink, done, phase: 'head', answered: false, received: 0, bodyBytes: undefined, chunked: false, status: 0, keepAlive: false };
      this.headReader.reset();
      this.socket.setTimeout(this.options.idleTimeoutMs);
      this.socket.write(`GET ${get.target} HTTP/1.1\r\nHost: ${get.host}\r\nRange: bytes=${get.start}-${get.end - 1}\r\nConnection: keep-alive\r\n\r\n`, 'latin1');
    });
  }

  destroy(): void {
    this.usable = false;
    this.clearConnectTimer();
    this.socket.destroy();
  }

  private onRead(bytes: number, buffer: Uint8Array): boolean {
    const exchange = this.exchange;
    if (exchange === undefined) {
      // Bytes no GET asked for: the connection can no longer be trusted to frame the next answer.
      this.destroy();
      return false;
    }
    exchange.answered = true;
    try {
      let offset = 0;
      if (exchange.phase === 'head') {
        const read = this.headReader.read(buffer, 0, bytes);
        if (read === undefined) return true;
        offset = read.used;
        this.onHead(exchange, read.head);
      }
      if (this.exchange === exchange && offset < bytes) this.onBody(exchange, offset, bytes - offset);
    } catch (error) {
      this.finish({ reason: 'answer', message: error instanceof Error ? error.message : String(error) });
    }
    return this.exchange !== undefined || this.usable;
  }

  private onHead(exchange: Exchange, head: HttpResponseHead.ResponseHead): void {
    const { heads } = this.options;
    const framing = heads.bodyFraming(head);
    exchange.status = head.status;
    exchange.keepAlive = head.keepAlive;
    exchange.bodyBytes = framing.kind === 'length' ? framing.bytes : undefined;
    exchange.chunked = framing.kind === 'chunked';
    if (head.status >= 300) {
      exchange.phase = 'error-body';
      if (exchange.bodyBytes === 0) this.finishErrorAnswer(exchange);
      return;
    }
    const { start, end } = exchange.get;
    const problem = heads.rangeAnswerProblem(head.status, head.headers.get('content-range'), head.headers.get('content-length'), start, end);
    if (problem !== undefined) {
      this.finish({ reason: 'answer', message: problem });
      return;
    }
    if (framing.kind !== 'length') {
      this.finish({ reason: 'answer', message: `sent bytes ${start}-${end - 1} without a Content-Length (${framing.kind === 'chunked' ? 'chunked' : 'until the connection closes'})` });
      return;
    }
    exchange.phase = 'body';
  }

  private onBody(exchange: Exchange, offset: number, length: number): void {
    if (exchange.phase === 'error-body') {
      this.keepErrorBody(exchange, offset, length);
      return;
    }
    const { start, end } = exchange.get;
    if (exchange.received + length > end - start) {
      this.finish({ reason: 'answer', message: `the body of bytes ${start}-${end - 1} came back longer than the ${end - start} bytes asked for` });
      return;
    }
    try {
      exchange.sink(this.readBuffer, offset, length, start + exchange.received);
    } catch (error) {
      this.finish({ reason: 'local', code: (error as NodeJS.ErrnoException).code, message: error instanceof Error ? error.message : String(error) });
      return;
    }
    exchange.received += length;
    if (exchange.received === end - start) this.finish(undefined);
  }

  private keepErrorBody(exchange: Exchange, offset: number, length: number): void {
    const kept = Math.max(0, Math.min(length, ERROR_BODY_BYTES - exchange.received));
    if (kept > 0) this.readBuffer.copy(this.errorBody, exchange.received, offset, offset + kept);
    exchange.received += length;
    const complete = exchange.bodyBytes !== undefined ? exchange.received >= exchange.bodyBytes : exchange.received >= ERROR_BODY_BYTES || (exchange.chunked && this.endsChunkedBody(exchange));
    if (complete) this.finishErrorAnswer(exchange);
  }

  /** The last chunk of a chunked error body has come (a body without a length is otherwise read only as far as its code can be found). */
  private endsChunkedBody(exchange: Exchange): boolean {
    const kept = Math.min(exchange.received, ERROR_BODY_BYTES);
    return this.errorBody.toString('latin1', Math.max(0, kept - 5), kept) === '0\r\n\r\n';
  }

  private finishErrorAnswer(exchange: Exchange): void {
    const code = this.options.heads.s3ErrorCode(this.errorBody.toString('utf8', 0, Math.min(exchange.received, ERROR_BODY_BYTES)));
    this.finish({ reason: 'status', status: exchange.status, code });
  }

  /** The connection failed or closed (or went quiet: not `closed`): a GET under way ends with what it has. */
  private fail(message: string, closed = true): void {
    this.usable = false;
    this.clearConnectTimer();
    this.socket.destroy();
    const exchange = this.exchange;
    if (exchange === undefined) return;
    // An error answer cut short still says what the server meant.
    if (exchange.phase === 'error-body') this.finishErrorAnswer(exchange);
    else if (exchange.phase === 'body') this.finish({ reason: 'transit', message: `${message}: the body ended after ${exchange.received} of ${exchange.get.end - exchange.get.start} bytes` });
    else this.finish({ reason: 'transit', message }, closed);
  }

  private finish(failure: RangeFailure | undefined, closed = false): void {
    const exchange = this.exchange;
    if (exchange === undefined) return;
    this.exchange = undefined;
    // Only a whole answer leaves the connection at the start of the next one.
    const whole = failure === undefined || (failure.reason === 'status' && exchange.bodyBytes !== undefined && exchange.received === exchange.bodyBytes);
    if (!whole || !exchange.keepAlive) this.destroy();
    else this.socket.setTimeout(0);
    exchange.done({ failure, unanswered: closed && !exchange.answered });
  }

  private clearConnectTimer(): void {
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
  }
}
