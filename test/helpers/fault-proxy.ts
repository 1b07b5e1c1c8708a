// A fault-injecting TCP proxy on 127.0.0.1 between memsync and the S3 server: each HTTP request
// gets one fault (or none) from a chooser, applied at a random byte offset of the request or of
// its answer. It frames requests by Content-Length and reads no more of a response than its head.
import { createServer, connect, type Server, type Socket } from 'node:net';

export const FAULTS = [
  'none',
  'reset-request', // connection reset part-way through the request (mid-body for uploads)
  'reset-response', // connection reset part-way through the response (truncated answer)
  'stall', // the response stops for a while, then goes on
  'slow', // the response trickles in small pieces
  'black-hole', // the request is taken in and never answered
  'http-500',
  'http-503',
  'corrupt-request-body', // one byte of the first request's body flipped
  'corrupt-response-body', // one byte of the first response's body flipped
] as const;
export type Fault = (typeof FAULTS)[number];

export interface FaultProxyOptions {
  target: { host: string; port: number };
  /** The fault for the n-th connection. */
  choose: (connection: number) => Fault;
  random: () => number;
  stallMs?: number;
}

type Counts = Record<Fault, number>;

export class FaultProxy {
  /** Connections given each fault, and those where it really happened (the offset was reached). */
  readonly chosen: Counts = zeroCounts();
  readonly applied: Counts = zeroCounts();
  private readonly sockets = new Set<Socket>();
  private connections = 0;
  private server: Server | undefined;
  private choose: (connection: number) => Fault;
  /** Request bytes (heads and bodies) passed on to the server, resets and retries included. */
  private forwardedBytes = 0;
  private readonly byteWaiters: { bytes: number; resolve: () => void }[] = [];
  private outageTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: FaultProxyOptions) {
    this.choose = options.choose;
  }

  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const proxy = new FaultProxy(options);
    await proxy.listen();
    return proxy;
  }

  get url(): string {
    const address = this.server?.address();
    if (typeof address !== 'object' || address === null) throw new Error('fault proxy is not listening');
    return `http://127.0.0.1:${address.port}`;
  }

  /** Replaces the chooser (e.g. no faults for a verification phase). */
  setChooser(choose: (connection: number) => Fault): void {
    this.choose = choose;
  }

  /** Request bytes passed on to the server so far: what went over the wire, resent bytes included. */
  get upstreamBytes(): number {
    return this.forwardedBytes;
  }

  /** Resolves once at least `bytes` request bytes have been passed on to the server. */
  whenUpstreamBytes(bytes: number): Promise<void> {
    if (this.forwardedBytes >= bytes) return Promise.resolve();
    return new Promise((resolve) => this.byteWaiters.push({ bytes, resolve }));
  }

  /**
   * A link outage: every open connection is reset at once, and connections made during the next
   * `durationMs` are reset as soon as they are accepted. `onEnd` is told when the link is back.
   */
  cutFor(durationMs: number, onEnd?: () => void): void {
    for (const socket of this.sockets) socket.resetAndDestroy();
    clearTimeout(this.outageTimer);
    this.outageTimer = setTimeout(() => {
      this.outageTimer = undefined;
      onEnd?.();
    }, durationMs);
  }

  private countForwarded(bytes: number): void {
    this.forwardedBytes += bytes;
    for (let i = this.byteWaiters.length - 1; i >= 0; i -= 1) {
      const waiter = this.byteWaiters[i];
      if (waiter !== undefined && this.forwardedBytes >= waiter.bytes) {
        this.byteWaiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }

  summary(): string {
    return FAULTS.filter((f) => f !== 'none' && this.chosen[f] > 0)
      .map((f) => `${f} ${this.applied[f]}/${this.chosen[f]}`)
      .join(', ');
  }

  private listen(): Promise<void> {
    this.server = createServer((client) => this.onConnection(client));
    return new Promise((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(0, '127.0.0.1', () => resolve());
    });
  }

  async stop(): Promise<void> {
    clearTimeout(this.outageTimer);
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private track(socket: Socket): Socket {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    return socket;
  }

  /**
   * Requests are framed by their Content-Length (the SDK always sends one), so each request of a
   * keep-alive connection gets its own fault; a response fault applies to the answer to it
   * (HTTP/1.1 clients do not pipeline: the previous answer is complete by then).
   */
  private onConnection(client: Socket): void {
    this.track(client);
    if (this.outageTimer !== undefined) {
      client.resetAndDestroy();
      return;
    }
    const { random } = this.options;
    const upstream = this.track(connect(this.options.target.port, this.options.target.host));
    let answeredHere = false; // an injected answer: the client connection outlives the upstream one
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => {
      if (!answeredHere) client.destroy();
    });
    const closeBoth = (): void => {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    };
    const response: ResponseFault = { fault: 'none', offset: 0, cutAt: Infinity, stallAt: Infinity, corruptAt: undefined, head: Buffer.alloc(0), headDone: false };

    let pending = Buffer.alloc(0);
    let bodyLeft = 0;
    let request: { fault: Fault; offset: number; cutAt: number; corruptAt: number } | undefined;
    let swallowing = false;
    forward(client, upstream, async (chunk, write) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length > 0 && !swallowing) {
        if (request === undefined) {
          const end = pending.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = pending.subarray(0, end + 4);
          const fault = this.choose(this.connections++);
          this.chosen[fault] += 1;
          bodyLeft = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head.toString('latin1'))?.[1] ?? 0);
          if (fault === 'http-500' || fault === 'http-503' || fault === 'black-hole') {
            this.applied[fault] += 1;
            swallowing = true;
            answeredHere = true;
            upstream.destroy();
            if (fault === 'black-hole') return; // taken in, never answered: the client must time out
            const status = fault === 'http-500' ? '500 Internal Server Error' : '503 Service Unavailable';
            const code = fault === 'http-500' ? 'InternalError' : 'SlowDown';
            const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected</Message></Error>`;
            client.end(`HTTP/1.1 ${status}\r\nContent-Type: application/xml\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
            return;
          }
          request = {
            fault,
            offset: 0,
            cutAt: fault === 'reset-request' ? Math.floor(random() * (head.length + bodyLeft)) : Infinity,
            corruptAt: fault === 'corrupt-request-body' && bodyLeft > 0 ? head.length + Math.floor(random() * bodyLeft) : -1,
          };
          Object.assign(response, { fault, offset: 0, head: Buffer.alloc(0), headDone: false, corruptAt: undefined });
          // Most answers are a few hundred bytes: half the cuts and stalls land in the head.
          const at = (): number => Math.floor(random() * (random() < 0.5 ? 400 : 64 * 1024));
          response.cutAt = fault === 'reset-response' ? at() : Infinity;
          response.stallAt = fault === 'stall' ? at() : Infinity;
          bodyLeft += head.length;
        }
        const take = Math.min(bodyLeft, pending.length);
        let piece = pending.subarray(0, take);
        pending = pending.subarray(take);
        bodyLeft -= take;
        if (request.corruptAt >= request.offset && request.corruptAt < request.offset + piece.length) {
          piece = Buffer.from(piece);
          piece[request.corruptAt - request.offset] = (piece[request.corruptAt - request.offset] ?? 0) ^ 0x5a;
          this.applied['corrupt-request-body'] += 1;
        }
        if (request.offset + piece.length > request.cutAt) {
          if (!upstream.destroyed) this.countForwarded(request.cutAt - request.offset);
          await write(piece.subarray(0, request.cutAt - request.offset));
          this.applied['reset-request'] += 1;
          closeBoth();
          return;
        }
        if (!upstream.destroyed) this.countForwarded(piece.length);
        await write(piece);
        request.offset += piece.length;
        if (bodyLeft === 0) request = undefined;
      }
    });

    forward(upstream, client, async (input, write) => {
      let chunk = input;
      const r = response;
      if (r.fault === 'corrupt-response-body' && !r.headDone) {
        r.head = Buffer.concat([r.head, chunk]);
        const end = r.head.indexOf('\r\n\r\n');
        if (end >= 0) {
          r.headDone = true;
          const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(r.head.subarray(0, end).toString('latin1'))?.[1] ?? 0);
          if (length > 0) r.corruptAt = end + 4 + Math.floor(random() * length);
        }
      }
      if (r.corruptAt !== undefined && r.corruptAt >= r.offset && r.corruptAt < r.offset + chunk.length) {
        chunk = Buffer.from(chunk);
        chunk[r.corruptAt - r.offset] = (chunk[r.corruptAt - r.offset] ?? 0) ^ 0x5a;
        r.corruptAt = undefined;
        this.applied['corrupt-response-body'] += 1;
      }
      if (r.offset + chunk.length > r.cutAt) {
        await write(chunk.subarray(0, r.cutAt - r.offset));
        this.applied['reset-response'] += 1;
        closeBoth();
        return;
      }
      if (r.offset + chunk.length > r.stallAt) {
        r.stallAt = Infinity;
        this.applied.stall += 1;
        await new Promise((resolve) => setTimeout(resolve, this.options.stallMs ?? 3000));
      }
      if (r.fault === 'slow' && r.offset < SLOW_BYTES) {
        if (r.offset === 0) this.applied.slow += 1;
        for (let at = 0; at < chunk.length; at += 1024) {
          await write(chunk.subarray(at, at + 1024));
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      } else await write(chunk);
      r.offset += chunk.length;
    });
  }
}

