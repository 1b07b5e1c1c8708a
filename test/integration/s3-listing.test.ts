// memsync's own reader of ListObjectsV2 answers against the SDK's, on the real test server:
// the same keys, sizes, ETags and times, page for page, for keys XML has to escape.
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listS3Objects, type ListingReader } from '../../src/remote/s3-listing.js';
import type { ListedObject } from '../../src/remote/s3-list-page.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import { createTestBucket, emptyAndDeleteBucket, s3ClientFor } from '../helpers/s3-fixture.js';
import { testServer, testServerStore } from '../helpers/s3.js';

const server = testServer();
const PREFIX = 'listing/';
const PAGE_KEYS = 7;
const AWKWARD_NAMES = [
  'a b.json',
  'Übersicht/日本語 😀.json',
  'a+b',
  '50%.txt',
  '%2B%20',
  'a&b',
  'a<b>c',
  `q'u"o`,
  'x]]>y',
  '&amp;',
  'k=v?x#y',
  'trailing ',
];
const NAMES = [...AWKWARD_NAMES, ...Array.from({ length: 20 }, (_, i) => `auto_20250101_000000/f${String(i).padStart(2, '0')}`)];

let client: S3Client;
let bucket: string;

beforeAll(async () => {
  bucket = await createTestBucket(server, 's3-listing');
  client = s3ClientFor(server);
  for (const [index, name] of NAMES.entries()) {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${PREFIX}${name}`, Body: Buffer.alloc(index, 'x') }));
  }
});

afterAll(async () => {
  client.destroy();
  await emptyAndDeleteBucket(server, bucket);
});

async function pagesBy(reader: ListingReader, fallbacks: string[]): Promise<ListedObject[][]> {
  const pages: ListedObject[][] = [];
  for await (const page of listS3Objects({ client, bucket, prefix: PREFIX, reader, pageKeys: PAGE_KEYS, onSdkFallback: (problem) => fallbacks.push(problem) })) pages.push(page);
  return pages;
}

describe('listing a bucket with memsync reading the answers', () => {
  it('gives what the SDK gives, page for page, for keys XML escapes, over several pages', async () => {
    const fallbacks: string[] = [];
    const own = await pagesBy('memsync', fallbacks);
    const sdk = await pagesBy('sdk', fallbacks);
    expect(fallbacks).toEqual([]);
    expect(own.length).toBe(Math.ceil(NAMES.length / PAGE_KEYS));
    expect(own).toEqual(sdk);
    const listed = own.flat();
    expect(listed.map((o) => o.key).sort()).toEqual(NAMES.map((name) => `${PREFIX}${name}`).sort());
    expect(listed.every((o) => /^"[0-9a-f]{32}"$/.test(o.etag) && o.lastModifiedMs > 0)).toBe(true);
    expect(listed.find((o) => o.key === `${PREFIX}a<b>c`)?.size).toBe(NAMES.indexOf('a<b>c'));
  });

  it('lists the same objects through the store, keys relative to its prefix', async () => {
    const store = testServerStore(server, bucket, PREFIX, { partsInFlight: 1 });
    try {
      const keys: string[] = [];
      for await (const page of store.listObjects('')) keys.push(...page.map((o) => o.key));
      expect(keys.sort()).toEqual([...NAMES].sort());
    } finally {
      store.close();
    }
  });
});
