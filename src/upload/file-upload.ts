import type { Readable } from 'node:stream';
import { AppError, isAppError } from '../errors.js';
import type { Encryption } from '../crypto/encryption.js';
import type { FileBody, RemoteStore } from '../remote/store.js';
import { fileDigestAccumulator, normalizeEtag, partSizeFor, usesMultipart, type DigestAccumulator, type FileDigest } from '../snapshot/digest.js';
import { fileKey } from '../snapshot/manifest.js';
import { isStuckFileOperation } from '../snapshot/safe-open.js';
import { METADATA_AGENT, METADATA_CONTENT_TAG, METADATA_SHA256, sameEncryptedContent, verifyStored, type ReadBackDigest } from './plan.js';
import { readBack } from './read-back.js';
import type { Retrying } from './requests.js';
import { nameTaken } from './unlisted-upload.js';
import type { SnapshotFiles } from './snapshot-files.js';
import type { StoredVerificationMethod } from './stored-verification.js';
import type { FinalTransfer, TransferContext, TransferInput, TransferResult } from './transfer.js';
import { ciphertextDigest, digestedBody, encryptedBody, fileBody, readFrom, sealedIdentity, sealedLayout } from './upload-body.js';

/**
 * Sends a file's bytes to its key and verifies them against the server's own account: one PUT
 * below the multipart threshold, parts read from the file above it, an encrypted stream with
 * encryption. Always applies, so it is the last transfer tried.
 */

export interface FileUploadOptions {
  store: RemoteStore;
  files: SnapshotFiles;
  agentId: string;
  multipartThresholdBytes: number;
  encryption: Encryption | undefined;
  retrying: Retrying;
  now: () => number;
  /** How a stored object is proven to hold the bytes sent (stored-verification.ts). Default 'etag'. */
  verification?: StoredVerificationMethod;
}

/** Large-file progress lines at most this often, so a multi-GB upload shows it is alive without flooding. */
const PROGRESS_LOG_INTERVAL_MS = 5000;

export class FileUpload implements FinalTransfer {
  constructor(private readonly options: FileUploadOptions) {}

  /** Sends one file and verifies it; 'found' when an identical object appeared meanwhile (nothing sent is kept). */
  async attempt(input: TransferInput, context: TransferContext): Promise<TransferResult> {
    const { store, files, encryption, multipartThresholdBytes } = this.options;
    const { stat, signal, log } = context;
    const key = fileKey(stat.name, input.file.path);
    const absolute = files.absolutePath(stat, input.file);
    const size = input.file.size;
    const known = input.digest;
    const sealed = encryption === undefined ? undefined : sealedLayout(size, multipartThresholdBytes);
    const multipart = sealed?.multipart ?? usesMultipart(size, multipartThresholdBytes);
    const partSizeBytes = sealed?.partSizeBytes ?? partSizeFor(size);
    let lastLogMs = this.options.now();
    let loadedBefore = 0;
    // Files of one snapshot upload in parallel: each adds its own increments to the shared total.
    const reportProgress = (loaded: number): void => {
      context.addSentBytes(loaded - loadedBefore);
      loadedBefore = loaded;
      const now = this.options.now();
      if (multipart && now - lastLogMs >= PROGRESS_LOG_INTERVAL_MS) {
        lastLogMs = now;
        log.info('upload progress', { file: input.file.path, sentBytes: loaded, totalBytes: size, percent: Math.floor((loaded / Math.max(1, size)) * 100) });
      }
    };
    return this.options.retrying(async () => {
      // Opened here, not inside the body stream: a file pruned since it was hashed then fails
      // this call, instead of erupting later as an 'error' event on a stream nobody listens to yet.
      // Refused unless it is still the regular file that was scanned (and hashed): see safe-open.ts.
      const file = await files.open(stat, input.file);
      context.writing?.(key);
      // The digests of what this attempt sends, when they are not known before: an encrypted
      // body's (known once the ciphertext has streamed out), or a file hashed on the way.
      const attempt: { sent: DigestAccumulator | undefined; storedEtag: string | undefined } = { sent: undefined, storedEtag: undefined };
      const body = (): Readable | FileBody => {
        if (encryption !== undefined && sealed !== undefined) {
          attempt.sent = ciphertextDigest(sealed, { sha256: this.readsBack });
          return encryptedBody(readFrom(file, size), encryption.writeKey, attempt.sent);
        }
        if (known !== undefined) return multipart ? fileBody(file, absolute) : readFrom(file, size);
        // Not digested yet (a large new file): digested as it is read, one pass over the file.
        // In parts, its ETag is the parts' MD5s, each sent as that part's Content-MD5; an MD5 of
        // the whole file would cost as much CPU again (later server-side copies go in parts).
        attempt.sent = fileDigestAccumulator(size, multipartThresholdBytes, { wholeMd5: !multipart });
        return multipart ? fileBody(file, absolute) : digestedBody(readFrom(file, size), attempt.sent);
      };
      const onPart = (part: Buffer): Buffer | undefined => (sealed === undefined ? attempt.sent?.addPart(part) : undefined);
      try {
        await store.put(key, body, {
          sizeBytes: sealed?.sizeBytes ?? size,
          // Content-MD5 must precede the body: only for a file digested before; the others are checked through the ETag after.
          md5Hex: multipart || sealed !== undefined ? undefined : known?.md5,
          partSizeBytes: multipart ? partSizeBytes : undefined,
          ifNoneMatch: !input.replace,
          metadata: this.objectMetadata(known),
          // A single PUT in flight is let finish (it is below the multipart threshold): aborted
          // client-side, the server may still store it after the abandon check, leaving an
          // orphan. Finished, it is known and removed if the snapshot is abandoned. A multipart
          // upload is cancelled instead: it stores nothing until completed.
          signal: multipart ? signal : undefined,
          onProgress: reportProgress,
          onPart,
          onStored: (etag) => {
            attempt.storedEtag = etag === '' ? undefined : etag;
          },
          // Parts read from the file are sent again by the store within the upload when cut in
          // transit; one that used up those tries fails as not retryable, so the retry around this
          // call does not send the whole file again into the same outage (the snapshot's own
          // retry comes later). An encrypted stream cannot be read again at a part's offset.
          partRetry: multipart && sealed === undefined ? this.options.retrying.inParts : undefined,
        });
      } catch (error) {
        // Awaited here: the finally below must not close the file while it is still pending.
        if (isAppError(error, 'conflict')) {
          if (context.unlisted === true) throw nameTaken(key, error);
          return await this.resolveRace(input, context, key);
        }
        // A failed read of the local file means the snapshot changed or went away, not a store problem.
        // Not after a stuck one: the disk is not answering, and another look at it would hang too.
        if (!isStuckFileOperation(error)) await files.requireFileUnchanged(stat, input.file);
        throw error;
      } finally {
        await file.close();
      }
      const expected = attempt.sent?.digest() ?? (known as FileDigest);
      // The write's own answer says what the server stored (an ETag is the MD5 of those bytes, or
      // of their parts); only a server that answered without one costs a HEAD.
      const stored = attempt.storedEtag === undefined ? await store.head(key) : { size: expected.size, etag: attempt.storedEtag, metadata: {} };
      const problem = verifyStored(expected, stored, await this.readBackIfAsked(key, signal));
      if (problem !== undefined) {
        // Removed only when it is this agent's: a server that ignores If-None-Match on multipart
        // completion may hold another writer's object there now, which is never deleted.
        const now = await store.head(key).catch(() => undefined);
        if (now !== undefined && now.metadata[METADATA_AGENT] !== this.options.agentId) {
          throw new AppError('conflict', `${key} was written by someone else during the upload`);
        }
        await store.delete(key).catch(() => undefined);
        await files.requireFileUnchanged(stat, input.file);
        throw new AppError('integrity', `upload ${stat.name}/${input.file.path}: ${problem}`);
      }
      const sent = known === undefined && sealed === undefined ? this.sentDigest(input, context, expected) : undefined;
      return { kind: 'sent', storedEtag: normalizeEtag(stored?.etag), ...(sent === undefined ? {} : { digest: sent }), bytesSent: size, bytesCopied: 0, bytesDelta: 0 };
    }, `upload ${key}`, signal);
  }

