// The body of a range-download thread (see s3-range-download.ts). Node runs this file as it is,
// from src/ (type stripping) or from dist/, so it imports only Node's own modules and uses only
// syntax that erases to JavaScript.
//
// Why a thread of its own with plain node:http: on the main thread the S3 client's response
// handling and the garbage collection of its 64 KiB socket buffers (in a heap that holds the
// whole agent) cost more CPU than the bytes themselves. Here the heap is small, a GET is a URL
// signed on the main thread, and each batch of network chunks goes to the file in one
// synchronous vectored write: this thread has nothing else to do meanwhile.
import { writevSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { parentPort, workerData } from 'node:worker_threads';

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

/** thread -> owner, in this order for one fetch: written extents, then done or failed. */
export type RangeReport =
  | { written: { id: number; position: number; length: number } }
  | { done: number }
  | { failed: number; failure: RangeFailure };

/** Network chunks are 16 to 64 KiB: one write per chunk would be a system call each. */
const WRITE_BATCH_BYTES = 1024 * 1024; // 1 MiB
/** Below the usual IOV_MAX of 1,024 entries, whatever the chunk sizes. */
const WRITE_BATCH_CHUNKS = 256;
/** Enough of an error answer to find S3's <Code> in it. */
const ERROR_BODY_BYTES = 4096;

/**
 * What is wrong with the head of an answer to a GET of bytes [start, end), or undefined when it
 * is the range asked for: 206 with that Content-Range and Content-Length. Pure.
 */
export function rangeAnswerProblem(status: number, contentRange: string | undefined, contentLength: string | undefined, start: number, end: number): string | undefined {
  if (status !== 206) return `answered ${status} to a ranged GET, not 206 Partial Content`;
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec((contentRange ?? '').trim());
  if (match === null) return `answered with Content-Range ${JSON.stringify(contentRange ?? '')}`;
  if (Number(match[1]) !== start || Number(match[2]) !== end - 1) return `answered bytes ${match[1]}-${match[2]} when ${start}-${end - 1} were asked for`;
  if (contentLength !== undefined && Number(contentLength) !== end - start) return `answered ${contentLength} bytes when ${end - start} were asked for`;
  return undefined;
}

/** S3's error code in an error answer's XML body, if it has one. Pure. */
export function s3ErrorCode(body: string): string | undefined {
  return /<Code>([^<]{1,100})<\/Code>/.exec(body)?.[1];
}

function run(port: NonNullable<typeof parentPort>, setup: RangeDownloadSetup): void {
  const agents = {
    'http:': new http.Agent({ keepAlive: true, maxSockets: setup.sockets }),
    'https:': new https.Agent({ keepAlive: true, maxSockets: setup.sockets }),
  };
  const report = (message: RangeReport): void => port.postMessage(message);

  /** Writes the batch at `position` whole: a short write (a signal, a disk about to fill) is continued. */
  const writeAt = (buffers: Buffer[], bytes: number, position: number): void => {
    let written = writevSync(setup.fd, buffers, position);
    if (written === bytes) return;
    const rest = Buffer.concat(buffers, bytes);
    while (written < bytes) {
      const more = writevSync(setup.fd, [rest.subarray(written)], position + written);
      if (more === 0) throw new Error(`write at ${position + written} made no progress`);
      written += more;
    }
  };

  const fetchRange = (job: RangeFetch): void => {
    const url = new URL(job.url);
    const agent = url.protocol === 'https:' ? agents['https:'] : agents['http:'];
    const client = url.protocol === 'https:' ? https : http;
    let settled = false;
    let received = 0;
    let batch: Buffer[] = [];
    let batchBytes = 0;

    const finish = (failure: RangeFailure | undefined): void => {
      if (settled) return;
      settled = true;
      request.destroy();
      report(failure === undefined ? { done: job.id } : { failed: job.id, failure });
    };
    /** Writes what is gathered; false when the write failed (the fetch is then finished). */
    const flush = (): boolean => {
      if (batchBytes === 0) return true;
      const position = job.start + received - batchBytes;
      const length = batchBytes;
      try {
        writeAt(batch, length, position);
      } catch (error) {
        finish({ reason: 'local', code: (error as NodeJS.ErrnoException).code, message: error instanceof Error ? error.message : String(error) });
        return false;
      }
      batch = [];
      batchBytes = 0;
      report({ written: { id: job.id, position, length } });
      return true;
    };
    /** A cut connection: the bytes that did arrive are kept, so the retry asks only for the rest. */
    const cut = (error: Error): void => {
      if (settled) return;
      if (flush()) finish({ reason: 'transit', message: error.message });
    };

    const request = client.request(url, { agent, headers: { range: `bytes=${job.start}-${job.end - 1}` } }, (response) => {
      const status = response.statusCode ?? 0;
      if (status >= 300) {
        const parts: Buffer[] = [];
        let kept = 0;
        response.on('data', (chunk: Buffer) => {
          if (kept < ERROR_BODY_BYTES) parts.push(chunk);
          kept += chunk.length;
        });
        response.on('end', () => finish({ reason: 'status', status, code: s3ErrorCode(Buffer.concat(parts).toString('utf8', 0, ERROR_BODY_BYTES)) }));
        response.on('error', cut);
        return;
      }
      const problem = rangeAnswerProblem(status, response.headers['content-range'], response.headers['content-length'], job.start, job.end);
      if (problem !== undefined) {
        finish({ reason: 'answer', message: problem });
        return;
      }
      const length = job.end - job.start;
      response.on('data', (chunk: Buffer) => {
        if (settled) return;
        if (received + chunk.length > length) {
          finish({ reason: 'answer', message: `the body of bytes ${job.start}-${job.end - 1} came back longer than the ${length} bytes asked for` });
          return;
        }
        batch.push(chunk);
        batchBytes += chunk.length;
        received += chunk.length;
        if (batchBytes >= WRITE_BATCH_BYTES || batch.length >= WRITE_BATCH_CHUNKS) flush();
      });
      response.on('end', () => {
        if (settled || !flush()) return;
        if (received === length) finish(undefined);
        else finish({ reason: 'transit', message: `the body ended after ${received} of ${length} bytes` });
      });
      // A connection closed before the last byte ends the body with an error ('aborted').
      response.on('error', cut);
    });
    request.on('error', cut);
    // Idle time, not total time: a range keeps its socket busy for as long as it takes.
    request.setTimeout(setup.idleTimeoutMs, () => cut(new Error(`no byte for ${setup.idleTimeoutMs} ms`)));
    request.on('socket', (socket) => {
      if (!socket.connecting) return;
      const timer = setTimeout(() => cut(new Error(`no connection within ${setup.connectTimeoutMs} ms`)), setup.connectTimeoutMs);
      socket.once('connect', () => clearTimeout(timer));
      socket.once('close', () => clearTimeout(timer));
    });
    request.end();
  };

  port.on('message', (job: RangeFetch) => fetchRange(job));
}

if (parentPort !== null && (workerData as { rangeDownload?: RangeDownloadSetup } | null)?.rangeDownload !== undefined) {
  run(parentPort, (workerData as { rangeDownload: RangeDownloadSetup }).rangeDownload);
}
