// What an HTTP/1.1 answer to a ranged GET says, read from raw socket bytes. Pure: no I/O, and only
// syntax that erases to JavaScript, because the range-download thread loads this file as it is
// (see s3-range-download-thread.ts).

export interface ResponseHead {
  status: number;
  /** Lower-case names; a repeated header's values joined with ", ". */
  headers: ReadonlyMap<string, string>;
  /** The server keeps the connection open after this answer's body. */
  keepAlive: boolean;
}

/** How the body of an answer ends. */
export type BodyFraming = { kind: 'length'; bytes: number } | { kind: 'chunked' } | { kind: 'until-close' };

/** S3 answers with a few hundred bytes of head; anything near this is not an S3 server. */
export const HEAD_LIMIT_BYTES = 16 * 1024; // 16 KiB
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: [^\r\n]*)?$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Gathers an answer's head from the reads of a socket, however the reads cut it, into one buffer
 * of its own reused for every answer on the connection. Interim 1xx answers are skipped.
 */
export class ResponseHeadReader {
  private readonly bytes: Buffer;
  private length = 0;

  constructor(limitBytes: number = HEAD_LIMIT_BYTES) {
    this.bytes = Buffer.allocUnsafe(limitBytes);
  }

  /** Forgets a partial head: the next read starts a new answer. */
  reset(): void {
    this.length = 0;
  }

  /**
   * Takes bytes [start, end) of a read. Once the blank line that ends the head has come, returns
   * the head and how many of these bytes it took (the rest is body); until then, undefined.
   * Throws on bytes that are not an HTTP/1.x answer head.
   */
  read(chunk: Uint8Array, start: number, end: number): { head: ResponseHead; used: number } | undefined {
    let used = 0;
    for (;;) {
      const from = start + used;
      const searchFrom = Math.max(0, this.length - (HEAD_END.length - 1));
      const copied = Math.min(end - from, this.bytes.length - this.length);
      this.bytes.set(chunk.subarray(from, from + copied), this.length);
      this.length += copied;
      const blankLine = this.bytes.subarray(0, this.length).indexOf(HEAD_END, searchFrom);
      if (blankLine < 0) {
        if (this.length === this.bytes.length) throw new Error(`the answer's head is longer than ${this.bytes.length} bytes`);
        return undefined;
      }
      const headBytes = blankLine + HEAD_END.length;
      used += copied - (this.length - headBytes);
      const head = parseHead(this.bytes.toString('latin1', 0, blankLine));
      this.length = 0;
      // 101 would switch protocols, which a GET never asks for.
      if (head.status >= 200 || head.status === 101) return { head, used };
      if (start + used === end) return undefined;
    }
  }
}

function parseHead(text: string): ResponseHead {
  const lines = text.split('\r\n');
  const statusLine = STATUS_LINE.exec(lines[0] ?? '');
  if (statusLine === null) throw new Error(`the answer does not start with an HTTP/1.x status line: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    // Folded lines (obsolete) and names with spaces are how responses get smuggled: refused.
    if (!HEADER_NAME.test(name)) throw new Error(`the answer has a malformed header line: ${JSON.stringify(line.slice(0, 80))}`);
    const key = name.toLowerCase();
    const value = line.slice(colon + 1).trim();
    const earlier = headers.get(key);
    headers.set(key, earlier === undefined ? value : `${earlier}, ${value}`);
  }
  const connection = (headers.get('connection') ?? '').toLowerCase();
  const keepAlive = statusLine[1] === '1' ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
  return { status: Number(statusLine[2]), headers, keepAlive };
}

/** How the body of an answer with this head ends (RFC 9112, section 6.3). Throws on a Content-Length that cannot be trusted. */
export function bodyFraming(head: ResponseHead): BodyFraming {
  if (head.status === 204 || head.status === 304) return { kind: 'length', bytes: 0 };
  const transferEncoding = head.headers.get('transfer-encoding');
  if (transferEncoding !== undefined) {
    return transferEncoding.toLowerCase().split(',').at(-1)?.trim() === 'chunked' ? { kind: 'chunked' } : { kind: 'until-close' };
  }
  const contentLength = head.headers.get('content-length');
  if (contentLength === undefined) return { kind: 'until-close' };
  const values = new Set(contentLength.split(',').map((value) => value.trim()));
  const [only] = values;
  if (values.size !== 1 || only === undefined || !/^\d{1,15}$/.test(only)) throw new Error(`the answer has an unusable Content-Length: ${JSON.stringify(contentLength)}`);
  return { kind: 'length', bytes: Number(only) };
}

/**
 * What is wrong with the head of an answer to a GET of bytes [start, end), or undefined when it
 * is the range asked for: 206 with that Content-Range and Content-Length.
 */
export function rangeAnswerProblem(status: number, contentRange: string | undefined, contentLength: string | undefined, start: number, end: number): string | undefined {
  if (status !== 206) return `answered ${status} to a ranged GET, not 206 Partial Content`;
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec((contentRange ?? '').trim());
  if (match === null) return `answered with Content-Range ${JSON.stringify(contentRange ?? '')}`;
  if (Number(match[1]) !== start || Number(match[2]) !== end - 1) return `answered bytes ${match[1]}-${match[2]} when ${start}-${end - 1} were asked for`;
  if (contentLength !== undefined && Number(contentLength) !== end - start) return `answered ${contentLength} bytes when ${end - start} were asked for`;
  return undefined;
}

/** S3's error code in an error answer's XML body, if it has one. */
export function s3ErrorCode(body: string): string | undefined {
  return /<Code>([^<]{1,100})<\/Code>/.exec(body)?.[1];
}
