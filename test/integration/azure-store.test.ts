// What the Azure store does beyond the shared contract, on Azurite: a taken name refused at the
// block list commit, a corrupted block refused by its MD5, conditional copies and replaces, the
// ETag of a blob cut short, the errors an operator sees for a wrong key or a missing container,
// and a container-scoped SAS. Faults in transit: azure-store-faults.test.ts.
import { createHash, randomBytes } from 'node:crypto';
import { ContainerSASPermissions, generateBlobSASQueryParameters, StorageSharedKeyCredential } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { probeConditionalWrites } from '../../src/remote/conditional-writes.js';
import { AzureRemoteStore, type AzureCredentials } from '../../src/remote/azure-store.js';
import type { BodySource, PutOptions } from '../../src/remote/store.js';
import { normalizeEtag, PartHasher } from '../../src/snapshot/digest.js';
import { startAzurite, type AzuriteServer } from '../helpers/azurite-fixture.js';

const MIB = 1024 * 1024;
const PART_BYTES = 5 * MIB;
let azurite: AzuriteServer;
let container: string;

beforeAll(async () => {
  azurite = await startAzurite();
  container = await azurite.createContainer('azure-store');
});
afterAll(async () => {
  await azurite?.stop();
});

function storeWith(credentials: AzureCredentials, options: { container?: string; endpoint?: string | undefined } = {}): AzureRemoteStore {
  return new AzureRemoteStore({
    container: options.container ?? container,
    prefix: 'p/',
    endpoint: 'endpoint' in options ? options.endpoint : azurite.endpoint,
    credentials,
    partsInFlight: 3,
  });
}

function store(): AzureRemoteStore {
  return storeWith({ kind: 'shared-key', accountName: azurite.accountName, accountKey: azurite.accountKey });
}

const md5 = (bytes: Buffer): Buffer => createHash('md5').update(bytes).digest();

function fileBody(bytes: Buffer): BodySource {
  return () => ({ kind: 'file', read: async (target, position) => void bytes.copy(target, 0, position, position + target.length) });
}

function putOptions(bytes: Buffer, overrides: Partial<PutOptions> = {}): PutOptions {
  return { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined, ...overrides };
}

async function failureOf(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error, 'expected the operation to fail').toBeInstanceOf(AppError);
  return error as AppError;
}

async function read(key: string): Promise<Buffer> {
  return azurite.service.getContainerClient(container).getBlobClient(`p/${key}`).downloadToBuffer();
}

