// A local HTTP server answering just enough of the S3 protocol for memsync's uploads (HeadBucket,
// PutObject, CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload,
// HeadObject, GetObject, DeleteObject, ListObjectsV2), path-style only, that records every
// request's method, path, query and headers. It shows what a profile changes on the wire; it is
// no stand-in for a real server's behaviour (tests of behaviour run against RGW).
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface RecordedRequest {
  method: string;
  /** The path without the query, e.g. /bucket/memories/a.json. */
  path: string;
  query: Record<string, string>;
  /** Lower-case names, as Node gives them. */
  headers: Record<string, string>;
  bodyBytes: number;
}

export interface RecordingServerOptions {
  /**
   * UploadPart answers are held until this many parts are in flight at once (then all held ones
   * are answered): a client allowed that many reaches it, so the maximum seen is exactly its
   * limit, not whatever the timing of a fast local server lets through. Default 1 (no holding).
   * The parts of each upload must come in whole multiples of it, or the last ones wait for ever.
   */
  holdPartsUntilInFlight?: number;
  /** Which create-only precondition the server honours: S3's If-None-Match: * or GCS's x-goog-if-generation-match: 0. */
  createOnly?: 'if-none-match' | 'goog-generation';
}

export interface RecordingS3Server {
  endpoint: string;
  requests: RecordedRequest[];
  /** The most UploadPart requests that were in flight at once (arrived, not yet answered). */
  maxPartsInFlight(): number;
  close(): Promise<void>;
}

interface StoredObject {
  body: Buffer;
  etag: string;
  metadata: Record<string, string>;
}

const md5 = (bytes: Buffer): Buffer => createHash('md5').update(bytes).digest();

function headersOf(request: IncomingMessage): Record<string, string> {
  return Object.fromEntries(Object.entries(request.headers).flatMap(([name, value]) => (typeof value === 'string' ? [[name, value]] : Array.isArray(value) ? [[name, value.join(',')]] : [])));
}

function xmlEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export async function startRecordingS3Server(options: RecordingServerOptions = {}): Promise<RecordingS3Server> {
  const hold = options.holdPartsUntilInFlight ?? 1;
  const createOnly = options.createOnly ?? 'if-none-match';
  const requests: RecordedRequest[] = [];
  const objects = new Map<string, StoredObject>();
  const uploads = new Map<string, { key: string; metadata: Record<string, string>; parts: Map<number, Buffer> }>();
  let partsInFlight = 0;
  let maxPartsInFlight = 0;
  let held: (() => void)[] = [];
  let nextUploadId = 1;

  function metadataOf(headers: Record<string, string>): Record<string, string> {
    return Object.fromEntries(Object.entries(headers).flatMap(([name, value]) => (name.startsWith('x-amz-meta-') ? [[name.slice('x-amz-meta-'.length), value]] : [])));
  }

  function send(response: ServerResponse, status: number, body = '', headers: Record<string, string> = {}): void {
    response.writeHead(status, { 'Content-Type': 'application/xml', ...headers });
    response.end(body);
  }

  /** Whether the key is taken and the request asks, in the form this server honours, to create only. */
  function createOnlyRefused(key: string, headers: Record<string, string>): boolean {
    const asked = createOnly === 'if-none-match' ? headers['if-none-match'] === '*' : headers['x-goog-if-generation-match'] === '0';
    return asked && objects.has(key);
  }

  function answerPart(response: ServerResponse, uploadId: string, partNumber: number, body: Buffer): void {
    const upload = uploads.get(uploadId);
    const answer = (): void => {
      // Counted as answered when the answer is written: the client cannot send its next part before that.
      partsInFlight -= 1;
      if (upload === undefined) return send(response, 404, '<Error><Code>NoSuchUpload</Code></Error>');
      upload.parts.set(partNumber, body);
      send(response, 200, '', { ETag: `"${md5(body).toString('hex')}"` });
    };
    held.push(answer);
    if (held.length >= hold) {
      const release = held;
      held = [];
      for (const next of release) next();
    }
  }

  function complete(response: ServerResponse, uploadId: string, headers: Record<string, string>): void {
    const upload = uploads.get(uploadId);
    if (upload === undefined) return send(response, 404, '<Error><Code>NoSuchUpload</Code></Error>');
    if (createOnlyRefused(upload.key, headers)) return send(response, 412, '<Error><Code>PreconditionFailed</Code></Error>');
    const numbers = [...upload.parts.keys()].sort((a, b) => a - b);
    const parts = numbers.map((n) => upload.parts.get(n) ?? Buffer.alloc(0));
    const etag = `"${md5(Buffer.concat(parts.map(md5))).toString('hex')}-${parts.length}"`;
    objects.set(upload.key, { body: Buffer.concat(parts), etag, metadata: upload.metadata });
    uploads.delete(uploadId);
    send(response, 200, `<CompleteMultipartUploadResult><Key>${xmlEscape(upload.key)}</Key><ETag>${xmlEscape(etag)}</ETag></CompleteMultipartUploadResult>`);
  }

  function list(response: ServerResponse, prefix: string): void {
    const keys = [...objects.keys()].filter((key) => key.startsWith(prefix)).sort();
    const contents = keys
      .map((key) => {
        const object = objects.get(key);
        return `<Contents><Key>${xmlEscape(key)}</Key><Size>${object?.body.length ?? 0}</Size><ETag>${xmlEscape(object?.etag ?? '')}</ETag><LastModified>${new Date().toISOString()}</LastModified></Contents>`;
      })
      .join('');
    send(response, 200, `<ListBucketResult><Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${keys.length}</KeyCount><IsTruncated>false</IsTruncated>${contents}</ListBucketResult>`);
  }

  function handle(request: IncomingMessage, response: ServerResponse, body: Buffer, recorded: RecordedRequest): void {
    const { method, query, headers } = recorded;
    // Path style: /bucket/key...
    const [, , ...keyParts] = recorded.path.split('/');
    const key = decodeURIComponent(keyParts.join('/'));
    if (key === '') {
      if (method === 'GET' && query['list-type'] === '2') return list(response, query.prefix ?? '');
      if (method === 'HEAD') return send(response, 200);
      // DeleteObjects (POST ?delete) and anything else on the bucket: not something memsync should send.
      return send(response, 501, '<Error><Code>NotImplemented</Code></Error>');
    }
    if (method === 'POST' && 'uploads' in query) {
      const uploadId = `upload-${nextUploadId++}`;
      uploads.set(uploadId, { key, metadata: metadataOf(headers), parts: new Map() });
      return send(response, 200, `<InitiateMultipartUploadResult><Key>${xmlEscape(key)}</Key><UploadId>${uploadId}</UploadId></InitiateMultipartUploadResult>`);
    }
    if (method === 'PUT' && query.uploadId !== undefined && query.partNumber !== undefined) return answerPart(response, query.uploadId, Number(query.partNumber), body);
    if (method === 'POST' && query.uploadId !== undefined) return complete(response, query.uploadId, headers);
    if (method === 'DELETE' && query.uploadId !== undefined) {
      uploads.delete(query.uploadId);
      return send(response, 204);
    }
    const stored = objects.get(key);
    switch (method) {
      case 'PUT': {
        if (createOnlyRefused(key, headers)) return send(response, 412, '<Error><Code>PreconditionFailed</Code></Error>');
        const etag = `"${md5(body).toString('hex')}"`;
        objects.set(key, { body, etag, metadata: metadataOf(headers) });
        return send(response, 200, '', { ETag: etag });
      }
      case 'HEAD':
      case 'GET': {
        if (stored === undefined) return send(response, 404, method === 'GET' ? '<Error><Code>NoSuchKey</Code></Error>' : '');
        const metadata = Object.fromEntries(Object.entries(stored.metadata).map(([name, value]) => [`x-amz-meta-${name}`, value]));
        response.writeHead(200, { 'Content-Length': String(stored.body.length), ETag: stored.etag, 'Last-Modified': new Date().toUTCString(), ...metadata });
        response.end(method === 'GET' ? stored.body : undefined);
        return;
      }
      case 'DELETE':
        objects.delete(key);
        return send(response, 204);
      default:
        return send(response, 501, '<Error><Code>NotImplemented</Code></Error>');
    }
  }

  const server: Server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const recorded: RecordedRequest = {
      method: request.method ?? '',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams.entries()),
      headers: headersOf(request),
      bodyBytes: 0,
    };
    requests.push(recorded);
    const isPart = recorded.method === 'PUT' && recorded.query.partNumber !== undefined;
    if (isPart) {
      // Counted from arrival, before its body: a client over its limit shows at once.
      partsInFlight += 1;
      maxPartsInFlight = Math.max(maxPartsInFlight, partsInFlight);
    }
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks);
      recorded.bodyBytes = body.length;
      handle(request, response, body, recorded);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    maxPartsInFlight: () => maxPartsInFlight,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
