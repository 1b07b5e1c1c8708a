import { createHash } from 'node:crypto';
import { lstat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import path from 'node:path';
import type PQueue from 'p-queue';
import { AppError, describeError, isAppError } from '../errors.js';
import type { Logger } from '../log.js';
import { readSmallObject, sha256OfBody } from '../remote/body.js';
import type { FileBody, RemoteObject, RemoteStore } from '../remote/store.js';
import { openLocalFile, isStuckFileOperation, DEFAULT_FILE_DEADLINE_MS, type LocalFile, type OpenOptions } from '../snapshot/safe-open.js';
import { Chunker, type Chunk } from '../delta/chunker.js';
import type { SignatureStore } from '../state/signature-store.js';
import { digestFile, fileDigestAccumulator, normalizeEtag, partSizeFor, producesEtag, usesMultipart, type DigestAccumulator, type FileDigest } from '../snapshot/digest.js';
import { SIGNATURES_FILE_NAME } from '../snapshot/reserved-names.js';
import { buildManifest, claimKey, diffManifests, fileKey, manifestDigest, type FileDifference, type Manifest } from '../snapshot/manifest.js';
import { decodeManifest, manifestKeyFor, plainManifestCodec, type ManifestCodec, type ManifestFormat } from '../snapshot/manifest-codec.js';
import { manifestByteLimit } from '../snapshot/manifest-limits.js';
import type { Encryption } from '../crypto/encryption.js';
import { ciphertextDigest, digestedBody, encryptedBody, sealedLayout } from './upload-body.js';
import { sameFingerprint, statSnapshot, type FileStat, type SnapshotStat } from '../snapshot/scan.js';
import { lookupDigest, storeDigest, type HashCacheDocument } from '../state/hash-cache.js';
import type { PersistedJson } from '../state/persisted.js';
import { decideSnapshot, METADATA_AGENT, METADATA_CONTENT_TAG, METADATA_SHA256, planEncryptedFile, planFile, requireUploadablePaths, sameEncryptedContent, verifyStored, type FileAction } from './plan.js';
import { withRetry, type RetryPolicy } from '../retry.js';
import { listAllObjects, type RemoteIndex } from '../remote/remote-index.js';
import type { CopySource } from './copy-plan.js';
import { DeltaTransfer, type DeltaResult } from './delta-transfer.js';
import { ServerSideCopier } from './server-side-copy.js';

/**
 * Uploads one settled snapshot: digest its files (cached), compare with what the bucket
 * holds, upload missing files through the shared file queue, verify each against the
 * server's own account, and write the manifest last. A snapshot whose name is taken by
 * different content is reported as a conflict and nothing is written.
 */

export interface ConflictReport {
  localDigest: string;
  remoteDigest: string;
  files: FileDifference[];
}

/** The manifest object that makes a snapshot complete remotely, as the bucket lists it. */
export interface StoredManifest {
  /** ETag of the manifest object: what a listing shows for this snapshot. */
  manifestEtag: string;
  encrypted: boolean;
}

export type SnapshotOutcome =
  | ({
      outcome: 'uploaded';
      manifest: Manifest;
      bytes: number;
      /** Bytes that went over the wire; files copied server-side or already there are not in it. */
      bytesSent: number;
      filesSent: number;
      /** Bytes of files created by a server-side copy of an identical object already in the bucket. */
      bytesCopied: number;
      /** Bytes of files composed server-side from ranges of their previous version (see delta-transfer.ts). */
      bytesDelta: number;
      filesDelta: number;
      filesCopied: number;
      durationMs: number;
    } & StoredManifest)
  | ({ outcome: 'already-remote'; manifest: Manifest } & StoredManifest)
  | { outcome: 'conflict'; manifest: Manifest; conflict: ConflictReport };

export interface UploadProgress {
  snapshot: string;
  totalBytes: number;
  sentBytes: number;
  files: number;
  filesDone: number;
  startedAtMs: number;
}

export interface UploaderOptions {
  store: RemoteStore;
  hashCache: PersistedJson<HashCacheDocument>;
  /** The file queue shared by all snapshots: its concurrency is the number of files in flight. */
  fileQueue: PQueue;
  agentId: string;
  backupDir: string;
  multipartThresholdBytes: number;
  retry: RetryPolicy;
  log: Logger;
  now: () => number;
  /** Each failed attempt that will be retried: lets the store's health show an outage before the retries run out. */
  onRetry?: (error: AppError) => void;
  /**
   * Differential uploads: files whose bytes a complete remote snapshot already holds are
   * created by server-side copy. `remoteIndex` is the latest listing of the bucket. Omitted: off.
   */
  serverSideCopy?: { remoteIndex: () => RemoteIndex; sourceSnapshots?: number };
  /** Client-side encryption of files and manifests; omitted: stored as they are. */
  encryption?: Encryption;
  /**
   * Whether the store refuses a conditional PUT over an existing key (found out at start). Then
   * the manifest is written without a HEAD first: the PUT itself is the check. Omitted: HEAD first.
   */
  conditionalWritesHonoured?: () => boolean;
  /**
   * Longest wait for one open, stat or read of a local file before its snapshot fails (the
   * blocked thread itself cannot be freed; see withDeadline). Default DEFAULT_FILE_DEADLINE_MS.
   */
  localFileDeadlineMs?: number;
  /** Refuse files with more than one hard link (another name may be outside the backup directory). Default false. */
  refuseHardlinks?: boolean;
  /**
   * Delta uploads (needs serverSideCopy, and no encryption): a large file whose previous version
   * is stored is composed from ranges of it plus the changed bytes. Omitted: off.
   */
  delta?: { minFileBytes: number; signatures: SignatureStore };
}

/** Large-file progress lines at most this often, so a multi-GB upload shows it is alive without flooding. */
const PROGRESS_LOG_INTERVAL_MS = 5000;

export class SnapshotUploader {
  private readonly copier: ServerSideCopier | undefined;
  private readonly delta: DeltaTransfer | undefined;
  private readonly codec: ManifestCodec;

  constructor(private readonly options: UploaderOptions) {
    const copy = options.serverSideCopy;
    const signatures = options.delta?.signatures;
    this.codec = options.encryption?.codec ?? plainManifestCodec();
    // An encrypted object's ETag cannot be predicted from the local file, so a copy could not be
    // verified without downloading it: with encryption, every file is sent.
    this.copier =
      copy === undefined || options.encryption !== undefined
        ? undefined
        : new ServerSideCopier({
            store: options.store,
            remoteIndex: copy.remoteIndex,
            sourceSnapshots: copy.sourceSnapshots,
            agentId: options.agentId,
            retry: options.retry,
            log: options.log,
            ...(signatures === undefined ? {} : { composedEtags: (sha256: string) => signatures.composedEtags(sha256) }),
          });
    const copier = this.copier;
    this.delta =
      options.delta === undefined || copier === undefined
        ? undefined
        : new DeltaTransfer({
            store: options.store,
            signatures: options.delta.signatures,
            minFileBytes: options.delta.minFileBytes,
            knownSnapshots: (exclude, signal) => copier.knownSnapshots(exclude, signal),
            agentId: options.agentId,
            retry: options.retry,
            log: options.log,
          });
  }

  /** Digests a settled snapshot into its manifest, re-reading only files whose stat changed. */
  async buildLocalManifest(stat: SnapshotStat): Promise<{ manifest: Manifest; digests: Map<string, FileDigest> }> {
    const digests = new Map<string, FileDigest>();
    for (const file of stat.files) digests.set(file.path, await this.digest(stat, file));
    const manifest = buildManifest(
      stat.name,
      stat.kind,
      stat.files.map((file) => ({ path: file.path, size: file.size, sha256: (digests.get(file.path) as FileDigest).sha256 })),
    );
    return { manifest, digests };
  }

  /** The ETag this agent's manifest of that content has in the bucket (the codec's: plain or encrypted). */
  manifestEtag(manifest: Manifest): string {
    return this.codec.etag(manifest);
  }

  async upload(stat: SnapshotStat, signal: AbortSignal, onProgress: (progress: UploadProgress) => void): Promise<SnapshotOutcome> {
    // Before the first request: a snapshot a restore would refuse is never claimed, sent or marked complete.
    requireUploadablePaths(stat.name, stat.files.map((file) => file.path));
    const startedAtMs = this.options.now();
    const log = this.options.log.child({ snapshot: stat.name });
    if (stat.skipped.length > 0) {
      log.warn('entries inside the snapshot are not uploaded: symbolic links and special files are never followed', { entries: stat.skipped.slice(0, 20), count: stat.skipped.length });
    }
    // One listing says what the bucket holds under this name: manifests and files, sizes and
    // ETags. Keys it does not show need no HEAD before their upload (a conditional PUT still
    // guards the race with another writer).
    const listed = await this.retrying(() => this.listSnapshot(stat.name), `list ${stat.name}/`, signal);
    const remoteHasManifest = (['plain', 'encrypted'] as const).some((format) => listed.has(manifestKeyFor(stat.name, format)));

    if (remoteHasManifest) {
      // The name is taken by a complete snapshot: the whole local manifest decides, nothing is sent.
      const { manifest } = await this.buildLocalManifest(stat);
      await this.requireUnchanged(stat);
      const remote = await this.readRemoteManifest(stat.name, manifest, signal, listed);
      if (remote?.manifest === undefined) return { outcome: 'conflict', manifest, conflict: unreadableConflict(manifest, remote?.unreadable ?? 'manifest vanished while being read') };
      if (decideSnapshot(manifest, remote.manifest) === 'already-remote') {
        this.copier?.remember(manifest);
        return { outcome: 'already-remote', manifest, manifestEtag: remote.etag, encrypted: remote.format === 'encrypted' };
      }
      return { outcome: 'conflict', manifest, conflict: manifestConflict(manifest, remote.manifest) };
    }

    // Large files with nothing at their key and no cached digest are hashed while they are sent:
    // read once instead of twice. The rest is digested now (see streamedDigestFiles).
    const streamed = await this.streamedDigestFiles(stat, listed, signal);
    const digests = new Map<string, FileDigest>();
    for (const file of stat.files) if (!streamed.has(file.path)) digests.set(file.path, await this.digest(stat, file));
    await this.requireUnchanged(stat);

    const plans = await this.planFiles(stat, digests, signal, listed);
    const conflicts = plans.filter((p): p is FilePlan & { action: { action: 'conflict'; reason: string } } => p.action.action === 'conflict');
    if (conflicts.length > 0) {
      const { manifest } = await this.buildLocalManifest(stat);
      return {
        outcome: 'conflict',
        manifest,
        conflict: {
          localDigest: manifestDigest(manifest),
          remoteDigest: 'no manifest (incomplete remote snapshot)',
          files: conflicts.map((c) => ({ path: c.file.path, local: { size: c.file.size, sha256: c.digest?.sha256 ?? '' }, remote: undefined })),
        },
      };
    }

    const progress: UploadProgress = { snapshot: stat.name, totalBytes: stat.files.reduce((sum, f) => sum + f.size, 0), sentBytes: 0, files: plans.length, filesDone: 0, startedAtMs };
    const created: string[] = [];
    try {
      // Inside the try: a claim cancelled by a prune ends as snapshot_gone and is removed with the rest.
      if (plans.some((plan) => plan.action.action === 'upload' && this.sendsInParts(plan.file.size))) await this.claim(stat.name, listed, signal);
      const copySources = await this.copySources(stat.name, plans, signal);
      let bytesSent = 0;
      let filesSent = 0;
      let bytesCopied = 0;
      let filesCopied = 0;
      let bytesDelta = 0;
      let filesDelta = 0;
      const priority = Math.floor(stat.timeMs / 1000);
      // No signal is handed to the queue: an aborted add() would reject while its task still
      // runs, and the cleanup below must only start once every task has really finished.
      const tasks = plans.map((plan) =>
        this.options.fileQueue.add(
          async () => {
            if (signal.aborted) throw cancelledOr(undefined, signal);
            let composed: DeltaResult | undefined;
            if (plan.action.action === 'upload' && (await this.copied(stat.name, plan, copySources, signal, log))) {
              created.push(fileKey(stat.name, plan.file.path));
              bytesCopied += plan.file.size;
              filesCopied += 1;
              progress.sentBytes += plan.file.size;
            } else if (plan.action.action === 'upload' && (composed = await this.composed(stat, plan, signal, log)) !== undefined) {
              created.push(fileKey(stat.name, plan.file.path));
              plan.storedEtag = composed.etag;
              bytesSent += composed.bytesSent;
              bytesDelta += composed.bytesDelta;
              filesDelta += 1;
              progress.sentBytes += plan.file.size;
            } else if (plan.action.action === 'upload') {
              const sent = await this.uploadFile(stat, plan, signal, progress, onProgress, log);
              if (sent) {
                created.push(fileKey(stat.name, plan.file.path));
                bytesSent += plan.file.size;
                filesSent += 1;
              }
            } else {
              progress.sentBytes += plan.file.size;
            }
            progress.filesDone += 1;
            onProgress({ ...progress });
          },
          { priority },
        ),
      );
      const results = await Promise.allSettled(tasks);
      const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failure !== undefined) throw failure.reason;
      // Files changed while they were being sent: what was sent is not a consistent snapshot.
      await this.requireUnchanged(stat);
      // Every file has its digest now: those hashed on the way out were filled in by their upload.
      const manifest = buildManifest(stat.name, stat.kind, plans.map(({ file, digest }) => ({ path: file.path, size: file.size, sha256: (digest as FileDigest).sha256 })));
      const replaced = await this.replacedDuringUpload(stat.name, plans, signal);
      if (replaced.length > 0) {
        log.warn('objects of this snapshot were replaced by another writer during the upload; manifest not written', { files: replaced.slice(0, 20) });
        return { outcome: 'conflict', manifest, conflict: { localDigest: manifestDigest(manifest), remoteDigest: 'objects replaced by another writer during the upload', files: replaced.map((path) => ({ path, local: undefined, remote: undefined })) } };
      }
      await this.writeSignatures(stat.name, manifest, signal, log);
      const written = await this.writeManifest(stat.name, manifest, signal);
      if ('conflict' in written) return { outcome: 'conflict', manifest, conflict: written.conflict };
      this.copier?.remember(manifest);
      return { outcome: 'uploaded', manifest, ...written, bytes: progress.totalBytes, bytesSent, filesSent, bytesCopied, filesCopied, bytesDelta, filesDelta, durationMs: this.options.now() - startedAtMs };
    } catch (error) {
      const translated = cancelledOr(error, signal);
      // A snapshot that vanished or changed leaves nothing half-written under its name. On
      // shutdown, files already sent are kept: they are reused when the upload resumes.
      if (translated.kind === 'snapshot_gone') await this.abandon(stat.name, plans, created, log);
      throw translated;
    }
  }

  private sendsInParts(plainBytes: number): boolean {
    const { encryption, multipartThresholdBytes } = this.options;
    return encryption === undefined ? usesMultipart(plainBytes, multipartThresholdBytes) : sealedLayout(plainBytes, multipartThresholdBytes).multipart;
  }

  /**
   * Claims the snapshot's name before its first multipart upload (see CLAIM_FILE_NAME). Another
   * agent's claim means that agent is uploading this name: nothing is sent, and the upload is
   * retried later, when the other's manifest says whether the contents are the same.
   */
  private async claim(name: string, listed: ReadonlyMap<string, RemoteObject>, signal: AbortSignal): Promise<void> {
    const { store, agentId } = this.options;
    const key = claimKey(name);
    if (!listed.has(key)) {
      const body = Buffer.from(`${JSON.stringify({ agent: agentId, atMs: this.options.now() })}\n`);
      try {
        await this.retrying(
          () => store.put(key, () => body, { sizeBytes: body.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: true, metadata: { [METADATA_AGENT]: agentId }, signal, onProgress: undefined }),
          `upload ${key}`,
          signal,
        );
        return;
      } catch (error) {
        if (!isAppError(error, 'conflict')) throw error;
      }
    }
    const owner = (await this.retrying(() => store.head(key), `head ${key}`, signal))?.metadata[METADATA_AGENT];
    if (owner === agentId || owner === undefined) return;
    throw new AppError('conflict', `${name} is being uploaded by another memsync (agent ${owner}); this one waits for its manifest to compare contents`, {
      retryable: false,
      details: { claimedBy: owner },
      hint: 'two machines write backups under the same prefix and name: give each its own CLOUD_SYNC_PREFIX',
    });
  }

  /**
   * Paths whose object is no longer the one this upload verified. A server that ignores
   * If-None-Match on multipart completion (Ceph RGW 16) lets a second writer of the same name
   * replace an object between our check and our manifest: one listing before the manifest
   * catches that, and such a snapshot is a conflict, never written as complete.
   */
  private async replacedDuringUpload(name: string, plans: readonly FilePlan[], signal: AbortSignal): Promise<string[]> {
    const listed = await this.retrying(() => this.listSnapshot(name), `list ${name}/`, signal);
    return plans
      .filter((plan) => {
        const object = listed.get(fileKey(name, plan.file.path));
        if (object === undefined) return true;
        const etag = normalizeEtag(object.etag);
        if (plan.storedEtag !== undefined) return etag !== plan.storedEtag;
        // Created by a server-side copy: its ETag is one the local bytes produce.
        return plan.digest === undefined || !producesEtag(plan.digest, etag);
      })
      .map((plan) => plan.file.path);
  }

  /**
   * Files hashed while they are sent instead of in a pass of their own: large ones (multipart),
   * with nothing at their key and no cached digest. Not with encryption (the object carries a
   * tag of the SHA-256 from its first byte), nor where an earlier snapshot holds a file of the
   * same size (a server-side copy is decided on the SHA-256, before anything is sent).
   */
  private async streamedDigestFiles(stat: SnapshotStat, listed: ReadonlyMap<string, RemoteObject>, signal: AbortSignal): Promise<Set<string>> {
    const { hashCache, multipartThresholdBytes, encryption } = this.options;
    if (encryption !== undefined) return new Set();
    // A file that may be composed from its previous version needs its chunks before anything is sent.
    const candidates = stat.files.filter(
      (file) =>
        usesMultipart(file.size, multipartThresholdBytes) &&
        this.delta?.considers(file.size) !== true &&
        !listed.has(fileKey(stat.name, file.path)) &&
        lookupDigest(hashCache.current, stat.name, file, multipartThresholdBytes) === undefined,
    );
    if (candidates.length === 0) return new Set();
    const copyable = this.copier === undefined ? new Set<number>() : await this.copier.sourceSizes(stat.name, signal);
    return new Set(candidates.filter((file) => !copyable.has(file.size)).map((file) => file.path));
  }

  private async digest(stat: SnapshotStat, file: FileStat): Promise<FileDigest> {
    const { hashCache, multipartThresholdBytes } = this.options;
    const cached = lookupDigest(hashCache.current, stat.name, file, multipartThresholdBytes);
    if (cached !== undefined) return cached;
    // A file a later version may be composed from is chunked in the same read (see delta-transfer.ts).
    const chunker = this.delta?.considers(file.size) === true ? new Chunker() : undefined;
    const chunks: Chunk[] = [];
    const observe = chunker === undefined ? undefined : (bytes: Buffer): void => void chunks.push(...chunker.push(bytes));
    const digest = await digestFile(this.absolutePath(stat, file), file.size, multipartThresholdBytes, this.opening(stat, file), observe);
    if (chunker !== undefined) await this.delta?.keep([...chunks, ...chunker.finish()], digest);
    hashCache.update((doc) => storeDigest(doc, stat.name, file, multipartThresholdBytes, digest));
    return digest;
  }

  private absolutePath(stat: SnapshotStat, file: FileStat): string {
    return stat.kind === 'file' ? path.join(this.options.backupDir, stat.name) : path.join(this.options.backupDir, stat.name, ...file.path.split('/'));
  }

  private async requireUnchanged(stat: SnapshotStat): Promise<void> {
    const now = await statSnapshot(this.options.backupDir, stat.name);
    if (!sameFingerprint(now, stat)) throw new AppError('snapshot_gone', `${stat.name} changed while it was being uploaded`);
  }

  private async retrying<T>(operation: () => Promise<T>, what: string, signal: AbortSignal): Promise<T> {
    return withRetry(operation, {
      policy: this.options.retry,
      signal,
      onRetry: (error, attempt, delayMs) => {
        this.options.log.warn('retrying', { operation: what, attempt, delayMs, error: error.message });
        this.options.onRetry?.(error);
      },
    });
  }

  /**
   * The snapshot's remote manifest in either format (this agent's first), skipping the GET when
   * its ETag proves it is byte-identical to ours. One that cannot be read with the configured
   * key (encrypted with another key, or none configured) is returned as unreadable: the name
   * is taken by content memsync cannot compare, which is a conflict, never an overwrite.
   */
  private async readRemoteManifest(name: string, local: Manifest, signal: AbortSignal, listed?: Map<string, RemoteObject>): Promise<RemoteManifest | undefined> {
    const formats: ManifestFormat[] = this.codec.format === 'plain' ? ['plain', 'encrypted'] : ['encrypted', 'plain'];
    for (const format of formats) {
      const key = manifestKeyFor(name, format);
      const found = listed === undefined ? await this.retrying(() => this.options.store.head(key), `head ${key}`, signal) : listed.get(key);
      if (found === undefined) continue;
      const etag = normalizeEtag(found.etag);
      if (format === this.codec.format && etag === this.codec.etag(local)) return { manifest: local, etag, format };
      const bytes = await this.retrying(() => readSmallObject(this.options.store, key, manifestByteLimit(format), { signal, listedSizeBytes: found.size }), `download ${key}`, signal);
      try {
        return { manifest: await decodeManifest(bytes, format, name, this.options.encryption?.keyring), etag, format };
      } catch (error) {
        if (!isAppError(error, 'encryption_key')) throw error;
        return { manifest: undefined, unreadable: error.message, etag, format };
      }
    }
    return undefined;
  }

  /** The snapshot's objects by key (relative to the prefix), from one paginated listing. */
  private async listSnapshot(name: string): Promise<Map<string, RemoteObject>> {
    return new Map((await listAllObjects(this.options.store, `${name}/`)).map((object) => [object.key, object]));
  }

  private async planFiles(stat: SnapshotStat, digests: Map<string, FileDigest>, signal: AbortSignal, listed: Map<string, RemoteObject>): Promise<FilePlan[]> {
    return Promise.all(
      stat.files.map(async (file): Promise<FilePlan> => {
        const key = fileKey(stat.name, file.path);
        // Only a listed object needs a HEAD: its metadata says who wrote it.
        const head = listed.has(key) ? await this.retrying(() => this.options.store.head(key), `head ${key}`, signal) : undefined;
        if (head === undefined) return { file, digest: digests.get(file.path), action: { action: 'upload', replace: false } };
        const storedEtag = normalizeEtag(head.etag);
        // Listed files are never left to be hashed on the way out; this only covers a listing that changed since.
        const digest = digests.get(file.path) ?? (await this.digest(stat, file));
        const sealed = this.sealedIdentity(digest);
        if (sealed !== undefined) return { file, digest, action: planEncryptedFile(sealed, head, this.options.agentId), storedEtag };
        let action = planFile(digest, head, this.options.agentId);
        if (action.action === 'verify-remote') {
          const remoteSha256 = await this.retrying(async () => sha256OfBody(await this.options.store.get(key, signal), key), `verify ${key}`, signal);
          action = remoteSha256 === digest.sha256 ? { action: 'skip' } : { action: 'conflict', reason: `remote SHA-256 ${remoteSha256} differs` };
        }
        return { file, digest, action, storedEtag };
      }),
    );
  }

  /** Where each file to be written could be copied from instead of sent; empty when copies are off. */
  private async copySources(name: string, plans: readonly FilePlan[], signal: AbortSignal): Promise<Map<string, CopySource[]>> {
    const toWrite = plans.flatMap((plan) => (plan.action.action === 'upload' && plan.digest !== undefined ? [{ path: plan.file.path, size: plan.digest.size, sha256: plan.digest.sha256 }] : []));
    return this.copier === undefined ? new Map() : this.copier.sourcesFor(name, toWrite, signal);
  }

  /** Whether the file's object was created by a verified server-side copy; false: send it. */
  private async copied(name: string, plan: FilePlan, copySources: Map<string, CopySource[]>, signal: AbortSignal, log: Logger): Promise<boolean> {
    const sources = copySources.get(plan.file.path);
    if (sources === undefined || this.copier === undefined || plan.digest === undefined) return false;
    const storedEtag = await this.copier.copy(fileKey(name, plan.file.path), plan.digest, sources, signal, log);
    if (storedEtag === undefined) return false;
    plan.storedEtag = storedEtag;
    return true;
  }

  /** The file composed from its previous version (delta-transfer.ts); undefined: send it whole. */
  private async composed(stat: SnapshotStat, plan: FilePlan, signal: AbortSignal, log: Logger): Promise<DeltaResult | undefined> {
    if (this.delta === undefined || plan.digest === undefined || !this.delta.considers(plan.file.size)) return undefined;
    const file = await openLocalFile(this.absolutePath(stat, plan.file), this.opening(stat, plan.file));
    try {
      return await this.delta.compose(stat.name, fileKey(stat.name, plan.file.path), { path: plan.file.path, digest: plan.digest, body: fileBody(file, this.absolutePath(stat, plan.file)) }, signal, log);
    } finally {
      await file.close();
    }
  }

  /** Sends one file, verifies it, and returns whether bytes were sent (false: an identical object appeared meanwhile). */
  private async uploadFile(
    stat: SnapshotStat,
    plan: FilePlan,
    signal: AbortSignal,
    progress: UploadProgress,
    onProgress: (progress: UploadProgress) => void,
    log: Logger,
  ): Promise<boolean> {
    const { store } = this.options;
    const key = fileKey(stat.name, plan.file.path);
    const absolute = this.absolutePath(stat, plan.file);
    const replace = plan.action.action === 'upload' && plan.action.replace;
    const { encryption, multipartThresholdBytes } = this.options;
    const size = plan.file.size;
    const known = plan.digest;
    const sealed = encryption === undefined ? undefined : sealedLayout(size, multipartThresholdBytes);
    const multipart = sealed?.multipart ?? usesMultipart(size, multipartThresholdBytes);
    const partSizeBytes = sealed?.partSizeBytes ?? partSizeFor(size);
    let lastLogMs = this.options.now();
    let loadedBefore = 0;
    // Files of one snapshot upload in parallel: each adds its own increments to the shared total.
    const reportProgress = (loaded: number): void => {
      progress.sentBytes += loaded - loadedBefore;
      loadedBefore = loaded;
      onProgress({ ...progress });
      const now = this.options.now();
      if (multipart && now - lastLogMs >= PROGRESS_LOG_INTERVAL_MS) {
        lastLogMs = now;
        log.info('upload progress', { file: plan.file.path, sentBytes: loaded, totalBytes: size, percent: Math.floor((loaded / Math.max(1, size)) * 100) });
      }
    };
    return this.retrying(async () => {
      // Opened here, not inside the body stream: a file pruned since it was hashed then fails
      // this call, instead of erupting later as an 'error' event on a stream nobody listens to yet.
      // Refused unless it is still the regular file that was scanned (and hashed): see safe-open.ts.
      const file = await openLocalFile(absolute, this.opening(stat, plan.file));
      // The digests of what this attempt sends, when they are not known before: an encrypted
      // body's (known once the ciphertext has streamed out), or a file hashed on the way.
      const attempt: { sent: DigestAccumulator | undefined; storedEtag: string | undefined } = { sent: undefined, storedEtag: undefined };
      const body = (): Readable | FileBody => {
        if (encryption !== undefined && sealed !== undefined) {
          attempt.sent = ciphertextDigest(sealed);
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
          ifNoneMatch: !replace,
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
        });
      } catch (error) {
        // Awaited here: the finally below must not close the file while it is still pending.
        if (isAppError(error, 'conflict')) return await this.resolveRace(stat, key, plan);
        // A failed read of the local file means the snapshot changed or went away, not a store problem.
        // Not after a stuck one: the disk is not answering, and another look at it would hang too.
        if (!isStuckFileOperation(error)) await this.requireFileUnchanged(stat, plan.file, absolute);
        throw error;
      } finally {
        await file.close();
      }
      const expected = attempt.sent?.digest() ?? (known as FileDigest);
      // The write's own answer says what the server stored (an ETag is the MD5 of those bytes, or
      // of their parts); only a server that answered without one costs a HEAD.
      const stored = attempt.storedEtag === undefined ? await store.head(key) : { size: expected.size, etag: attempt.storedEtag, metadata: {} };
      const problem = verifyStored(expected, stored);
      if (problem !== undefined) {
        // Removed only when it is this agent's: a server that ignores If-None-Match on multipart
        // completion may hold another writer's object there now, which is never deleted.
        const now = await store.head(key).catch(() => undefined);
        if (now !== undefined && now.metadata[METADATA_AGENT] !== this.options.agentId) {
          throw new AppError('conflict', `${key} was written by someone else during the upload`);
        }
        await store.delete(key).catch(() => undefined);
        await this.requireFileUnchanged(stat, plan.file, absolute);
        throw new AppError('integrity', `upload ${stat.name}/${plan.file.path}: ${problem}`);
      }
      plan.storedEtag = normalizeEtag(stored?.etag);
      if (known === undefined && sealed === undefined) this.rememberSentDigest(stat, plan, expected);
      return true;
    }, `upload ${key}`, signal);
  }

  /**
   * A file hashed while it was sent: what was read is the file as it was settled (same size, and
   * the snapshot's stat is checked again before the manifest), so its digest goes into the plan
   * and the cache like any other.
   */
  private rememberSentDigest(stat: SnapshotStat, plan: FilePlan, digest: FileDigest): void {
    if (digest.size !== plan.file.size) throw new AppError('snapshot_gone', `${stat.name}/${plan.file.path} changed size while being sent`);
    plan.digest = digest;
    const { hashCache, multipartThresholdBytes } = this.options;
    hashCache.update((doc) => storeDigest(doc, stat.name, plan.file, multipartThresholdBytes, digest));
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

  /** How an encrypted object of this file is recognised in the bucket; undefined without encryption. */
  private sealedIdentity(digest: FileDigest): { sizeBytes: number; contentTag: string } | undefined {
    const { encryption } = this.options;
    if (encryption === undefined) return undefined;
    return { sizeBytes: sealedLayout(digest.size, this.options.multipartThresholdBytes).sizeBytes, contentTag: encryption.contentTag(digest.sha256) };
  }

  /** Someone wrote the key between our HEAD and PUT: identical content is fine, anything else is a conflict. */
  private async resolveRace(stat: SnapshotStat, key: string, plan: FilePlan): Promise<boolean> {
    const head = await this.options.store.head(key);
    plan.digest ??= await this.digest(stat, plan.file);
    const sealed = this.sealedIdentity(plan.digest);
    if (sealed === undefined ? verifyStored(plan.digest, head) === undefined : sameEncryptedContent(sealed, head)) {
      plan.storedEtag = normalizeEtag(head?.etag);
      return false;
    }
    throw new AppError('conflict', `${key} was written by someone else during the upload`);
  }

  /** How a file of this snapshot is opened: it must be the one the scan saw, each operation under the deadline. */
  private opening(stat: SnapshotStat, file: FileStat): OpenOptions {
    const deadlineMs = this.options.localFileDeadlineMs ?? DEFAULT_FILE_DEADLINE_MS;
    return {
      expected: file,
      deadlineMs,
      refuseHardlinks: this.options.refuseHardlinks ?? false,
      onStuck: (absolutePath, operation) => this.options.log.error('local file operation did not finish in time; the snapshot fails', { snapshot: stat.name, file: absolutePath, operation, deadlineMs }),
    };
  }

  private async requireFileUnchanged(stat: SnapshotStat, file: FileStat, absolute: string): Promise<void> {
    try {
      const now = await lstat(absolute);
      if (now.size === file.size && now.mtimeMs === file.mtimeMs && now.ctimeMs === file.ctimeMs) return;
    } catch {
      // fall through: gone
    }
    throw new AppError('snapshot_gone', `${stat.name}/${file.path} changed or was removed during the upload`);
  }

  /**
   * Stores the signatures of the snapshot's large files next to where its manifest goes, for
   * agents without state of their own. Only a help for later uploads: a failure is logged, and an
   * object already there (an earlier attempt's, or another writer's) is left alone.
   */
  private async writeSignatures(name: string, manifest: Manifest, signal: AbortSignal, log: Logger): Promise<void> {
    const bundle = await this.delta?.bundleFor(manifest.files);
    if (bundle === undefined) return;
    const key = signaturesKey(name);
    try {
      await this.retrying(
        () => this.options.store.put(key, () => bundle, { sizeBytes: bundle.length, md5Hex: createHash('md5').update(bundle).digest('hex'), partSizeBytes: undefined, ifNoneMatch: true, metadata: { [METADATA_AGENT]: this.options.agentId }, signal, onProgress: undefined }),
        `put ${key}`,
        signal,
      );
    } catch (error) {
      if (isAppError(error, 'cancelled')) throw error;
      // Already there: an earlier attempt of this upload wrote it (the claim keeps other agents out).
      if (isAppError(error, 'conflict')) return;
      log.warn('cannot store the signatures of large files; their next versions can be composed only by this agent', { key, error: describeError(error) });
    }
  }

  /** Writes the manifest if the name is free; returns a conflict report when another manifest is there. */
  private async writeManifest(name: string, manifest: Manifest, signal: AbortSignal): Promise<StoredManifest | { conflict: ConflictReport }> {
    const key = this.codec.key(name);
    const bytes = this.codec.encode(manifest);
    const md5Hex = createHash('md5').update(bytes).digest('hex');
    const stored: StoredManifest = { manifestEtag: md5Hex, encrypted: this.codec.format === 'encrypted' };
    const honoured = this.options.conditionalWritesHonoured?.() === true;
    const existingHead = honoured ? undefined : await this.retrying(() => this.options.store.head(key), `head ${key}`, signal);
    if (existingHead === undefined) {
      try {
        await this.retrying(
          () => this.options.store.put(key, () => bytes, { sizeBytes: bytes.length, md5Hex, partSizeBytes: undefined, ifNoneMatch: true, metadata: { [METADATA_AGENT]: this.options.agentId }, signal, onProgress: undefined }),
          `upload ${key}`,
          signal,
        );
        return stored;
      } catch (error) {
        if (!isAppError(error, 'conflict')) throw error;
      }
    }
    const remote = await this.readRemoteManifest(name, manifest, signal);
    if (remote === undefined) return stored;
    if (remote.manifest === undefined) return { conflict: unreadableConflict(manifest, remote.unreadable) };
    if (decideSnapshot(manifest, remote.manifest) === 'already-remote') return { manifestEtag: remote.etag, encrypted: remote.format === 'encrypted' };
    return { conflict: manifestConflict(manifest, remote.manifest) };
  }

  /**
   * Removes what this upload wrote. A request cancelled in flight may have been stored by the
   * server all the same, so every key this upload meant to write is looked at: removed when
   * sent by this upload, or when it carries this agent's id (never someone else's object).
   */
  private async abandon(name: string, plans: readonly FilePlan[], created: readonly string[], log: Logger): Promise<void> {
    const { store, agentId } = this.options;
    const sent = new Set(created);
    let removed = 0;
    // The claim goes too (when it is this agent's): a name that is no longer being uploaded is free.
    const keys = [...plans.filter((plan) => plan.action.action === 'upload').map((plan) => fileKey(name, plan.file.path)), claimKey(name), signaturesKey(name)];
    for (const key of keys) {
      try {
        if (!sent.has(key) && (await store.head(key))?.metadata[METADATA_AGENT] !== agentId) continue;
        await store.delete(key);
        removed += 1;
      } catch (error) {
        log.warn('could not remove abandoned object', { key, error: describeError(error) });
      }
    }
    if (removed > 0) log.info('abandoned partial upload', { objectsRemoved: removed });
  }
}

