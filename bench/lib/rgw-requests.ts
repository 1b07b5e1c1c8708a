// The requests the bench's RGW handled, read from its log: at the default debug level 1 the beast
// frontend writes one access line per request, with the time the request started (the same
// machine's clock as Date.now()), the method, the target (path-style: /bucket/key?query) and the
// status. What it does not say is how many bytes the request carried in; callers that know the
// bodies (the files they wrote) add those themselves.
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import path from 'node:path';

export interface RgwRequest {
  /** When the server started the request (epoch ms, millisecond resolution). */
  startedAtMs: number;
  method: string;
  /** The object key, decoded; undefined for a request on the bucket (a listing). */
  key: string | undefined;
  /** A listing's prefix parameter, decoded. */
  listPrefix: string | undefined;
  /** The query string as sent ('?uploadId=...', '?list-type=2&prefix=...', or ''). */
  query: string;
  status: number;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const ACCESS_LINE = /beast: 0x[0-9a-f]+: \S+ - \S+ \[(\d{2})\/(\w{3})\/(\d{4}):(\d{2}):(\d{2}):(\d{2})\.(\d{3}) \+0000\] "(\S+) (\S+) HTTP\/[\d.]+" (\d{3})/;
/** Bounded read of one run's log: a run of the burst cases writes a few MiB. */
const MAX_READ_BYTES = 512 * 1024 * 1024;
const FLUSH_POLL_MS = 100;
const FLUSH_TIMEOUT_MS = 30_000;

/** One access line, or undefined for any other line of the log. */
export function parseAccessLine(line: string, bucket: string): RgwRequest | undefined {
  const m = ACCESS_LINE.exec(line);
  if (m === null) return undefined;
  const [, day, month, year, hh, mm, ss, ms, method, target, status] = m as unknown as string[];
  const startedAtMs = Date.UTC(Number(year), MONTHS.indexOf(month as string), Number(day), Number(hh), Number(mm), Number(ss), Number(ms));
  const url = new URL(target as string, 'http://rgw');
  const bucketPath = `/${bucket}`;
  if (url.pathname !== bucketPath && !url.pathname.startsWith(`${bucketPath}/`)) return { startedAtMs, method: method as string, key: undefined, listPrefix: undefined, query: url.search, status: Number(status) };
  const keyPath = url.pathname.slice(bucketPath.length + 1);
  const key = keyPath === '' ? undefined : decodeURIComponent(keyPath);
  const listPrefix = key === undefined ? (url.searchParams.get('prefix') ?? undefined) : undefined;
  return { startedAtMs, method: method as string, key, listPrefix, query: url.search, status: Number(status) };
}

/**
 * The snapshot a request was about, for keys under `prefix` (`{prefix}{name}/...`) and listings of
 * one snapshot's keys; undefined for anything else (the whole prefix's listing, probes).
 */
export function snapshotOf(request: RgwRequest, prefix: string): string | undefined {
  const keyish = request.key ?? request.listPrefix;
  if (keyish === undefined || !keyish.startsWith(prefix)) return undefined;
  const rest = keyish.slice(prefix.length);
  const slash = rest.indexOf('/');
  return slash > 0 ? rest.slice(0, slash) : undefined;
}

/** The server's log from a marked offset on. */
export class RgwRequestLog {
  private readonly file: string;
  private offset = 0;

  constructor(
    rgwStateDir: string,
    private readonly bucket: string,
  ) {
    this.file = path.join(rgwStateDir, 'log', 'client.rgw.local.log');
  }

  async mark(): Promise<void> {
    this.offset = await stat(this.file).then((s) => s.size, () => 0);
  }

  /**
   * Every request since the mark, once the server has logged all requests made before this call:
   * it asks for a key of its own and waits for that request's line (the log is written behind).
   */
  async since(s3: S3Client): Promise<RgwRequest[]> {
    const markerKey = `.bench-log-marker/${randomBytes(8).toString('hex')}`;
    await s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: markerKey })).catch(() => undefined);
    const deadline = performance.now() + FLUSH_TIMEOUT_MS;
    for (;;) {
      const requests = await this.read();
      if (requests.some((r) => r.key === markerKey)) return requests.filter((r) => r.key !== markerKey);
      if (performance.now() > deadline) throw new Error(`rgw log: the marker request ${markerKey} did not appear in ${this.file} within ${FLUSH_TIMEOUT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, FLUSH_POLL_MS));
    }
  }

  private async read(): Promise<RgwRequest[]> {
    const handle = await open(this.file, 'r');
    try {
      const { size } = await handle.stat();
      const length = size - this.offset;
      if (length > MAX_READ_BYTES) throw new Error(`rgw log: ${length} bytes since the mark, more than the ${MAX_READ_BYTES} read`);
      const buffer = Buffer.alloc(Math.max(0, length));
      let read = 0;
      while (read < buffer.length) {
        const { bytesRead } = await handle.read(buffer, read, buffer.length - read, this.offset + read);
        if (bytesRead === 0) break;
        read += bytesRead;
      }
      return buffer
        .subarray(0, read)
        .toString('latin1')
        .split('\n')
        .flatMap((line) => {
          const request = parseAccessLine(line, this.bucket);
          return request === undefined ? [] : [request];
        });
    } finally {
      await handle.close();
    }
  }
}
