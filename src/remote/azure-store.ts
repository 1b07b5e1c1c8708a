import { Readable } from 'node:stream';
import type { ContainerClient } from '@azure/storage-blob';
import { AppError } from '../errors.js';
import { openAzureContainer, type AzureContainer, type AzureStoreOptions } from './azure-client.js';
import { uploadInBlocks } from './azure-blocks.js';
import { composeAzureBlob } from './azure-compose.js';
import { copyAzureBlob } from './azure-copy.js';
import { normalizeEtag } from '../snapshot/digest.js';
import { checkComposeParts } from './compose-parts.js';
import { AZURE_CONTAINER_HINT, translateAzureContainerError, translateAzureError } from './azure-errors.js';
import { fromAzureMetadata, md5HexOf, reportedEtag, toAzureMetadata } from './azure-metadata.js';
import { isFileBody, type BodySource, type ComposeOptions, type CopyOptions, type FileBody, type MultipartUpload, type PutOptions, type RemoteHead, type RemoteObject, type RemoteStore } from './store.js';

export type { AzureCredentials, AzureStoreOptions } from './azure-client.js';

/**
 * RemoteStore on Azure Blob Storage: keys are block blobs in one container, under the prefix.
 * What memsync checks on S3 keeps its meaning here: see azure-metadata.ts for the ETags
 * reported, azure-blocks.ts for large files, azure-compose.ts and azure-copy.ts for
 * server-side copies. Names are never overwritten when asked (If-None-Match: * on Put Blob and
 * on Put Block List, a taken name is a conflict).
 */
export class AzureRemoteStore implements RemoteStore {
  readonly location: string;
  private readonly container: AzureContainer;
  private conditionalWrites = true;

  constructor(private readonly options: AzureStoreOptions) {
    this.container = openAzureContainer(options);
    this.location = `azure://${options.container}/${options.prefix} at ${this.container.url.slice(0, -options.container.length - 1)}`;
  }

  private get client(): ContainerClient {
    return this.container.client;
  }

  useConditionalWrites(enabled: boolean): void {
    this.conditionalWrites = enabled;
  }

  private fullKey(key: string): string {
    return `${this.options.prefix}${key}`;
  }

  private relativeKey(fullKey: string): string {
    return fullKey.startsWith(this.options.prefix) ? fullKey.slice(this.options.prefix.length) : fullKey;
  }

  /** Lists one blob under the prefix: what memsync needs (a list permission), no more. */
  async checkAccess(): Promise<void> {
    try {
      await this.client.listBlobsFlat({ prefix: this.options.prefix }).byPage({ maxPageSize: 1 }).next();
    } catch (error) {
      const translated = translateAzureContainerError(error, `open container ${this.options.container}`);
      if (translated.details?.code === 'ContainerNotFound') {
        throw new AppError('remote_rejected', `container ${this.options.container} does not exist`, { cause: error, hint: AZURE_CONTAINER_HINT, details: translated.details });
      }
      throw translated;
    }
  }

  /** A flat listing, which Azure returns in name order, with metadata for the ETags it carries. */
  async *listObjects(keyPrefix: string): AsyncIterable<RemoteObject[]> {
    const prefix = this.fullKey(keyPrefix);
    const pages = this.client.listBlobsFlat({ prefix, includeMetadata: true }).byPage({ maxPageSize: 1000 });
    // A service that hands back a marker it gave before would have memsync list for ever.
    const markers = new Set<string>();
    for (;;) {
      let page;
      try {
        page = await pages.next();
      } catch (error) {
        throw translateAzureContainerError(error, `list ${prefix}`);
      }
      if (page.done === true) return;
      yield page.value.segment.blobItems.map((item) => ({
        key: this.relativeKey(item.name),
        size: item.properties.contentLength ?? 0,
        etag: reportedEtag({ metadata: item.metadata, contentMD5: item.properties.contentMD5, etag: item.properties.etag, contentLength: item.properties.contentLength }),
        lastModifiedMs: item.properties.lastModified.getTime(),
      }));
      const marker = page.value.continuationToken;
      if (marker === undefined || marker === '') return;
      if (markers.has(marker)) throw new AppError('remote_rejected', `list ${prefix}: the service repeated a continuation marker; the listing would never end`, { hint: 'check CLOUD_SYNC_ENDPOINT' });
      markers.add(marker);
    }
  }

