import { describe, expect, it } from 'vitest';
import { bodyFraming, ResponseHeadReader, type ResponseHead } from '../../src/remote/http-response-head.js';

const HEAD = 'HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/100\r\nContent-Length: 10\r\nETag: "abc"\r\n\r\n';
const BODY = '0123456789';

/** Feeds `pieces` as successive socket reads; the head, and the body bytes that came after it. */
function readAll(reader: ResponseHeadReader, pieces: Buffer[]): { head: ResponseHead | undefined; body: string } {
  let head: ResponseHead | undefined;
  let body = '';
  for (const piece of pieces) {
    if (head !== undefined) {
      body += piece.toString('latin1');
      continue;
    }
    const read = reader.read(piece, 0, piece.length);
    if (read === undefined) continue;
    head = read.head;
    body += piece.toString('latin1', read.used);
  }
  return { head, body };
}

describe('ResponseHeadReader', () => {
  it('reads a head however the reads cut it, the status line and the headers included', () => {
    const answer = Buffer.from(HEAD + BODY, 'latin1');
    for (let cut = 1; cut < answer.length; cut += 1) {
      const { head, body } = readAll(new ResponseHeadReader(), [answer.subarray(0, cut), answer.subarray(cut)]);
      expect({ cut, status: head?.status, range: head?.headers.get('content-range'), body }).toEqual({ cut, status: 206, range: 'bytes 0-9/100', body: BODY });
    }
  });

  it('reads a head that comes one byte at a time', () => {
    const answer = Buffer.from(HEAD + BODY, 'latin1');
    const pieces = Array.from({ length: answer.length }, (_, i) => answer.subarray(i, i + 1));
    const { head, body } = readAll(new ResponseHeadReader(), pieces);
    expect(head?.headers.get('content-length')).toBe('10');
    expect(body).toBe(BODY);
  });

  it('takes only the head of a read at an offset, and starts afresh after a reset', () => {
    const reader = new ResponseHeadReader();
    const read = Buffer.from(`junk${HEAD}${BODY}`, 'latin1');
    expect(reader.read(read, 4, read.length)?.used).toBe(HEAD.length);
    expect(reader.read(Buffer.from('HTTP/1.1 5', 'latin1'), 0, 10)).toBeUndefined();
    reader.reset();
    expect(reader.read(Buffer.from(HEAD, 'latin1'), 0, HEAD.length)?.head.status).toBe(206);
  });

  it('skips an interim 100 Continue, in the same read or not', () => {
    const interim = 'HTTP/1.1 100 Continue\r\n\r\n';
    const together = Buffer.from(interim + HEAD + BODY, 'latin1');
    const read = new ResponseHeadReader().read(together, 0, together.length);
    expect(read?.head.status).toBe(206);
    expect(read?.used).toBe(interim.length + HEAD.length);
    const { head, body } = readAll(new ResponseHeadReader(), [Buffer.from(interim, 'latin1'), Buffer.from(HEAD + BODY, 'latin1')]);
    expect([head?.status, body]).toEqual([206, BODY]);
  });

  it('joins repeated headers and lower-cases names', () => {
    const text = 'HTTP/1.1 200 OK\r\nX-Amz-Meta-A: 1\r\nx-amz-meta-a: 2\r\n\r\n';
    const read = new ResponseHeadReader().read(Buffer.from(text, 'latin1'), 0, text.length);
    expect(read?.head.headers.get('x-amz-meta-a')).toBe('1, 2');
  });

  it.each([
    ['HTTP/1.1 close', 'HTTP/1.1 206 Partial Content\r\nConnection: close\r\n\r\n', false],
    ['HTTP/1.1 default', 'HTTP/1.1 206 Partial Content\r\n\r\n', true],
    ['HTTP/1.0 default', 'HTTP/1.0 206 Partial Content\r\n\r\n', false],
    ['HTTP/1.0 keep-alive', 'HTTP/1.0 206 Partial Content\r\nConnection: Keep-Alive\r\n\r\n', true],
  ])('knows whether the connection stays open: %s', (_label, text, keepAlive) => {
    expect(new ResponseHeadReader().read(Buffer.from(text, 'latin1'), 0, text.length)?.head.keepAlive).toBe(keepAlive);
  });

  it.each([
    ['not HTTP', 'SSH-2.0-OpenSSH_9.2\r\n\r\n'],
    ['HTTP/2 status line', 'HTTP/2 206\r\n\r\n'],
    ['a status that is not three digits', 'HTTP/1.1 20 OK\r\n\r\n'],
    ['a header line without a colon', 'HTTP/1.1 206 Partial Content\r\nContent-Length 10\r\n\r\n'],
    ['a folded header line', 'HTTP/1.1 206 Partial Content\r\nX-A: 1\r\n  continued\r\n\r\n'],
    ['a space before the colon', 'HTTP/1.1 206 Partial Content\r\nContent-Length : 10\r\n\r\n'],
  ])('refuses a malformed head: %s', (_label, text) => {
    expect(() => new ResponseHeadReader().read(Buffer.from(text, 'latin1'), 0, text.length)).toThrow(Error);
  });

  it('refuses a head longer than its limit instead of gathering it without end', () => {
    const reader = new ResponseHeadReader(64);
    const line = Buffer.from(`HTTP/1.1 206 Partial Content\r\nX-Padding: ${'x'.repeat(100)}`, 'latin1');
    expect(() => reader.read(line, 0, line.length)).toThrow(/longer than 64 bytes/);
  });
});

describe('bodyFraming', () => {
  const head = (status: number, headers: Record<string, string>): ResponseHead => ({ status, headers: new Map(Object.entries(headers)), keepAlive: true });

  it.each<[string, ResponseHead, ReturnType<typeof bodyFraming>]>([
    ['Content-Length', head(206, { 'content-length': '10' }), { kind: 'length', bytes: 10 }],
    ['a repeated, equal Content-Length', head(206, { 'content-length': '10, 10' }), { kind: 'length', bytes: 10 }],
    ['chunked', head(206, { 'transfer-encoding': 'chunked', 'content-length': '10' }), { kind: 'chunked' }],
    ['another transfer coding', head(206, { 'transfer-encoding': 'gzip' }), { kind: 'until-close' }],
    ['no length at all', head(206, {}), { kind: 'until-close' }],
    ['204', head(204, { 'content-length': '10' }), { kind: 'length', bytes: 0 }],
  ])('%s', (_label, answer, framing) => {
    expect(bodyFraming(answer)).toEqual(framing);
  });

  it.each(['10, 11', '-1', '1e3', ''])('refuses the Content-Length %j', (value) => {
    expect(() => bodyFraming(head(206, { 'content-length': value }))).toThrow(/Content-Length/);
  });
});
