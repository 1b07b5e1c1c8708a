// Checks the fixture hands out a working server, and pins the server behaviour the other suites rely on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3ServiceException, type S3Client } from '@aws-sdk/client-s3';
import { createTestBucket, emptyAndDeleteBucket, s3ClientFor } from '../helpers/s3-fixture.js';
import { skipUnless, testServer } from '../helpers/s3.js';

const server = testServer();
const noConditionalWrites = skipUnless('conditionalWrites');

describe(`S3 test server (${server.kind})`, () => {
  let client: S3Client;
  let bucket: string;

  beforeAll(async () => {
    client = s3ClientFor(server);
    bucket = await createTestBucket(server, 'fixture smoke');
  });
  afterAll(async () => {
    await emptyAndDeleteBucket(server, bucket);
    client.destroy();
  });

  it('creates a valid, unique bucket name', () => {
    expect(bucket).toMatch(/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/);
  });

  it('puts, lists with pagination and gets objects', async () => {
    const keys = ['a/1', 'a/2', 'a/3', 'b/4', 'b/5'];
    for (const Key of keys) await client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: `body of ${Key}` }));

    const listed: string[] = [];
    let pages = 0;
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 2, ContinuationToken: token }));
      pages++;
      expect(page.Contents?.length ?? 0).toBeLessThanOrEqual(2);
      listed.push(...(page.Contents ?? []).map((o) => o.Key ?? ''));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token && pages < 10);
    expect(listed).toEqual(keys);
    expect(pages).toBe(3);

    const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: 'b/4' }));
    expect(await got.Body?.transformToString()).toBe('body of b/4');
  });

  it.skipIf(noConditionalWrites)(`If-None-Match: * refuses to overwrite an existing key${noConditionalWrites ? ` (skipped: ${noConditionalWrites})` : ''}`, async () => {
    const Key = 'conditional';
    await client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'first', IfNoneMatch: '*' }));
    const second = client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'second', IfNoneMatch: '*' }));
    const err: unknown = await second.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(S3ServiceException);
    expect((err as S3ServiceException).$metadata.httpStatusCode).toBe(412);
    const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key }));
    expect(await got.Body?.transformToString()).toBe('first');
  });
});