describe('AzureRemoteStore on Azurite', () => {
  it('a name taken when the block list is committed: AppError conflict, the blob already there stays as it was', async () => {
    const first = Buffer.from('written first');
    await store().put('taken/index.faiss', () => first, putOptions(first, { ifNoneMatch: true }));
    const big = randomBytes(2 * PART_BYTES + 10);
    const error = await failureOf(store().put('taken/index.faiss', fileBody(big), putOptions(big, { partSizeBytes: PART_BYTES, ifNoneMatch: true })));
    expect(error.kind, error.message).toBe('conflict');
    expect(error.details?.code).toBe('BlobAlreadyExists');
    expect((await read('taken/index.faiss')).equals(first)).toBe(true);
  });

  it('a block whose bytes changed after their MD5 was taken is refused (Md5Mismatch): AppError integrity, nothing committed', async () => {
    const big = randomBytes(2 * PART_BYTES + 10);
    let parts = 0;
    const error = await failureOf(
      store().put('corrupt/index.faiss', fileBody(big), {
        ...putOptions(big, { partSizeBytes: PART_BYTES }),
        onPart: (part) => {
          parts += 1;
          const digest = md5(part);
          if (parts === 2) part[100] = (part[100] ?? 0) ^ 0xff; // damaged in memory on its way out
          return digest;
        },
      }),
    );
    expect(error.kind, error.message).toBe('integrity');
    expect(error.details?.code).toBe('Md5Mismatch');
    expect(await store().head('corrupt/index.faiss')).toBeUndefined();
  });

  it('a staged upload records the S3 multipart ETag of its blocks; metadata is kept under Azure names and read back as memsync wrote it', async () => {
    const big = randomBytes(2 * PART_BYTES + 77);
    let stored: string | undefined;
    await store().put('etag/index.faiss', fileBody(big), { ...putOptions(big, { partSizeBytes: PART_BYTES, metadata: { 'memsync-agent': 'agent-1' } }), onStored: (etag) => (stored = etag) });
    const hasher = new PartHasher(PART_BYTES);
    hasher.update(big);
    const expected = { etag: hasher.etag() };
    expect(normalizeEtag(stored)).toBe(expected.etag);
    const head = await store().head('etag/index.faiss');
    expect(normalizeEtag(head?.etag)).toBe(expected.etag);
    expect(head?.metadata).toEqual({ 'memsync-agent': 'agent-1' });
    const raw = await azurite.service.getContainerClient(container).getBlobClient('p/etag/index.faiss').getProperties();
    expect(raw.metadata).toEqual({ memsync_agent: 'agent-1', memsync_s3_etag: expected.etag, memsync_s3_etag_size: String(big.length) });
  });

  it('a copy whose source changed since its ETag was read: AppError conflict, in one request and in parts; no target', async () => {
    const before = randomBytes(PART_BYTES + 1);
    await store().put('copy/source.bin', () => before, putOptions(before));
    const plannedEtag = (await store().head('copy/source.bin'))?.etag ?? '';
    const after = randomBytes(PART_BYTES + 1);
    await store().put('copy/source.bin', () => after, putOptions(after));
    for (const partSizeBytes of [undefined, PART_BYTES]) {
      const target = `copy/target-${partSizeBytes ?? 'whole'}.bin`;
      const error = await failureOf(store().copy('copy/source.bin', target, { sizeBytes: before.length, partSizeBytes, sourceEtag: plannedEtag, metadata: {}, signal: undefined }));
      expect(error.kind, error.message).toBe('conflict');
      expect(await store().head(target)).toBeUndefined();
    }
  });

  it('a conditional replace (ifMatchEtag) writes only over the version it names', async () => {
    const v1 = Buffer.from('version 1');
    const v2 = Buffer.from('version 2');
    await store().put('lease/claim.json', () => v1, putOptions(v1));
    const etag = (await store().head('lease/claim.json'))?.etag ?? '';
    await store().put('lease/claim.json', () => v2, putOptions(v2, { ifMatchEtag: etag }));
    const error = await failureOf(store().put('lease/claim.json', () => v1, putOptions(v1, { ifMatchEtag: etag })));
    expect(error.kind, error.message).toBe('conflict');
    expect((await read('lease/claim.json')).equals(v2)).toBe(true);
  });

  it('a conditional replace in blocks (ifMatchEtag with partSizeBytes) is refused before anything is written, as on S3', async () => {
    const v1 = Buffer.from('version 1');
    await store().put('lease/blocks.bin', () => v1, putOptions(v1));
    const staleEtag = (await store().head('lease/blocks.bin'))?.etag ?? '';
    const v2 = Buffer.from('version 2, written since');
    await store().put('lease/blocks.bin', () => v2, putOptions(v2));
    const big = randomBytes(2 * PART_BYTES + 10);
    const error = await failureOf(store().put('lease/blocks.bin', fileBody(big), putOptions(big, { partSizeBytes: PART_BYTES, ifMatchEtag: staleEtag })));
    expect(error.kind, error.message).toBe('remote_rejected');
    expect(error.message).toContain('one request');
    expect((await read('lease/blocks.bin')).equals(v2)).toBe(true);
  });

  it('a zero-length blob carrying a full file\'s S3 ETag (what a cancelled Copy Blob leaves) does not report that ETag', async () => {
    const copiedEtag = '0123456789abcdef0123456789abcdef-3';
    await azurite.service.getContainerClient(container).getBlockBlobClient('p/aborted/index.faiss').upload(Buffer.alloc(0), 0, { metadata: { memsync_agent: 'agent-1', memsync_s3_etag: copiedEtag } });
    const head = await store().head('aborted/index.faiss');
    expect(head?.size).toBe(0);
    expect(normalizeEtag(head?.etag)).not.toBe(copiedEtag);
    const listed = [];
    for await (const page of store().listObjects('aborted/')) listed.push(...page);
    expect(listed.map((object) => normalizeEtag(object.etag))).not.toContain(copiedEtag);
  });

  it('the conditional-write probe finds If-None-Match honoured', async () => {
    expect(await probeConditionalWrites(store())).toBe('honoured');
  });

  it('a container-scoped SAS in a connection string is enough: writes, listings and a delta composed from ranges of the source', async () => {
    const sas = generateBlobSASQueryParameters(
      { containerName: container, permissions: ContainerSASPermissions.parse('racwdl'), expiresOn: new Date(Date.now() + 3_600_000) },
      new StorageSharedKeyCredential(azurite.accountName, azurite.accountKey),
    ).toString();
    const sasStore = storeWith({ kind: 'connection-string', connectionString: `BlobEndpoint=${azurite.endpoint};SharedAccessSignature=${sas}` }, { endpoint: undefined });
    await sasStore.checkAccess();
    const base = randomBytes(2 * PART_BYTES);
    await sasStore.put('sas/old.bin', () => base, putOptions(base));
    const sourceEtag = (await sasStore.head('sas/old.bin'))?.etag ?? '';
    const tail = randomBytes(1000);
    const local = Buffer.concat([base, tail]);
    await sasStore.compose('sas/new.bin', {
      sourceKey: 'sas/old.bin',
      sourceEtag,
      parts: [
        { kind: 'copy', sourceStart: 0, sourceEnd: base.length, md5Hex: md5(base).toString('hex') },
        { kind: 'send', targetStart: base.length, length: tail.length, md5Hex: md5(tail).toString('hex') },
      ],
      body: { kind: 'file', read: async (target, position) => void local.copy(target, 0, position, position + target.length) },
      metadata: {},
      signal: undefined,
    });
    expect((await read('sas/new.bin')).equals(local)).toBe(true);
  });
});

