import { describeError, isAppError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ComposePartSpec, FileBody, RemoteStore } from '../remote/store.js';
import type { RetryPolicy } from '../retry.js';
import { retryingWith, type Retrying } from './requests.js';
import { ChunkGuide } from '../delta/chunk-guide.js';
import { Chunker, type Chunk } from '../delta/chunker.js';
import { DEFAULT_CHUNKER_PARAMS } from '../delta/chunker-params.js';
import { planComposition, type CompositionPlan } from '../delta/compose-plan.js';
import { splitAtPlainParts, type AlignedComposePart } from '../delta/plain-part-split.js';
import { createSignature, type Signature } from '../delta/signature.js';
import { serializeSignatureBundle, signatureBundleByteLimit, signatureFromBundle } from '../delta/signature-bundle.js';
import { readSmallObject } from '../remote/body.js';
import { SIGNATURES_FILE_NAME } from '../snapshot/reserved-names.js';
import { multipartEtag, normalizeEtag, type FileDigest } from '../snapshot/digest.js';
import { fileKey } from '../snapshot/manifest.js';
import type { SignatureStore } from '../state/signature-store.js';
import { copyFallback, type KnownSnapshot } from './copy-plan.js';
import { composePartSpecs, rangeMd5sOnThread, readRange, READ_BYTES, type RangeMd5s } from './delta-part-md5s.js';
import { KeptPartMd5s, type PlainPartMd5s } from './kept-part-md5s.js';
import { METADATA_AGENT, METADATA_SHA256 } from './plan.js';

/**
 * Delta uploads: a large file whose previous version is stored in a complete remote snapshot is
 * written as one plain object composed server-side, from ranges of that version copied by the
 * server and the changed bytes sent. Which ranges are shared comes from content-defined chunk
 * signatures (src/delta). The result is verified like a plain upload: every copied part's MD5
 * equals the MD5 of the same range of the local file, every sent part carries its Content-MD5,
 * and the finished object's ETag is the multipart ETag those MD5s predict. Copied runs are cut at
 * the file's plain part boundaries, so most copied parts are parts whose MD5 the digest pass
 * already took; the rest are read again while the server copies (on a thread), and only the
 * checks of its answers wait for them, all before the object is completed. Anything
 * in the way (no base, no signature, a base changed since, a server without ranged copies) makes
 * the caller upload the file whole, as before.
 */

/** Earlier versions of a file asked for a kept signature to guide its chunking: the newest few are what it grew from. */
const GUIDE_CANDIDATES = 3;

export interface DeltaOptions {
  store: RemoteStore;
  signatures: SignatureStore;
  /** Files smaller than this are always sent whole (CLOUD_SYNC_DELTA_MIN_MB). */
  minFileBytes: number;
  /** Manifests of the newest complete remote snapshots (the copier's cache). */
  knownSnapshots: (exclude: string, signal: AbortSignal) => Promise<KnownSnapshot[]>;
  agentId: string;
  retry: RetryPolicy;
  log: Logger;
  /** The local MD5s of copied parts that are no whole plain part; default rangeMd5sOnThread. */
  copiedPartMd5s?: RangeMd5s;
  /** Plain part MD5s of files digested in full in this process; default a KeptPartMd5s of its own. */
  keptPartMd5s?: KeptPartMd5s;
}

export interface NewFileVersion {
  /** The file's path inside its snapshot. */
  path: string;
  digest: FileDigest;
  body: FileBody;
}

export interface DeltaResult {
  /** Bytes of the local file sent to the store. */
  bytesSent: number;
  /** Bytes of the new object the server copied from the previous version. */
  bytesDelta: number;
  baseSnapshot: string;
  /** The composed object's ETag, as verified. */
  etag: string;
}

interface Base {
  snapshot: string;
  key: string;
  signature: Signature;
}

export class DeltaTransfer {
  private disabledReason: string | undefined;
  /** Snapshots whose signature bundle is missing or unusable, by manifest identity: asked once. */
  private readonly noBundle = new Set<string>();

  private readonly retrying: Retrying;
  private readonly keptPartMd5s: KeptPartMd5s;

  constructor(private readonly options: DeltaOptions) {
    this.retrying = retryingWith(options.retry, options.log, undefined);
    this.keptPartMd5s = options.keptPartMd5s ?? new KeptPartMd5s();
  }

  /** Whether a file of this size is worth asking about (no I/O): the uploader digests such files before sending them. */
  considers(sizeBytes: number): boolean {
    return this.disabledReason === undefined && sizeBytes >= this.options.minFileBytes;
  }

  /**
   * Keeps the signature of a file version chunked while it was digested, so a later version can be
   * composed from it, and (in memory) the MD5s of its plain parts, for its own composition.
   */
  async keep(chunks: readonly Chunk[], digest: FileDigest, partMd5s?: PlainPartMd5s): Promise<void> {
    if (partMd5s !== undefined) this.keptPartMd5s.keep(digest.sha256, digest.size, partMd5s);
    await this.options.signatures.put(createSignature(chunks, digest.size, digest.sha256));
  }