interface ResponseFault {
  fault: Fault;
  offset: number;
  cutAt: number;
  stallAt: number;
  corruptAt: number | undefined;
  head: Buffer;
  headDone: boolean;
}

/** Trickled in 1 KiB pieces: the first 256 KiB of a slow answer. */
const SLOW_BYTES = 256 * 1024;

type Handler = (chunk: Buffer, write: (chunk: Buffer) => Promise<void>) => Promise<void>;

/** Feeds src's chunks, one at a time and in order, to `handle`, which writes to dst with backpressure. */
function forward(src: Socket, dst: Socket, handle: Handler): void {
  const queue: Buffer[] = [];
  let busy = false;
  const write = async (chunk: Buffer): Promise<void> => {
    if (dst.destroyed || chunk.length === 0) return;
    if (!dst.write(chunk)) await new Promise<void>((resolve) => dst.once('drain', resolve).once('close', resolve));
  };
  const drain = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    src.pause();
    while (queue.length > 0 && !src.destroyed) await handle(queue.shift() as Buffer, write);
    busy = false;
    if (!src.destroyed) src.resume();
  };
  src.on('data', (chunk: Buffer) => {
    queue.push(chunk);
    void drain();
  });
  src.on('end', () => {
    const finish = (): void => {
      if (busy || queue.length > 0) setTimeout(finish, 10);
      else if (!dst.destroyed) dst.end();
    };
    finish();
  });
}

function zeroCounts(): Counts {
  return Object.fromEntries(FAULTS.map((f) => [f, 0])) as Counts;
}
