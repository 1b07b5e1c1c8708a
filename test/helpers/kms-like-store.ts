// An in-memory store whose ETags are no digests of the content, as AWS S3 answers for objects
// under SSE-KMS: 32 hex digits that look like an MD5 and are not one. The real test server
// (Ceph RGW 16) keeps MD5 ETags under SSE-KMS, so it cannot show this.
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { MemoryRemoteStore, type MemoryStoreOptions } from '../../src/remote/memory-store.js';
import type { BodySource, ComposeOptions, CopyOptions, PutOptions } from '../../src/remote/store.js';

export class KmsLikeStore extends MemoryRemoteStore {
  /** Keys read whole (GET) so far, in order. */
  readonly getLog: string[] = [];

  constructor(options: MemoryStoreOptions = {}) {
    super(options);
  }

  override async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
    await super.put(key, body, { ...options, onStored: undefined });
    options.onStored?.(`"${this.makeOpaque(key)}"`);
  }

  override async copy(sourceKey: string, targetKey: string, options: CopyOptions): Promise<void> {
    await super.copy(sourceKey, targetKey, options);
    this.makeOpaque(targetKey);
  }

  override async compose(targetKey: string, options: ComposeOptions): Promise<void> {
    await super.compose(targetKey, options);
    this.makeOpaque(targetKey);
  }

  override async get(key: string): Promise<Readable> {
    this.getLog.push(key);
    return super.get(key);
  }

  private makeOpaque(key: string): string {
    const stored = this.objects.get(key);
    if (stored === undefined) throw new Error(`${key} not stored`);
    stored.etag = randomBytes(16).toString('hex');
    return stored.etag;
  }
}
