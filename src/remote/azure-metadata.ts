import { randomBytes } from 'node:crypto';
import { AppError } from '../errors.js';

/**
 * How memsync's S3 vocabulary is kept on Azure blobs: user metadata names, and the ETag.
 *
 * Azure's ETags are opaque version stamps, while memsync predicts S3 ETags from the local bytes
 * (the MD5 of a single PUT, md5-of-part-MD5s "-N" of a multipart upload) and checks every write,
 * copy and listing against them. So the Azure store reports, as a blob's `etag`:
 * - the value in the metadata entry STORE_ETAG_METADATA, which the store writes itself when it
 *   commits staged blocks: the S3 multipart ETag of those blocks, each of which the service
 *   refused unless it matched its Content-MD5 (Put Block) or its source MD5 (Put Block From URL),
 *   while the blob still has the size recorded with it (STORE_SIZE_METADATA);
 * - else the blob's Content-MD5, which the service computes from the bytes it received on a
 *   single Put Blob, and which Copy Blob carries over: the S3 ETag of a single PUT;
 * - else Azure's own ETag, quoted: a blob memsync did not write, which no prediction matches, so
 *   the uploader reads it before trusting it, as it does an S3 object in another part layout.
 */

/** Azure metadata names are C# identifiers: memsync's hyphens become underscores. */
const STORE_ETAG_METADATA = 'memsync_s3_etag';
/**
 * The byte count the recorded S3 ETag describes. A Copy Blob that is cancelled or fails leaves
 * its target at zero bytes with the metadata it was given, the source's ETag included: an ETag
 * whose size is not the blob's is not the blob's.
 */
const STORE_SIZE_METADATA = 'memsync_s3_etag_size';
const STORE_METADATA = new Set([STORE_ETAG_METADATA, STORE_SIZE_METADATA]);
/** The MD5 of no bytes: the only Content-MD5 an empty blob can rightly carry. */
const EMPTY_MD5_HEX = 'd41d8cd98f00b204e9800998ecf8427e';

/** The S3 ETag of a blob's bytes, as recorded with it, and how many bytes it describes. */
export interface RecordedEtag {
  etag: string;
  sizeBytes: number;
}
const IDENTIFIER = /^[A-Za-z][A-Za-z0-9]*$/;

/** The blob metadata for memsync's (S3-style, hyphenated) metadata, plus the store's own ETag entries. */
export function toAzureMetadata(metadata: Record<string, string>, what: string, recorded?: RecordedEtag): Record<string, string> {
  const azure: Record<string, string> = {};
  for (const [name, value] of Object.entries(metadata)) {
    const parts = name.split('-');
    if (!parts.every((part) => IDENTIFIER.test(part))) {
      throw new AppError('bad_input', `${what}: metadata name ${JSON.stringify(name)} cannot be kept on Azure (letters and digits between hyphens only)`, { retryable: false });
    }
    const azureName = parts.join('_').toLowerCase();
    if (STORE_METADATA.has(azureName)) throw new AppError('bad_input', `${what}: metadata name ${JSON.stringify(name)} is the store's own`, { retryable: false });
    azure[azureName] = value;
  }
  if (recorded !== undefined) {
    azure[STORE_ETAG_METADATA] = recorded.etag;
    azure[STORE_SIZE_METADATA] = String(recorded.sizeBytes);
  }
  return azure;
}

/** memsync's metadata (lower-case, hyphenated names) from a blob's, without the store's own entry. */
export function fromAzureMetadata(metadata: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(
    Object.entries(metadata ?? {})
      .filter(([name]) => !STORE_METADATA.has(name.toLowerCase()))
      .map(([name, value]) => [name.toLowerCase().replace(/_/g, '-'), value]),
  );
}

function metadataEntry(metadata: Record<string, string> | undefined, name: string): string | undefined {
  return Object.entries(metadata ?? {}).find(([key]) => key.toLowerCase() === name)?.[1];
}

/**
 * The S3 ETag recorded at the last commit of staged blocks, if the blob has one and it describes
 * the blob's `contentLength` bytes. An entry written without its size (before sizes were
 * recorded) is trusted over a blob with bytes, never over an empty one.
 */
export function storedS3Etag(blob: { metadata?: Record<string, string> | undefined; contentLength?: number | undefined }): RecordedEtag | undefined {
  const etag = metadataEntry(blob.metadata, STORE_ETAG_METADATA);
  if (etag === undefined || etag === '' || blob.contentLength === undefined) return undefined;
  const size = metadataEntry(blob.metadata, STORE_SIZE_METADATA);
  const describesBlob = size === undefined ? blob.contentLength > 0 : size === String(blob.contentLength);
  return describesBlob ? { etag, sizeBytes: blob.contentLength } : undefined;
}

/** What the store reports as a blob's ETag (see the module comment), quoted as S3 quotes it. */
export function reportedEtag(blob: { metadata?: Record<string, string> | undefined; contentMD5?: Uint8Array | undefined; etag?: string | undefined; contentLength?: number | undefined }): string {
  const recorded = storedS3Etag(blob);
  if (recorded !== undefined) return `"${recorded.etag}"`;
  const md5 = md5HexOf(blob.contentMD5);
  // A Content-MD5 over an empty blob that is not the MD5 of nothing came over with metadata, not with bytes.
  if (md5 !== '' && (blob.contentLength !== 0 || md5 === EMPTY_MD5_HEX)) return `"${md5}"`;
  return blob.etag ?? '';
}

/**
 * Block ids for one attempt at writing a blob. Azure keeps uncommitted blocks per blob name, and
 * a commit discards every uncommitted block of that name: a random attempt id keeps two writers
 * (or a retry and the attempt it replaces) from committing each other's blocks. Ids of one blob
 * must all have the same length.
 */
export function blockIdsFor(): (index: number) => string {
  const attempt = randomBytes(6).toString('hex');
  return (index) => Buffer.from(`memsync-${attempt}-${String(index).padStart(5, '0')}`).toString('base64');
}

/** The MD5 the service reported for a staged range, as hex; '' when it reported none. */
export function md5HexOf(digest: Uint8Array | undefined): string {
  return digest === undefined || digest.length !== 16 ? '' : Buffer.from(digest).toString('hex');
}
