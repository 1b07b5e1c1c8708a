// The body of a range-download thread (see s3-range-download.ts). Node runs this file as it is,
// from src/ (type stripping) or from dist/, so it uses only syntax that erases to JavaScript, and
// loads its sibling modules by URL (an import written `./x.js` would not find `./x.ts` in src/).
//
// Why a thread of its own: on the main thread the S3 client's response handling and the garbage
// collection of its socket buffers (in a heap that holds the whole agent) cost more CPU than the
// bytes themselves. Here a GET is a URL signed on the main thread, each socket reads into one
// buffer for the life of its connection (range-http-connection.ts), and the body is written from
// that buffer straight to the file: this thread has nothing else to do meanwhile.
import { writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import type * as HttpResponseHead from './http-response-head.js';
import type * as RangeHttpConnection from './range-http-connection.js';
import type { RangeConnection, RangeFailure } from './range-http-connection.js';

export type { RangeFailure } from './range-http-connection.js';

export interface RangeDownloadSetup {
  /** An open descriptor of the file; the owner keeps it open until this thread has ended. */
  fd: number;
  /** Connections at once: one per range in flight. */
  sockets: number;
  connectTimeoutMs: number;
  /** No byte either way for this long: the GET failed (in transit, so it is resumed). */
  idleTimeoutMs: number;
}

/** owner -> thread: GET bytes [start, end) of the object at `url` and write them at the same offsets. */
export interface RangeFetch {
  id: number;
  url: string;
  start: number;
  /** Exclusive. */
  end: number;
}

/** thread -> owner, in this order for one fetch: written extents, then done or failed. */
export type RangeReport =
  | { written: { id: number; position: number; length: number } }
  | { done: number }
  | { failed: number; failure: RangeFailure };

/**
 * Each socket read is written at once (it is gone at the next read), but the owner hears of the
 * writes in steps of this much: a message per read would cost the owner more than the write.
 */
const REPORT_EVERY_BYTES = 1024 * 1024; // 1 MiB
/** One read takes what the kernel has queued for the socket, up to this much. */
const READ_BUFFER_BYTES = 256 * 1024; // 256 KiB

/** A sibling module, .ts when run from the sources, .js when built (see the note at the top). */
async function sibling<T>(name: string): Promise<T> {
  const extension = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return (await import(new URL(`./${name}${extension}`, import.meta.url).href)) as T;
}

/** Writes [offset, offset + length) of `buffer` at `position` whole: a short write (a signal, a disk about to fill) is continued. */
function writeAt(fd: number, buffer: Buffer, offset: number, length: number, position: number): void {
  for (let written = 0; written < length; ) {
    const more = writeSync(fd, buffer, offset + written, length - written, position + written);
    if (more === 0) throw new Error(`write at ${position + written} made no progress`);
    written += more;
  }
}

function run(port: NonNullable<typeof parentPort>, setup: RangeDownloadSetup, heads: typeof HttpResponseHead, connections: typeof RangeHttpConnection): void {
  const report = (message: RangeReport): void => port.postMessage(message);
  /** Connections between GETs, by origin: the next range goes over one of them. */
  const idle = new Map<string, RangeConnection[]>();

  /** A kept connection to the URL's server (one the server closed meanwhile is dropped), else a new one; `fresh`: always a new one. */
  const connectionFor = (url: URL, fresh: boolean): RangeConnection => {
    const waiting = fresh ? [] : (idle.get(url.origin) ?? []);
    for (let kept = waiting.pop(); kept !== undefined; kept = waiting.pop()) {
      if (kept.reusable) return kept;
      kept.destroy();
    }
    return new connections.RangeConnection({
      protocol: url.protocol === 'https:' ? 'https:' : 'http:',
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port),
      readBufferBytes: READ_BUFFER_BYTES,
      connectTimeoutMs: setup.connectTimeoutMs,
      idleTimeoutMs: setup.idleTimeoutMs,
      heads,
    });
  };
  const release = (url: URL, connection: RangeConnection): void => {
    if (!connection.reusable) return;
    const waiting = idle.get(url.origin) ?? [];
    // More idle connections than GETs at once are never needed again.
    if (waiting.length >= setup.sockets) connection.destroy();
    else idle.set(url.origin, [...waiting, connection]);
  };

  const fetchRange = async (job: RangeFetch): Promise<void> => {
    const url = new URL(job.url);
    const get = { target: `${url.pathname}${url.search}`, host: url.host, start: job.start, end: job.end };
    let reportedTo = job.start;
    let writtenTo = job.start;
    const reportWritten = (): void => {
      if (writtenTo === reportedTo) return;
      report({ written: { id: job.id, position: reportedTo, length: writtenTo - reportedTo } });
      reportedTo = writtenTo;
    };
    const sink = (buffer: Buffer, offset: number, length: number, position: number): void => {
      writeAt(setup.fd, buffer, offset, length, position);
      writtenTo = position + length;
      if (writtenTo - reportedTo >= REPORT_EVERY_BYTES) reportWritten();
    };
    let connection = connectionFor(url, false);
    let ended = await connection.get(get, sink);
    // A kept-alive connection the server closed before it saw the GET: asking again is safe, on a new one.
    if (ended.unanswered && connection.carried > 1) {
      connection.destroy();
      connection = connectionFor(url, true);
      ended = await connection.get(get, sink);
    }
    release(url, connection);
    // A cut connection: the bytes that did arrive are written and reported, so the retry asks only for the rest.
    reportWritten();
    report(ended.failure === undefined ? { done: job.id } : { failed: job.id, failure: ended.failure });
  };

  port.on('message', (job: RangeFetch) => {
    // Not expected (a URL this thread cannot connect to at all): that GET fails, the thread goes on.
    fetchRange(job).catch((error: unknown) => report({ failed: job.id, failure: { reason: 'transit', message: error instanceof Error ? error.message : String(error) } }));
  });
}

const rangeDownload = (workerData as { rangeDownload?: RangeDownloadSetup } | null)?.rangeDownload;
if (parentPort !== null && rangeDownload !== undefined) {
  const [heads, connections] = await Promise.all([sibling<typeof HttpResponseHead>('http-response-head'), sibling<typeof RangeHttpConnection>('range-http-connection')]);
  run(parentPort, rangeDownload, heads, connections);
}
