import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseSignature, serializeSignature, signatureByteLimit, type Signature } from '../delta/signature.js';
import { writeFileAtomic } from './atomic-file.js';

const SHA256_HEX = /^[0-9a-f]{64}$/;
const SUFFIX = '.sig';
const ETAGS_SUFFIX = '.etags';
const MULTIPART_ETAG = /^[0-9a-f]{32}-\d{1,5}$/;
const MAX_ETAGS_PER_CONTENT = 8;

/**
 * Chunk signatures of large file versions memsync has read, in the state directory, one file per
 * content (named by its SHA-256). A signature is what lets the next version of a file be composed
 * from ranges of this one; it is a few hundred KiB for a GiB file, so it lives beside the digest
 * cache rather than in it (that JSON document is rewritten often). Content-addressed: the same
 * bytes in ten snapshots have one signature, and a signature never goes stale.
 */
export class SignatureStore {
  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  /** The signature of the content with this SHA-256 and size, or undefined (never kept, unreadable, or not this content). */
  async get(sha256: string, size: number): Promise<Signature | undefined> {
    if (!SHA256_HEX.test(sha256)) return undefined;
    let bytes: Buffer;
    try {
      bytes = await readFile(this.fileOf(sha256));
    } catch {
      return undefined;
    }
    try {
      if (bytes.length > signatureByteLimit(size)) throw new Error(`${bytes.length} bytes is more than a signature of ${size} bytes can need`);
      return parseSignature(bytes, { size, sha256 });
    } catch (error) {
      this.log.warn('signature file unreadable; removing it (the file will be sent whole once)', { sha256, error: describeError(error) });
      await unlink(this.fileOf(sha256)).catch(() => undefined);
      return undefined;
    }
  }

  /** Keeps a signature; a failure only costs a later whole upload, so it is logged, not thrown. */
  async put(signature: Signature): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(this.fileOf(signature.sha256), serializeSignature(signature));
    } catch (error) {
      this.log.warn('cannot save a file signature; its next version will be sent whole', { sha256: signature.sha256, error: describeError(error) });
    }
  }

  /** ETags of objects memsync composed for this content and verified part by part (delta-transfer.ts). */
  async composedEtags(sha256: string): Promise<ReadonlySet<string>> {
    if (!SHA256_HEX.test(sha256)) return new Set();
    try {
      const parsed: unknown = JSON.parse(await readFile(this.etagsFileOf(sha256), 'utf8'));
      return new Set(Array.isArray(parsed) ? parsed.filter((etag): etag is string => typeof etag === 'string' && MULTIPART_ETAG.test(etag)) : []);
    } catch {
      return new Set();
    }
  }

  async noteComposedEtag(sha256: string, etag: string): Promise<void> {
    if (!SHA256_HEX.test(sha256) || !MULTIPART_ETAG.test(etag)) return;
    const known = new Set(await this.composedEtags(sha256));
    if (known.has(etag)) return;
    // A handful per content at most (one per base it was composed from); the newest are kept.
    const kept = [...known, etag].slice(-MAX_ETAGS_PER_CONTENT);
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(this.etagsFileOf(sha256), JSON.stringify(kept));
    } catch (error) {
      this.log.warn('cannot note a composed object; identical later files will be sent or composed instead of copied', { sha256, error: describeError(error) });
    }
  }

  /** Removes every signature whose content is not in `keep` (the digests still cached). */
  async prune(keep: ReadonlySet<string>): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return 0;
    }
    let removed = 0;
    for (const name of names) {
      const sha256 = name.endsWith(SUFFIX) ? name.slice(0, -SUFFIX.length) : name.endsWith(ETAGS_SUFFIX) ? name.slice(0, -ETAGS_SUFFIX.length) : '';
      if (!SHA256_HEX.test(sha256) || keep.has(sha256)) continue;
      await unlink(path.join(this.dir, name)).then(
        () => (removed += 1),
        () => undefined,
      );
    }
    return removed;
  }

  private fileOf(sha256: string): string {
    return path.join(this.dir, `${sha256}${SUFFIX}`);
  }

  private etagsFileOf(sha256: string): string {
    return path.join(this.dir, `${sha256}${ETAGS_SUFFIX}`);
  }
}
