// One RemoteStore contract, run against the in-memory fake and against S3RemoteStore on the
// real test server: what unit tests assume of the fake must hold of the real thing.
import { randomBytes } from 'node:crypto';
import { CreateMultipartUploadCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeConditionalWrites } from '../../src/remote/conditional-writes.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import { awsCliUnavailable, readWithAwsCli } from '../helpers/aws-cli.js';
import { createTestBucket, emptyAndDeleteBucket, s3ClientFor } from '../helpers/s3-fixture.js';
import { testServer, testServerStore } from '../helpers/s3.js';
import { remoteStoreContract } from './remote-store-contract.js';
import { CAPABILITIES, type Capability } from './remote-store-contract-probes.js';

const server = testServer();
const PREFIX = 'contract/';

function s3Store(bucket: string): S3RemoteStore {
  return testServerStore(server, bucket, PREFIX);
}

remoteStoreContract(
  'MemoryRemoteStore',
  async () => {
    const store = new MemoryRemoteStore();
    return {
      store,
      startMultipartUpload: async (key) => {
        const uploadId = randomBytes(8).toString('hex');
        store.multipartUploads.push({ key, uploadId, initiatedMs: Date.now() });
        return uploadId;
      },
      cleanup: async () => undefined,
    };
  },
  // The fake is written to have them all: a probe that misses one is a defect of the fake.
  { requires: CAPABILITIES },
);

/** What the fixture knows of the server it started; a server given from outside promises nothing. */
function knownCapabilities(): Capability[] {
  if (server.kind === 'external') return [];
  const known: Record<Capability, boolean> = {
    conditionalWrites: server.capabilities.conditionalWrites,
    multipartHousekeeping: server.capabilities.listMultipartUploads && server.capabilities.abortMultipart,
    contentMd5Check: server.capabilities.contentMd5Check,
    partCopy: server.capabilities.partCopy,
  };
  return CAPABILITIES.filter((c) => known[c]);
}

remoteStoreContract(
  `S3RemoteStore on ${server.kind}`,
  async () => {
    const bucket = await createTestBucket(server, 'contract');
    const client = s3ClientFor(server);
    return {
      store: s3Store(bucket),
      startMultipartUpload: async (key) => {
        const answer = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: `${PREFIX}${key}` }));
        if (answer.UploadId === undefined) throw new Error(`no UploadId for ${key}`);
        return answer.UploadId;
      },
      readIndependently: async (key) => {
        const unavailable = await awsCliUnavailable();
        return unavailable === null ? readWithAwsCli(server, bucket, `${PREFIX}${key}`) : { skipped: unavailable };
      },
      cleanup: async () => {
        client.destroy();
        await emptyAndDeleteBucket(server, bucket);
      },
    };
  },
  { requires: knownCapabilities() },
);

describe(`S3RemoteStore key prefix on ${server.kind}`, () => {
  let client: S3Client;
  let bucket: string;
  let store: S3RemoteStore;

  beforeAll(async () => {
    client = s3ClientFor(server);
    bucket = await createTestBucket(server, 'contract prefix');
    store = s3Store(bucket);
  });
  afterAll(async () => {
    store?.close();
    client?.destroy();
    if (bucket !== undefined) await emptyAndDeleteBucket(server, bucket);
  });

  it('stores keys under the prefix and lists only what is under it, relative to it', async () => {
    const bytes = Buffer.from('inside');
    await store.put('snap/file.txt', () => bytes, {
      sizeBytes: bytes.length,
      md5Hex: undefined,
      partSizeBytes: undefined,
      ifNoneMatch: true,
      metadata: {},
      signal: undefined,
      onProgress: undefined,
    });
    const raw = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${PREFIX}snap/file.txt` }));
    expect(raw.ContentLength).toBe(bytes.length);
    // Neighbours outside the prefix, one sharing its text without the slash.
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'outside/file.txt', Body: 'x' }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'contractual/file.txt', Body: 'x' }));
    const keys: string[] = [];
    for await (const page of store.listObjects('')) keys.push(...page.map((o) => o.key));
    expect(keys).toEqual(['snap/file.txt']);
  });
});

describe(`conditional-write probe on ${server.kind}`, () => {
  it(`finds If-None-Match ${server.capabilities.conditionalWrites ? 'honoured' : 'ignored'}, as the fixture knows this server, and cleans up`, async () => {
    const bucket = await createTestBucket(server, 'probe');
    const store = s3Store(bucket);
    const client = s3ClientFor(server);
    try {
      expect(await probeConditionalWrites(store)).toBe(server.capabilities.conditionalWrites ? 'honoured' : 'ignored');
      const left = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
      expect(left.Contents ?? []).toEqual([]);
    } finally {
      store.close();
      client.destroy();
      await emptyAndDeleteBucket(server, bucket);
    }
  });
});
