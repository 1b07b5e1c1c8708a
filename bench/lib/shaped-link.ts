// A slow uplink on one machine: a TCP proxy on 127.0.0.1 that forwards to the local server at a
// fixed rate per direction (one token bucket each way, shared by every connection, as one link
// is), so a tool pointed at it sees the bandwidth of a real uplink while the server stays local.
// No latency is added. It also counts the bytes that cross it each way, which is what a tool
// really sent, whatever it reports. Buffers are bounded: a connection whose queue is full has its
// source paused until the link has drained it.
import { createServer, connect, type Server, type Socket } from 'node:net';

/** Largest slice written at once: about a millisecond at 100 Mbit/s. */
const SLICE_BYTES = 16 * 1024;
/** Queued bytes per connection and direction before its source is paused. */
const QUEUE_HIGH_BYTES = 1024 * 1024;
const MAX_CONNECTIONS = 512;

export interface LinkCounters {
  /** Client -> server bytes (requests and uploads). */
  up: number;
  /** Server -> client bytes. */
  down: number;
  connections: number;
}

/** One pipe (source socket -> destination socket) waiting for tokens. */
class Pipe {
  private readonly queue: Buffer[] = [];
  queued = 0;
  private ended = false;
  blocked = false;

  constructor(
    private readonly source: Socket,
    readonly destination: Socket,
    private readonly bucket: TokenBucket,
  ) {
    source.on('data', (chunk: Buffer) => {
      this.queue.push(chunk);
      this.queued += chunk.length;
      if (this.queued > QUEUE_HIGH_BYTES) source.pause();
      bucket.wake(this);
    });
    source.on('end', () => {
      this.ended = true;
      bucket.wake(this);
    });
    destination.on('drain', () => {
      this.blocked = false;
      bucket.wake(this);
    });
  }

  /** Writes up to `budget` bytes; returns how many. */
  send(budget: number): number {
    const head = this.queue[0];
    if (head === undefined) return 0;
    const n = Math.min(budget, head.length, SLICE_BYTES);
    const slice = head.subarray(0, n);
    if (n === head.length) this.queue.shift();
    else this.queue[0] = head.subarray(n);
    this.queued -= n;
    if (this.queued <= QUEUE_HIGH_BYTES / 2 && this.source.isPaused()) this.source.resume();
    if (!this.destination.write(slice)) this.blocked = true;
    return n;
  }

  /** Bytes the head of the queue needs before it is worth a write. */
  nextNeed(): number {
    return Math.min(this.queue[0]?.length ?? 0, 1460);
  }

  get idle(): boolean {
    return this.queue.length === 0;
  }

  finishIfDone(): void {
    if (this.ended && this.queue.length === 0 && !this.destination.destroyed) this.destination.end();
  }
}

class TokenBucket {
  private tokens: number;
  private lastMs = performance.now();
  private readonly waiting = new Set<Pipe>();
  private timer: NodeJS.Timeout | undefined;
  bytes = 0;

  constructor(
    private readonly bytesPerS: number,
    private readonly burstBytes: number,
  ) {
    this.tokens = burstBytes;
  }

  wake(pipe: Pipe): void {
    this.waiting.add(pipe);
    if (this.timer === undefined) this.pump();
  }

  forget(pipe: Pipe): void {
    this.waiting.delete(pipe);
  }

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.lastMs) / 1000) * this.bytesPerS);
    this.lastMs = now;
  }

  private pump(): void {
    this.timer = undefined;
    this.refill();
    // Round robin over the connections that have data, one slice each per turn.
    let progress = true;
    while (progress) {
      progress = false;
      for (const pipe of [...this.waiting]) {
        if (pipe.idle) {
          pipe.finishIfDone();
          this.waiting.delete(pipe);
          continue;
        }
        if (pipe.blocked || pipe.destination.destroyed) continue;
        if (this.tokens < pipe.nextNeed()) continue;
        const n = pipe.send(Math.floor(this.tokens));
        this.tokens -= n;
        this.bytes += n;
        if (n > 0) progress = true;
      }
    }
    const starved = [...this.waiting].some((pipe) => !pipe.idle && !pipe.blocked && !pipe.destination.destroyed);
    if (starved) {
      const needMs = Math.max(1, Math.ceil(((SLICE_BYTES - this.tokens) / this.bytesPerS) * 1000));
      this.timer = setTimeout(() => this.pump(), needMs);
    }
  }
}

export class ShapedLink {
  private readonly server: Server;
  private readonly upBucket: TokenBucket;
  private readonly downBucket: TokenBucket;
  private readonly sockets = new Set<Socket>();
  private connections = 0;
  port = 0;

  /** `bitsPerS` each way, towards 127.0.0.1:`targetPort`. */
  constructor(
    private readonly targetPort: number,
    bitsPerS: number,
  ) {
    const bytesPerS = bitsPerS / 8;
    // A burst of 50 ms: a timer that fires late on a busy machine is made up for (a smaller bucket
    // caps the refill and the link runs below its rate), too little to show above the rate.
    const burst = Math.max(SLICE_BYTES, bytesPerS / 20);
    this.upBucket = new TokenBucket(bytesPerS, burst);
    this.downBucket = new TokenBucket(bytesPerS, burst);
    // Half-open: a side that has finished sending may still receive (each pipe ends its own destination).
    this.server = createServer({ allowHalfOpen: true }, (client) => this.accept(client));
    this.server.maxConnections = MAX_CONNECTIONS;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = this.server.address();
    this.port = typeof address === 'object' && address !== null ? address.port : 0;
    return this;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  counters(): LinkCounters {
    return { up: this.upBucket.bytes, down: this.downBucket.bytes, connections: this.connections };
  }

  private accept(client: Socket): void {
    this.connections += 1;
    const upstream = connect({ port: this.targetPort, host: '127.0.0.1', allowHalfOpen: true });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.sockets.add(client).add(upstream);
    const up = new Pipe(client, upstream, this.upBucket);
    const down = new Pipe(upstream, client, this.downBucket);
    // An error ends both sides at once; an orderly close of one side lets the other drain first
    // (each pipe ends its destination once its queue is empty).
    const fail = (): void => {
      client.destroy();
      upstream.destroy();
    };
    const closed = (socket: Socket): void => {
      this.sockets.delete(socket);
      if (client.destroyed && upstream.destroyed) {
        this.upBucket.forget(up);
        this.downBucket.forget(down);
      }
    };
    client.on('error', fail).on('close', () => closed(client));
    upstream.on('error', fail).on('close', () => closed(upstream));
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
