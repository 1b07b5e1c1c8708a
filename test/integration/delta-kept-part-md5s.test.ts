// A composed upload whose copied parts are checked against the part MD5s the digest pass kept,
// against the real S3 server of the test run: the server copies each whole plain part by ranged
// copy, the object reads back byte-identical and carries the ETag those MD5s predict; a wrong
// kept MD5 ends in a whole upload, with nothing left under the name and no open upload.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkBuffer } from '../../src/delta/chunker.js';
import { planComposition } from '../../src/delta/compose-plan.js';
import { splitAtPlainParts } from '../../src/delta/plain-part-split.js';
import { createSignature } from '../../src/delta/signature.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import type { FileBody } from '../../src/remote/store.js';
import { fileDigestAccumulator, multipartEtag, normalizeEtag, type FileDigest } from '../../src/snapshot/digest.js';
import { buildManifest } from '../../src/snapshot/manifest.js';
import { SignatureStore } from '../../src/state/signature-store.js';
import type { FileRange, RangeMd5s } from '../../src/upload/delta-part-md5s.js';
import { DeltaTransfer } from '../../src/upload/delta-transfer.js';
import { KeptPartMd5s } from '../../src/upload/kept-part-md5s.js';
import { pseudoRandomBytes } from '../helpers/delta-data.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { createTestBucket, emptyAndDeleteBucket, s3ClientFor } from '../helpers/s3-fixture.js';
import { skipUnless, testServer, testServerStore } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';

const server = testServer();
const PREFIX = 'delta-kept/';
const MIB = 1024 * 1024;
const S1 = 'auto_20260301_000000';
const FILE = 'index.faiss';
const BASE = pseudoRandomBytes(31, 48 * MIB + 777);
const NEXT = Buffer.concat([pseudoRandomBytes(32, 64), BASE.subarray(64), pseudoRandomBytes(33, 1536)]);
const md5 = (bytes: Buffer): Buffer => createHash('md5').update(bytes).digest();
const sha256Hex = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** The digest of `bytes` with its plain part MD5s, as the digest pass takes them. */
function digestOf(bytes: Buffer): { digest: FileDigest; partMd5s: readonly Buffer[] } {
  const digests = fileDigestAccumulator(bytes.length, 16 * MIB);
  digests.update(bytes);
  const digest = digests.digest();
  return { digest, partMd5s: digests.partMd5s() ?? [] };
}

const BASE_DIGEST = digestOf(BASE).digest;
const { digest: NEXT_DIGEST, partMd5s: NEXT_PART_MD5S } = digestOf(NEXT);
const P = NEXT_DIGEST.partSizeBytes;
const nextBody: FileBody = { kind: 'file', read: async (target, position) => void NEXT.copy(target, 0, position, position + target.length) };

let client: S3Client;
let bucket: string;
let store: S3RemoteStore;

