// The ETag the Azure store reports for a blob: the S3 ETag memsync recorded only while the blob
// still holds the bytes it describes. A cancelled Copy Blob leaves a zero-length blob carrying the
// metadata given, the full file's S3 ETag included: that ETag must never be reported for it.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fromAzureMetadata, reportedEtag, toAzureMetadata } from '../../src/remote/azure-metadata.js';

const S3_ETAG = '0123456789abcdef0123456789abcdef-3';
const AZURE_ETAG = '"0x8DC0000000000000"';
const EMPTY_MD5 = createHash('md5').digest();
const SOME_MD5 = createHash('md5').update('some bytes').digest();

describe('reportedEtag', () => {
  const recorded = (sizeBytes: number): Record<string, string> => toAzureMetadata({ 'memsync-agent': 'a' }, 'test', { etag: S3_ETAG, sizeBytes });
  const cases: { name: string; blob: Parameters<typeof reportedEtag>[0]; expected: string }[] = [
    { name: 'a committed block list of the size recorded: its S3 ETag', blob: { metadata: recorded(12_000_000), contentLength: 12_000_000, etag: AZURE_ETAG }, expected: `"${S3_ETAG}"` },
    { name: 'the S3 ETag over a blob of another size: Azure’s own ETag', blob: { metadata: recorded(12_000_000), contentLength: 0, etag: AZURE_ETAG }, expected: AZURE_ETAG },
    {
      name: 'an S3 ETag without its size (written before sizes were recorded) over a zero-length blob: Azure’s own ETag',
      blob: { metadata: { memsync_s3_etag: S3_ETAG }, contentLength: 0, etag: AZURE_ETAG },
      expected: AZURE_ETAG,
    },
    {
      name: 'an S3 ETag without its size over a blob with bytes: trusted, as it was before sizes were recorded',
      blob: { metadata: { memsync_s3_etag: S3_ETAG }, contentLength: 12_000_000, etag: AZURE_ETAG },
      expected: `"${S3_ETAG}"`,
    },
    { name: 'a single Put Blob: its Content-MD5', blob: { metadata: {}, contentMD5: SOME_MD5, contentLength: 10, etag: AZURE_ETAG }, expected: `"${SOME_MD5.toString('hex')}"` },
    { name: 'an empty blob with the MD5 of nothing: that MD5', blob: { metadata: {}, contentMD5: EMPTY_MD5, contentLength: 0, etag: AZURE_ETAG }, expected: `"${EMPTY_MD5.toString('hex')}"` },
    { name: 'a zero-length blob carrying a Content-MD5 of some bytes: Azure’s own ETag', blob: { metadata: {}, contentMD5: SOME_MD5, contentLength: 0, etag: AZURE_ETAG }, expected: AZURE_ETAG },
    { name: 'nothing memsync wrote: Azure’s own ETag', blob: { metadata: {}, contentLength: 5, etag: AZURE_ETAG }, expected: AZURE_ETAG },
  ];
  for (const { name, blob, expected } of cases) {
    it(name, () => {
      expect(reportedEtag(blob)).toBe(expected);
    });
  }
});

describe('the store’s own metadata entries', () => {
  it('are kept apart from memsync’s metadata, and refused as names of it', () => {
    const azure = toAzureMetadata({ 'memsync-agent': 'a' }, 'test', { etag: S3_ETAG, sizeBytes: 7 });
    expect(fromAzureMetadata(azure)).toEqual({ 'memsync-agent': 'a' });
    expect(() => toAzureMetadata({ 'memsync-s3-etag': 'x' }, 'test')).toThrow(/the store's own/);
    expect(() => toAzureMetadata({ 'memsync-s3-etag-size': 'x' }, 'test')).toThrow(/the store's own/);
  });
});