  /**
   * What guides the chunking of a new version of a file (see chunk-guide.ts): the chunks of the
   * first of its earlier `versions` whose signature is kept. Only the chunker's speed depends on it.
   */
  async guideFor(versions: readonly Pick<FileDigest, 'sha256' | 'size'>[]): Promise<ChunkGuide | undefined> {
    for (const version of versions.slice(0, GUIDE_CANDIDATES)) {
      const signature = await this.options.signatures.get(version.sha256, version.size);
      const guide = signature === undefined ? undefined : ChunkGuide.from(signature, DEFAULT_CHUNKER_PARAMS);
      if (guide !== undefined) return guide;
    }
    return undefined;
  }

  /** Whether the signature of this content is kept (a file holding it then needs no chunking). */
  async keeps(digest: FileDigest): Promise<boolean> {
    return (await this.options.signatures.get(digest.sha256, digest.size)) !== undefined;
  }

  /**
   * Writes `targetKey` by composition; undefined when the file must be sent whole instead
   * (logged with the reason). Failures that are not about composing (store unreachable after
   * retries, cancelled) are thrown as they are.
   */
  async compose(snapshot: string, targetKey: string, local: NewFileVersion, signal: AbortSignal, log: Logger): Promise<DeltaResult | undefined> {
    if (!this.considers(local.digest.size)) return undefined;
    const base = await this.baseFor(snapshot, local, signal);
    if (base === undefined) return undefined;
    const mine = (await this.options.signatures.get(local.digest.sha256, local.digest.size)) ?? (await this.signatureOf(local, base.signature));
    const plan = planComposition(mine.chunks, local.digest.size, base.signature);
    if (!plan.worthComposing) {
      log.debug('delta upload not worth it; sending the file whole', { file: local.path, base: base.snapshot, bytesCopied: plan.bytesCopied });
      return undefined;
    }
    const head = await this.retrying(() => this.options.store.head(base.key), `head ${base.key}`, signal);
    if (head === undefined || head.size !== base.signature.size) {
      log.info('previous version of the file is gone or changed; sending it whole', { file: local.path, base: base.key });
      return undefined;
    }
    // Stops the local MD5s still being taken once the composition is over, whichever way it ended.
    const md5sDone = new AbortController();
    const kept = this.keptPartMd5s.get(local.digest.sha256, local.digest.size);
    let parts: ComposePartSpec[];
    let reusedMd5s: number;
    try {
      ({ specs: parts, reusedMd5s } = await composePartSpecs(partsOf(plan, kept, local.digest.size), {
        body: local.body,
        kept,
        copiedPartMd5s: this.options.copiedPartMd5s ?? rangeMd5sOnThread,
        stop: AbortSignal.any([signal, md5sDone.signal]),
      }));
      await this.composeParts(targetKey, base, head.etag, parts, local, signal);
    } catch (error) {
      md5sDone.abort();
      if (!isAppError(error)) throw error;
      const fallback = isAppError(error, 'integrity') ? { reason: 'a copied range differs from the local file', scope: 'file' as const } : copyFallback(error);
      if (fallback === undefined) throw error;
      if (fallback.scope === 'all') this.disabledReason = fallback.reason;
      log.warn('delta upload not possible; sending the file whole', { file: local.path, base: base.key, reason: fallback.reason, error: describeError(error), ...(fallback.scope === 'all' ? { deltaDisabled: true } : {}) });
      return undefined;
    }
    md5sDone.abort();
    // Settled: the composition completed only after every copied part was checked against its MD5.
    const expectedEtag = multipartEtag((await Promise.all(parts.map((part) => part.md5Hex))).map((md5Hex) => Buffer.from(md5Hex, 'hex')));
    const stored = await this.retrying(() => this.options.store.head(targetKey), `head ${targetKey}`, signal);
    const problem =
      stored === undefined
        ? 'object missing after composition'
        : stored.size !== local.digest.size
          ? `composed ${stored.size} bytes, expected ${local.digest.size}`
          : normalizeEtag(stored.etag) !== expectedEtag
            ? `composed ETag ${normalizeEtag(stored.etag) || '(empty)'}, expected ${expectedEtag}`
            : undefined;
    if (problem !== undefined) {
      // The key was free (or held this agent's unfinished object) before: removing it loses nothing.
      await this.options.store.delete(targetKey).catch(() => undefined);
      log.warn('composed object did not verify; sending the file whole', { file: local.path, base: base.key, problem });
      return undefined;
    }
    await this.options.signatures.noteComposedEtag(local.digest.sha256, expectedEtag);
    log.info('file composed from its previous version', { file: local.path, base: base.snapshot, bytesSent: plan.bytesSent, bytesDelta: plan.bytesCopied, parts: parts.length, partMd5sReused: reusedMd5s });
    return { bytesSent: plan.bytesSent, bytesDelta: plan.bytesCopied, baseSnapshot: base.snapshot, etag: expectedEtag };
  }