beforeAll(async () => {
  client = s3ClientFor(server);
  bucket = await createTestBucket(server, 'delta kept md5s');
  store = testServerStore(server, bucket, PREFIX);
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${PREFIX}${S1}/${FILE}`, Body: BASE }));
});
afterAll(async () => {
  store?.close();
  client?.destroy();
  if (bucket !== undefined) await emptyAndDeleteBucket(server, bucket);
});

async function deltaWith(logs: LogLine[], asked: FileRange[], kept: KeptPartMd5s, options: { keepNextSignature: boolean } = { keepNextSignature: true }): Promise<{ delta: DeltaTransfer; signatures: SignatureStore }> {
  const log = recordingLogger(logs);
  // MD5s of ranges that are no whole plain part, taken from the file's bytes at once; every range asked for recorded.
  const copiedPartMd5s: RangeMd5s = (_body, ranges) => {
    asked.push(...ranges);
    return ranges.map((range) => Promise.resolve(md5(NEXT.subarray(range.start, range.start + range.length)).toString('hex')));
  };
  const signatures = new SignatureStore(path.join(await tempDir('delta-kept-rgw'), 'signatures'), log);
  const delta = new DeltaTransfer({
    store,
    signatures,
    minFileBytes: 16 * MIB,
    knownSnapshots: async () => [{ name: S1, timeMs: 1, manifest: buildManifest(S1, 'directory', [{ path: FILE, size: BASE.length, sha256: BASE_DIGEST.sha256 }]) }],
    agentId: 'kept-md5s-agent',
    retry: { attempts: 2, baseDelayMs: 20, maxDelayMs: 100 },
    log,
    copiedPartMd5s,
    keptPartMd5s: kept,
  });
  await delta.keep(chunkBuffer(BASE), BASE_DIGEST);
  if (options.keepNextSignature) await delta.keep(chunkBuffer(NEXT), NEXT_DIGEST, { partSizeBytes: P, md5s: NEXT_PART_MD5S });
  return { delta, signatures };
}

async function readBack(key: string): Promise<Buffer> {
  const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: `${PREFIX}${key}` }));
  return Buffer.from((await answer.Body?.transformToByteArray()) ?? []);
}

describe(`a composed upload from kept part MD5s on ${server.kind}`, () => {
  it.skipIf(skipUnless('partCopy'))('copies whole plain parts checked against the kept MD5s: byte-identical, ETag as predicted from them, only the run ends read again', async () => {
    const logs: LogLine[] = [];
    const asked: FileRange[] = [];
    const { delta } = await deltaWith(logs, asked, new KeptPartMd5s());
    const key = 'auto_20260302_000000/index.faiss';
    const result = await delta.compose('auto_20260302_000000', key, { path: FILE, digest: NEXT_DIGEST, body: nextBody }, new AbortController().signal, recordingLogger(logs));

    expect(result, JSON.stringify(logs.filter((line) => line.level !== 'debug'))).toBeDefined();
    expect(sha256Hex(await readBack(key))).toBe(sha256Hex(NEXT));
    // The ETag the server reports is the one the parts cut on the plain layout predict, computed here from the file's bytes.
    const plan = planComposition(chunkBuffer(NEXT), NEXT.length, createSignature(chunkBuffer(BASE), BASE.length, BASE_DIGEST.sha256));
    const parts = splitAtPlainParts(plan, { sizeBytes: NEXT.length, partSizeBytes: P }) ?? [];
    expect(parts.filter((part) => part.kind === 'copy' && part.plainPartIndex !== undefined).length).toBeGreaterThanOrEqual(3);
    const predicted = multipartEtag(parts.map((part) => md5(NEXT.subarray(part.targetStart, part.targetStart + part.length))));
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${PREFIX}${key}` }));
    expect(normalizeEtag(head.ETag)).toBe(predicted);
    expect(result?.etag).toBe(predicted);
    // No whole plain part was read again.
    expect(asked.filter((range) => range.start % P === 0 && (range.length === P || range.start + range.length === NEXT.length))).toEqual([]);
    expect(asked.reduce((sum, range) => sum + range.length, 0)).toBeLessThan(3 * P);
    expect(await store.listMultipartUploads('')).toEqual([]);
  });

  it.skipIf(skipUnless('partCopy'))('a wrong kept MD5: integrity, the file is left to be sent whole; nothing under the name, no open upload', async () => {
    const logs: LogLine[] = [];
    const kept = new KeptPartMd5s();
    const { delta } = await deltaWith(logs, [], kept);
    kept.keep(NEXT_DIGEST.sha256, NEXT.length, { partSizeBytes: P, md5s: NEXT_PART_MD5S.map((digest, index) => (index === 2 ? md5(Buffer.from('not plain part 2')) : digest)) });
    const key = 'auto_20260303_000000/index.faiss';
    const result = await delta.compose('auto_20260303_000000', key, { path: FILE, digest: NEXT_DIGEST, body: nextBody }, new AbortController().signal, recordingLogger(logs));

    expect(result).toBeUndefined();
    const warning = logs.find((line) => line.level === 'warn' && line.message.startsWith('delta upload not possible'));
    expect(warning?.fields.reason).toBe('a copied range differs from the local file');
    expect(String(warning?.fields.error)).toContain(`has MD5 ${md5(NEXT.subarray(2 * P, 3 * P)).toString('hex')}`);
    expect(await store.head(key)).toBeUndefined();
    expect(await store.listMultipartUploads('')).toEqual([]);
  });

  it.skipIf(skipUnless('partCopy'))('a file never chunked (its digest came from the cache) is chunked then, guided by the base: the chunks of a plain pass, byte-identical object', async () => {
    const logs: LogLine[] = [];
    const { delta, signatures } = await deltaWith(logs, [], new KeptPartMd5s(), { keepNextSignature: false });
    expect(await signatures.get(NEXT_DIGEST.sha256, NEXT.length)).toBeUndefined();
    const key = 'auto_20260304_000000/index.faiss';
    const result = await delta.compose('auto_20260304_000000', key, { path: FILE, digest: NEXT_DIGEST, body: nextBody }, new AbortController().signal, recordingLogger(logs));

    expect(result, JSON.stringify(logs.filter((line) => line.level !== 'debug'))).toBeDefined();
    expect(sha256Hex(await readBack(key))).toBe(sha256Hex(NEXT));
    expect((await signatures.get(NEXT_DIGEST.sha256, NEXT.length))?.chunks).toEqual(chunkBuffer(NEXT));
    expect(await store.listMultipartUploads('')).toEqual([]);
  });
});
