// Writes memsync checks itself (Content-MD5, part ETags) go with an unsigned payload: over plain
// HTTP the SDK would otherwise hash every body for the signature, a full extra pass over every
// byte uploaded. The headers are still signed. A real server accepts both forms, so what is sent
// is recorded here by a minimal stand-in that answers just enough S3 to finish an upload.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { S3RemoteStore } from '../../src/remote/s3-store.js';

interface Seen {
  method: string;
  url: string;
  payloadHash: string | undefined;
  contentMd5: string | undefined;
  authorization: string | undefined;
}

let server: Server | undefined;

afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

function answer(request: IncomingMessage): { status: number; headers: Record<string, string>; body: string } {
  const url = new URL(request.url ?? '/', 'http://localhost');
  if (request.method === 'POST' && url.searchParams.has('uploads')) {
    return { status: 200, headers: {}, body: '<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>upload-1</UploadId></InitiateMultipartUploadResult>' };
  }
  if (request.method === 'POST' && url.searchParams.has('uploadId')) {
    return { status: 200, headers: {}, body: '<CompleteMultipartUploadResult><ETag>"etag-2"</ETag></CompleteMultipartUploadResult>' };
  }
  return { status: 200, headers: { ETag: '"etag"' }, body: '' };
}

async function recordingServer(seen: Seen[]): Promise<string> {
  server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const header = (name: string): string | undefined => (typeof request.headers[name] === 'string' ? (request.headers[name] as string) : undefined);
      seen.push({ method: request.method ?? '', url: request.url ?? '', payloadHash: header('x-amz-content-sha256'), contentMd5: header('content-md5'), authorization: header('authorization') });
      const { status, headers, body } = answer(request);
      response.writeHead(status, { ...headers, 'Content-Type': 'application/xml' });
      response.end(body);
    });
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
}

describe('S3RemoteStore request signing', () => {
  it('sends PutObject and UploadPart bodies unsigned (headers signed, Content-MD5 kept); other requests as usual', async () => {
    const seen: Seen[] = [];
    const store = new S3RemoteStore({
      bucket: 'memsync-test',
      prefix: 'memories/',
      endpoint: await recordingServer(seen),
      region: 'us-east-1',
      credentials: { accessKeyId: 'test-access-key', secretAccessKey: 'test-secret-key' },
      forcePathStyle: true,
      partsInFlight: 2,
    });
    const PART = 5 * 1024 * 1024;
    const bytes = Buffer.alloc(2 * PART, 7);
    try {
      await store.put('a/single.json', () => Buffer.from('{"a":1}'), { sizeBytes: 7, md5Hex: 'd41d8cd98f00b204e9800998ecf8427e', partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
      await store.put('a/index.faiss', () => ({ kind: 'file', read: async (target, position) => void bytes.copy(target, 0, position, position + target.length) }), {
        sizeBytes: bytes.length,
        md5Hex: undefined,
        partSizeBytes: PART,
        ifNoneMatch: false,
        metadata: {},
        signal: undefined,
        onProgress: undefined,
        onPart: () => Buffer.alloc(16, 1),
      });
      await store.head('a/single.json');
    } finally {
      store.close();
    }
    const writes = seen.filter((s) => s.method === 'PUT');
    expect(writes).toHaveLength(3); // the single PUT and two parts
    for (const write of writes) {
      expect(write.payloadHash, write.url).toBe('UNSIGNED-PAYLOAD');
      expect(write.authorization, write.url).toMatch(/x-amz-content-sha256/);
      expect(write.contentMd5, write.url).toEqual(expect.any(String));
    }
    const headRequest = seen.find((s) => s.method === 'HEAD');
    // An empty body's SHA-256: requests without a body are signed as the SDK always does.
    expect(headRequest?.payloadHash).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});