  private composeParts(targetKey: string, base: Base, sourceEtag: string, parts: ComposePartSpec[], local: NewFileVersion, signal: AbortSignal): Promise<void> {
    const compose = (): Promise<void> =>
      this.options.store.compose(targetKey, {
        sourceKey: base.key,
        sourceEtag,
        parts,
        body: local.body,
        metadata: { [METADATA_AGENT]: this.options.agentId, [METADATA_SHA256]: local.digest.sha256 },
        signal,
        partRetry: this.retrying.inParts,
      });
    return this.retrying(compose, `compose ${targetKey}`, signal);
  }

  /**
   * The previous version: the same path in the newest complete remote snapshot memsync knows the
   * manifest of, with different content and a signature kept for that content.
   */
  private async baseFor(snapshot: string, local: NewFileVersion, signal: AbortSignal): Promise<Base | undefined> {
    const known = await this.options.knownSnapshots(snapshot, signal);
    const newestFirst = [...known].sort((a, b) => b.timeMs - a.timeMs);
    for (const candidate of newestFirst) {
      const entry = candidate.manifest.files.find((file) => file.path === local.path);
      if (entry === undefined || entry.sha256 === local.digest.sha256 || entry.size < this.options.minFileBytes) continue;
      const signature = (await this.options.signatures.get(entry.sha256, entry.size)) ?? (await this.signatureFromBucket(candidate, entry, signal));
      if (signature === undefined) continue;
      return { snapshot: candidate.name, key: fileKey(candidate.name, entry.path), signature };
    }
    return undefined;
  }

  /** The bundle of signatures of a snapshot's large files, to store next to its manifest; undefined when it has none. */
  async bundleFor(files: readonly { path: string; size: number; sha256: string }[]): Promise<Buffer | undefined> {
    const signatures = new Map<string, Signature>();
    for (const file of files) {
      if (file.size < this.options.minFileBytes) continue;
      const signature = await this.options.signatures.get(file.sha256, file.size);
      if (signature !== undefined) signatures.set(file.path, signature);
    }
    return signatures.size === 0 ? undefined : serializeSignatureBundle(signatures);
  }

  /**
   * The base's signature from the bundle stored next to its manifest: what an agent with no state
   * of its own (a new machine) composes from. Kept locally once read; a missing or foreign bundle
   * only means the file is sent whole.
   */
  private async signatureFromBucket(snapshot: KnownSnapshot, entry: { path: string; size: number; sha256: string }, signal: AbortSignal): Promise<Signature | undefined> {
    const identity = `${snapshot.name}\n${snapshot.manifest.files.length}`;
    if (this.noBundle.has(identity)) return undefined;
    const sizes = snapshot.manifest.files.filter((file) => file.size >= this.options.minFileBytes).map((file) => file.size);
    try {
      const bytes = await readSmallObject(this.options.store, `${snapshot.name}/${SIGNATURES_FILE_NAME}`, signatureBundleByteLimit(sizes), { signal });
      const signature = signatureFromBundle(bytes, entry.path, entry);
      if (signature !== undefined) await this.options.signatures.put(signature);
      return signature;
    } catch (error) {
      if (isAppError(error, 'cancelled')) throw error;
      if (!isAppError(error, 'not_found')) this.options.log.warn('signatures stored with a snapshot are unusable; its files are not delta bases', { snapshot: snapshot.name, error: describeError(error) });
      this.noBundle.add(identity);
      return undefined;
    }
  }

  /** Chunks a local file read again (its digest came from the cache, without chunks), guided by the base's chunks. */
  private async signatureOf(local: NewFileVersion, base: Signature): Promise<Signature> {
    const chunker = new Chunker(DEFAULT_CHUNKER_PARAMS, ChunkGuide.from(base, DEFAULT_CHUNKER_PARAMS));
    const chunks: Chunk[] = [];
    await readRange(local.body, 0, local.digest.size, Buffer.allocUnsafe(READ_BYTES), (bytes) => void chunks.push(...chunker.push(bytes)));
    chunks.push(...chunker.finish());
    const signature = createSignature(chunks, local.digest.size, local.digest.sha256);
    await this.options.signatures.put(signature);
    return signature;
  }
}

/** The plan's parts, its copied runs cut at the plain layout's parts when their MD5s are kept (and S3's rules allow). */
function partsOf(plan: CompositionPlan, kept: PlainPartMd5s | undefined, sizeBytes: number): AlignedComposePart[] {
  const split = kept === undefined ? undefined : splitAtPlainParts(plan, { sizeBytes, partSizeBytes: kept.partSizeBytes });
  return split ?? plan.parts.map((part) => (part.kind === 'copy' ? { ...part, plainPartIndex: undefined } : part));
}
