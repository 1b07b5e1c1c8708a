// What the storage class and server-side encryption settings put on the wire, request by request,
// recorded by a local server (Ceph RGW refuses classes it does not define and SSE without a
// configured key, so the headers themselves are checked here).
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import type { S3AtRest } from '../../src/remote/s3-storage-settings.js';
import type { FileBody, PutOptions } from '../../src/remote/store.js';
import { startRecordingS3Server, type RecordedRequest, type RecordingS3Server } from '../helpers/recording-s3-server.js';

const MIB = 1024 * 1024;
const AT_REST_HEADERS = ['x-amz-storage-class', 'x-amz-server-side-encryption', 'x-amz-server-side-encryption-aws-kms-key-id'];

let server: RecordingS3Server | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

function putOptions(sizeBytes: number, partSizeBytes: number | undefined): PutOptions {
  return { sizeBytes, md5Hex: undefined, partSizeBytes, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined };
}

function atRestHeaders(request: RecordedRequest): Record<string, string> {
  return Object.fromEntries(AT_REST_HEADERS.flatMap((name) => (request.headers[name] === undefined ? [] : [[name, request.headers[name]]])));
}

/** Each write request's kind with the at-rest headers it carried. */
async function writesWith(atRest: S3AtRest | undefined): Promise<{ kind: string; headers: Record<string, string> }[]> {
  server = await startRecordingS3Server();
  const store = new S3RemoteStore({ bucket: 'b', prefix: 'p/', endpoint: server.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, forcePathStyle: true, partsInFlight: 2, atRest });
  try {
    const bytes = Buffer.alloc(11 * MIB, 7);
    const file: FileBody = { kind: 'file', read: async (target, position) => void bytes.copy(target, 0, position, position + target.length) };
    await store.put('single.json', () => Buffer.from('{}'), putOptions(2, undefined));
    await store.put('parts.bin', () => file, putOptions(bytes.length, 5 * MIB));
    await store.copy('single.json', 'copied.json', { sizeBytes: 2, sourceEtag: 'x', metadata: {}, partSizeBytes: undefined, signal: undefined }).catch(() => undefined);
  } finally {
    store.close();
  }
  return server.requests
    .filter((request) => request.method === 'PUT' || request.method === 'POST')
    .map((request) => ({
      kind:
        request.headers['x-amz-copy-source'] !== undefined
          ? 'copy'
          : 'uploads' in request.query
            ? 'create-multipart'
            : request.query.partNumber !== undefined
              ? 'part'
              : request.query.uploadId !== undefined
                ? 'complete'
                : 'put',
      headers: atRestHeaders(request),
    }));
}

describe('storage class and server-side encryption on the wire', () => {
  it('SSE-KMS with a key and a class: on every PUT, CreateMultipartUpload and copy; never on a part or the completion', async () => {
    const writes = await writesWith({ storageClass: 'STANDARD_IA', sse: { mode: 'aws:kms', kmsKeyId: 'alias/memsync' } });
    const asked = { 'x-amz-storage-class': 'STANDARD_IA', 'x-amz-server-side-encryption': 'aws:kms', 'x-amz-server-side-encryption-aws-kms-key-id': 'alias/memsync' };
    const creating = writes.filter((write) => ['put', 'create-multipart', 'copy'].includes(write.kind));
    // The recording server answers a copy with what the SDK does not take, which it then sends again: every attempt counts.
    expect(new Set(creating.map((write) => write.kind))).toEqual(new Set(['put', 'create-multipart', 'copy']));
    for (const write of creating) expect(write.headers).toEqual(asked);
    expect(writes.filter((write) => write.kind === 'part' || write.kind === 'complete').map((write) => write.headers)).toEqual([{}, {}, {}, {}]);
  });

  it('AES256 without a class: only the encryption header', async () => {
    const writes = await writesWith({ storageClass: undefined, sse: { mode: 'AES256' } });
    for (const write of writes.filter((each) => each.kind !== 'part' && each.kind !== 'complete')) expect(write.headers).toEqual({ 'x-amz-server-side-encryption': 'AES256' });
  });

  it('unset: no header at all, the bucket defaults apply', async () => {
    const writes = await writesWith(undefined);
    expect(writes.length).toBeGreaterThan(4);
    for (const write of writes) expect(write.headers).toEqual({});
  });
});

describe('CLOUD_SYNC_STORAGE_CLASS and CLOUD_SYNC_SSE', () => {
  it('read into the S3 settings', () => {
    const config = loadConfig({ CLOUD_SYNC_STORAGE_CLASS: 'standard_ia', CLOUD_SYNC_SSE: 'AES256' });
    expect(config.s3.atRest).toEqual({ storageClass: 'STANDARD_IA', sse: { mode: 'AES256' } });
    expect(loadConfig({}).s3.atRest).toEqual({ storageClass: undefined, sse: undefined });
  });

  it('takes aws:kms with a key id, or with none (the bucket\'s default key)', () => {
    expect(loadConfig({ CLOUD_SYNC_SSE: 'aws:kms', CLOUD_SYNC_SSE_KMS_KEY_ID: 'alias/memsync' }).s3.atRest.sse).toEqual({ mode: 'aws:kms', kmsKeyId: 'alias/memsync' });
    expect(loadConfig({ CLOUD_SYNC_SSE: 'aws:kms' }).s3.atRest.sse).toEqual({ mode: 'aws:kms', kmsKeyId: undefined });
  });

  it.each([
    [{ CLOUD_SYNC_STORAGE_CLASS: 'COLD' }, /CLOUD_SYNC_STORAGE_CLASS="COLD": expected one of STANDARD, /],
    [{ CLOUD_SYNC_STORAGE_CLASS: 'GLACIER' }, /CLOUD_SYNC_STORAGE_CLASS="GLACIER": a class readable by GET: GLACIER objects need a restore request/],
    [{ CLOUD_SYNC_STORAGE_CLASS: 'DEEP_ARCHIVE' }, /CLOUD_SYNC_STORAGE_CLASS="DEEP_ARCHIVE": a class readable by GET/],
    [{ CLOUD_SYNC_SSE: 'kms' }, /CLOUD_SYNC_SSE="kms": expected AES256 .* or aws:kms/],
    [{ CLOUD_SYNC_SSE_KMS_KEY_ID: 'alias/x' }, /CLOUD_SYNC_SSE_KMS_KEY_ID="alias\/x": set only with CLOUD_SYNC_SSE=aws:kms/],
    [{ CLOUD_SYNC_SSE: 'AES256', CLOUD_SYNC_SSE_KMS_KEY_ID: 'alias/x' }, /CLOUD_SYNC_SSE_KMS_KEY_ID="alias\/x": set only with CLOUD_SYNC_SSE=aws:kms/],
  ])('refuses %o naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });
});