  async head(key: string): Promise<RemoteHead | undefined> {
    try {
      const properties = await this.client.getBlobClient(this.fullKey(key)).getProperties();
      return {
        size: properties.contentLength ?? 0,
        etag: reportedEtag(properties),
        metadata: fromAzureMetadata(properties.metadata),
        lastModifiedMs: properties.lastModified?.getTime(),
        storeTimeMs: properties.date?.getTime(),
      };
    } catch (error) {
      const translated = translateAzureError(error, `head ${this.fullKey(key)}`);
      if (translated.kind === 'not_found') return undefined;
      throw translated;
    }
  }

  async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
    const blobName = this.fullKey(key);
    if (options.signal?.aborted === true) throw new AppError('cancelled', `upload ${blobName}: aborted`);
    // The contract, as on S3: a commit of staged blocks is never made conditional on an ETag, so
    // a replace that must be atomic is refused before anything is staged, never written unconditionally.
    if (options.ifMatchEtag !== undefined && options.partSizeBytes !== undefined) {
      throw new AppError('remote_rejected', `upload ${blobName}: a conditional replace (If-Match) is one request, not an upload in blocks`, { retryable: false });
    }
    const source = body();
    try {
      // As lib-storage does for S3, a stream that fits in one part goes up as a single Put Blob.
      if (options.partSizeBytes !== undefined && (isFileBody(source) || options.sizeBytes > options.partSizeBytes)) {
        const context = { container: this.client, partsInFlight: this.options.partsInFlight, ifNoneMatch: options.ifNoneMatch && this.conditionalWrites };
        const etag = await uploadInBlocks(context, blobName, Buffer.isBuffer(source) ? Readable.from([source]) : source, options.partSizeBytes, options);
        options.onStored?.(`"${etag}"`);
      } else {
        await this.putSingle(blobName, source, body, options);
      }
    } catch (error) {
      if (source instanceof Readable) source.destroy();
      throw translateAzureError(error, `upload ${blobName}`, options.signal);
    }
  }

  /**
   * One Put Blob. The service checks the body against Content-MD5 when given, and reports the MD5
   * it computed of what it stored, which is the S3 ETag the caller checks.
   */
  private async putSingle(blobName: string, source: Readable | Buffer | FileBody, body: BodySource, options: PutOptions): Promise<void> {
    const payload = isFileBody(source) ? await readWhole(source, options.sizeBytes) : source;
    // Should the SDK try the request again, a stream is opened anew from the body source. Every
    // stream opened is destroyed at the end, whatever the SDK did with it: a try cut short leaves
    // its stream part-read, and only the SDK's internals (no promise of its API) dispose of it.
    const opened: Readable[] = payload instanceof Readable ? [payload] : [];
    let first = true;
    const reopen = (): NodeJS.ReadableStream => {
      if (first && payload instanceof Readable) {
        first = false;
        return payload;
      }
      const again = body();
      if (!(again instanceof Readable)) throw new AppError('local_io', `upload ${blobName}: the body source gave no stream on a second try`);
      opened.push(again);
      return again;
    };
    try {
      const conditions = options.ifMatchEtag !== undefined ? { ifMatch: await this.versionWithEtag(blobName, options.ifMatchEtag) } : options.ifNoneMatch && this.conditionalWrites ? { ifNoneMatch: '*' } : undefined;
      const answer = await this.client.getBlockBlobClient(blobName).upload(Buffer.isBuffer(payload) ? payload : reopen, options.sizeBytes, {
        transactionalContentMD5: options.md5Hex === undefined ? undefined : Buffer.from(options.md5Hex, 'hex'),
        conditions,
        metadata: toAzureMetadata(options.metadata, `upload ${blobName}`),
        abortSignal: options.signal,
      });
      options.onProgress?.(options.sizeBytes);
      const stored = md5HexOf(answer.contentMD5);
      options.onStored?.(stored === '' ? undefined : `"${stored}"`);
    } finally {
      for (const stream of opened) stream.destroy();
    }
  }

  /**
   * The Azure ETag of the blob while it has the reported ETag `etag`. A write conditional on it
   * (If-Match) is then atomic: Azure never gives two versions one ETag, so a blob replaced since
   * fails the write with 412, a conflict.
   */
  private async versionWithEtag(blobName: string, etag: string): Promise<string> {
    const what = `replace ${blobName} if it has ETag ${normalizeEtag(etag)}`;
    const properties = await this.client.getBlobClient(blobName).getProperties().catch((error: unknown) => {
      const translated = translateAzureError(error, what);
      throw translated.kind === 'not_found' ? new AppError('conflict', `${what}: it no longer exists`, { cause: error }) : translated;
    });
    const current = normalizeEtag(reportedEtag(properties));
    if (current !== normalizeEtag(etag)) throw new AppError('conflict', `${what}: it has ETag ${current || '(none)'}`, { details: { currentEtag: current } });
    return properties.etag ?? '';
  }

  copy(sourceKey: string, targetKey: string, options: CopyOptions): Promise<void> {
    return copyAzureBlob({ container: this.container, partsInFlight: this.options.partsInFlight }, this.fullKey(sourceKey), this.fullKey(targetKey), options);
  }

  async compose(targetKey: string, options: ComposeOptions): Promise<void> {
    const targetName = this.fullKey(targetKey);
    const sourceName = this.fullKey(options.sourceKey);
    const what = `compose ${targetName} from ${sourceName}`;
    checkComposeParts(what, options.parts);
    await composeAzureBlob(
      { container: this.container, partsInFlight: this.options.partsInFlight },
      {
        what,
        sourceName,
        targetName,
        sourceEtag: options.sourceEtag,
        parts: options.parts,
        body: options.body,
        metadata: options.metadata,
        signal: options.signal,
        onPartDone: options.onPartDone,
        partRetry: options.partRetry,
      },
    );
  }

  get(key: string, signal?: AbortSignal): Promise<Readable> {
    return this.download(key, 0, undefined, signal);
  }

  getRange(key: string, start: number, endInclusive: number, signal?: AbortSignal): Promise<Readable> {
    return this.download(key, start, endInclusive - start + 1, signal);
  }

  private async download(key: string, offset: number, count: number | undefined, signal: AbortSignal | undefined): Promise<Readable> {
    const blobName = this.fullKey(key);
    try {
      const answer = await this.client.getBlobClient(blobName).download(offset, count, { abortSignal: signal });
      const body = answer.readableStreamBody;
      if (!(body instanceof Readable)) throw new AppError('remote_unavailable', `download ${blobName}: no body in the answer`);
      return body;
    } catch (error) {
      throw translateAzureError(error, `download ${blobName}`, signal);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.getBlobClient(this.fullKey(key)).deleteIfExists({ deleteSnapshots: 'include' });
    } catch (error) {
      throw translateAzureError(error, `delete ${this.fullKey(key)}`);
    }
  }

  /**
   * Azure has no multipart uploads to list: the blocks of an upload that was never committed are
   * invisible, discarded by the next commit of the same name and otherwise by the service a week
   * after they were staged. Nothing is left for memsync's sweep to abort, so the list is empty.
   */
  async listMultipartUploads(_keyPrefix: string): Promise<MultipartUpload[]> {
    return [];
  }

  /** See listMultipartUploads: there is nothing to abort. */
  async abortMultipartUpload(_upload: MultipartUpload): Promise<void> {}

  /** The SDK keeps no connections of its own to close. */
  close(): void {}
}

async function readWhole(body: FileBody, sizeBytes: number): Promise<Buffer> {
  const bytes = Buffer.allocUnsafe(sizeBytes);
  await body.read(bytes, 0);
  return bytes;
}
