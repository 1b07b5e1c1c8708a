// The listing through the S3 client with memsync reading the pages: which pages its reader
// takes, which it leaves to the SDK, and that error answers and broken connections end as the
// same AppErrors as before. Against a local HTTP server, for answers a real one gives only on a bad day.
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { S3Client } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { BandwidthLimiter } from '../../src/remote/bandwidth-bucket.js';
import { listS3Objects, type ListingReader } from '../../src/remote/s3-listing.js';
import type { ListedObject } from '../../src/remote/s3-list-page.js';
import { limitBandwidth } from '../../src/remote/throttle-middleware.js';

type Answer = (response: ServerResponse, request: { count: number; token: string | null }) => void;

let server: Server | undefined;
let client: S3Client | undefined;
afterEach(async () => {
  client?.destroy();
  server?.closeAllConnections();
  await new Promise((resolve) => (server === undefined ? resolve(undefined) : server.close(resolve)));
  server = client = undefined;
});

async function clientAnswering(answer: Answer): Promise<S3Client> {
  let count = 0;
  server = createServer((request, response) => {
    request.resume();
    count += 1;
    answer(response, { count, token: new URL(request.url ?? '/', 'http://x').searchParams.get('continuation-token') });
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  client = new S3Client({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, forcePathStyle: true, maxAttempts: 2 });
  return client;
}

const xml = (response: ServerResponse, status: number, body: string): void => {
  response.writeHead(status, { 'content-type': 'application/xml' });
  response.end(body);
};

function page(keys: string[], next?: string): string {
  const contents = keys.map((key) => `<Contents><Key>${key}</Key><LastModified>2025-01-01T00:00:00.000Z</LastModified><ETag>&quot;abc&quot;</ETag><Size>3</Size></Contents>`);
  const truncation = next === undefined ? '<IsTruncated>false</IsTruncated>' : `<IsTruncated>true</IsTruncated><NextContinuationToken>${next}</NextContinuationToken>`;
  return `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><KeyCount>${keys.length}</KeyCount>${truncation}${contents.join('')}</ListBucketResult>`;
}

async function list(s3: S3Client, reader: ListingReader = 'memsync'): Promise<{ keys: string[]; fallbacks: string[] } | { error: unknown }> {
  const fallbacks: string[] = [];
  const objects: ListedObject[] = [];
  try {
    for await (const items of listS3Objects({ client: s3, bucket: 'b', prefix: '', reader, onSdkFallback: (problem) => fallbacks.push(problem) })) objects.push(...items);
    return { keys: objects.map((o) => o.key), fallbacks };
  } catch (error) {
    return { error };
  }
}

describe('listS3Objects', () => {
  it('reads every page of a plain listing itself, following the continuation tokens', async () => {
    const s3 = await clientAnswering((response, { token }) => xml(response, 200, token === null ? page(['a&amp;b', 'c'], 'next&amp;1') : page(['d'])));
    expect(await list(s3)).toEqual({ keys: ['a&b', 'c', 'd'], fallbacks: [] });
  });

  it('leaves a page it does not understand to the SDK, which lists it as before', async () => {
    const s3 = await clientAnswering((response) => xml(response, 200, page(['<![CDATA[a]]>', 'b'])));
    expect(await list(s3)).toEqual({ keys: ['a', 'b'], fallbacks: ['expected </Key>'] });
  });

  it('fails on an error answer as the SDK path does, with the same kind and message', async () => {
    const denied = '<Error><Code>AccessDenied</Code><Message>no</Message></Error>';
    const own = await list(await clientAnswering((response) => xml(response, 403, denied)));
    await new Promise((resolve) => server?.close(resolve));
    const sdk = await list(await clientAnswering((response) => xml(response, 403, denied)));
    expect('error' in own && own.error instanceof AppError && own.error.kind).toBe('remote_rejected');
    expect('error' in own && 'error' in sdk && String(own.error)).toBe('error' in sdk && String(sdk.error));
  });

  it('reads the page of a retried request after a 503', async () => {
    const s3 = await clientAnswering((response, { count }) => (count === 1 ? xml(response, 503, '<Error><Code>SlowDown</Code></Error>') : xml(response, 200, page(['a']))));
    expect(await list(s3)).toEqual({ keys: ['a'], fallbacks: [] });
  });

  it('fails as remote_unavailable when the connection breaks in the middle of a page', async () => {
    const s3 = await clientAnswering((response) => {
      response.writeHead(200, { 'content-type': 'application/xml', 'content-length': '100000' });
      response.write(page(['a']).slice(0, 60), () => response.destroy());
    });
    const result = await list(s3);
    expect('error' in result && result.error instanceof AppError && result.error.kind).toBe('remote_unavailable');
  });

  it('refuses a page that says it holds more keys than it carries', async () => {
    const s3 = await clientAnswering((response) => xml(response, 200, page(['a']).replace('<KeyCount>1<', '<KeyCount>2<')));
    const result = await list(s3);
    expect('error' in result && result.error instanceof AppError && result.error.message).toMatch(/says it holds 2 keys but carries 1/);
  });

  it('reads the body through the download limit, as every other answer is read', async () => {
    class CountingLimiter extends BandwidthLimiter {
      bytes = 0;
      override take(bytes: number, signal?: AbortSignal): Promise<void> {
        this.bytes += bytes;
        return super.take(bytes, signal);
      }
    }
    const body = page(Array.from({ length: 50 }, (_, i) => `auto_20250101_000000/file-${i}`));
    const s3 = await clientAnswering((response) => xml(response, 200, body));
    const down = new CountingLimiter(1024 ** 3);
    limitBandwidth(s3, { up: undefined, down });
    expect(await list(s3)).toMatchObject({ fallbacks: [] });
    expect(down.bytes).toBe(Buffer.byteLength(body));
  });
});