  /**
   * A file hashed while it was sent: what was read is the file as it was settled (same size, and
   * the snapshot's stat is checked again before the manifest), so its digest goes into the plan
   * and the cache like any other.
   */
  private sentDigest(input: TransferInput, { stat }: TransferContext, digest: FileDigest): FileDigest {
    if (digest.size !== input.file.size) throw new AppError('snapshot_gone', `${stat.name}/${input.file.path} changed size while being sent`);
    this.options.files.remember(stat, input.file, digest);
    return digest;
  }

  /**
   * Metadata of an uploaded file: who wrote it and what it holds (for encrypted files, a keyed tag
   * of that). A file hashed on the way out has no SHA-256 yet when the upload starts: its manifest says it.
   */
  private objectMetadata(digest: FileDigest | undefined): Record<string, string> {
    const { encryption, agentId } = this.options;
    if (digest === undefined) return { [METADATA_AGENT]: agentId };
    if (encryption === undefined) return { [METADATA_AGENT]: agentId, [METADATA_SHA256]: digest.sha256 };
    return { [METADATA_AGENT]: agentId, [METADATA_CONTENT_TAG]: encryption.contentTag(digest.sha256) };
  }

  private get readsBack(): boolean {
    return this.options.verification === 'read-back-sha256';
  }

  /** The object read back, where its ETag proves nothing; undefined where it does. */
  private async readBackIfAsked(key: string, signal: AbortSignal | undefined): Promise<ReadBackDigest | undefined> {
    return this.readsBack ? readBack(this.options.store, key, signal) : undefined;
  }

  /** Someone wrote the key between our HEAD and PUT: identical content is fine, anything else is a conflict. */
  private async resolveRace(input: TransferInput, { stat, signal }: TransferContext, key: string): Promise<TransferResult> {
    const head = await this.options.store.head(key);
    const digest = input.digest ?? (await this.options.files.digest(stat, input.file));
    const sealed = sealedIdentity(this.options.encryption, digest, this.options.multipartThresholdBytes);
    const readBackDigest = sealed === undefined && head?.size === digest.size ? await this.readBackIfAsked(key, signal) : undefined;
    if (sealed === undefined ? verifyStored(digest, head, readBackDigest) === undefined : sameEncryptedContent(sealed, head)) {
      return { kind: 'found', storedEtag: normalizeEtag(head?.etag), digest, bytesSent: 0, bytesCopied: 0, bytesDelta: 0 };
    }
    throw new AppError('conflict', `${key} was written by someone else during the upload`);
  }
}