interface FilePlan {
  file: FileStat;
  /** Undefined until its upload has read it: a file hashed on the way out (see streamedDigestFiles). */
  digest: FileDigest | undefined;
  action: FileAction;
  /** The ETag of the object this upload verified at its key (sent, or found identical). */
  storedEtag?: string;
}

type RemoteManifest = { etag: string; format: ManifestFormat } & ({ manifest: Manifest } | { manifest: undefined; unreadable: string });

/** The remote side cannot be compared (encrypted with another key, or no key configured): a conflict by name. */
function unreadableConflict(local: Manifest, reason: string): ConflictReport {
  return { localDigest: manifestDigest(local), remoteDigest: `unreadable: ${reason}`, files: [] };
}

function manifestConflict(local: Manifest, remote: Manifest): ConflictReport {
  return { localDigest: manifestDigest(local), remoteDigest: manifestDigest(remote), files: diffManifests(local, remote).slice(0, 50) };
}

function signaturesKey(name: string): string {
  return `${name}/${SIGNATURES_FILE_NAME}`;
}

function cancelledOr(error: unknown, signal: AbortSignal): AppError {
  if (signal.aborted && isAppError(signal.reason)) return signal.reason;
  if (isAppError(error)) return error;
  if (signal.aborted) return new AppError('cancelled', 'upload cancelled', { cause: error });
  return new AppError('local_io', describeError(error), { cause: error });
}

/** The file for a multipart upload, read part by part at its offsets; a file that ends early changed since it was settled. */
function fileBody(file: LocalFile, absolute: string): FileBody {
  return {
    kind: 'file',
    async read(target: Buffer, position: number): Promise<void> {
      for (let filled = 0; filled < target.length; ) {
        const bytesRead = await file.read(target, filled, target.length - filled, position + filled);
        if (bytesRead === 0) throw new AppError('snapshot_gone', `${absolute} ended at byte ${position + filled} while being sent`);
        filled += bytesRead;
      }
    },
  };
}

/**
 * A stream of the file's `sizeBytes` (as hashed) from an open handle; one per upload attempt. The handle outlives
 * the stream (closed by the caller), and a read error after the store gave up on the stream
 * must not become an unhandled 'error' event: the store reports failures through put().
 */
function readFrom(file: LocalFile, sizeBytes: number): Readable {
  // Cut at the hashed size: bytes appended since are not part of this snapshot (the final stat check catches the change).
  const stream = file.stream(sizeBytes);
  stream.on('error', () => undefined);
  return stream;
}