describe('AzureRemoteStore errors an operator sees', () => {
  it('a container that does not exist: remote_rejected naming it, with a hint naming CLOUD_SYNC_BUCKET', async () => {
    const error = await failureOf(storeWith({ kind: 'shared-key', accountName: azurite.accountName, accountKey: azurite.accountKey }, { container: 'no-such-container' }).checkAccess());
    expect(error.kind).toBe('remote_rejected');
    expect(error.message).toContain('container no-such-container does not exist');
    expect(error.hint).toContain('CLOUD_SYNC_BUCKET');
  });

  it('a wrong account key: remote_rejected, with a hint naming the credential variables', async () => {
    const error = await failureOf(storeWith({ kind: 'shared-key', accountName: azurite.accountName, accountKey: Buffer.from('not the key').toString('base64') }).checkAccess());
    expect(error.kind, error.message).toBe('remote_rejected');
    expect(error.hint).toContain('CLOUD_SYNC_SECRET_KEY');
  });

  it('nothing listening at the endpoint: remote_unavailable (retried)', async () => {
    const closed = azurite.endpoint.replace(/:\d+\//, ':1/');
    const error = await failureOf(storeWith({ kind: 'shared-key', accountName: azurite.accountName, accountKey: azurite.accountKey }, { endpoint: closed }).checkAccess());
    expect(error.kind, error.message).toBe('remote_unavailable');
    expect(error.retryable).toBe(true);
  });
});
