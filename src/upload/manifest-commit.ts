import { createHash } from 'node:crypto';
import type { Encryption } from '../crypto/encryption.js';
import { describeError, isAppError } from '../errors.js';
import type { Logger } from '../log.js';
import { readSmallObject } from '../remote/body.js';
import type { RemoteObject, RemoteStore } from '../remote/store.js';
import { normalizeEtag, producesEtag } from '../snapshot/digest.js';
import { diffManifests, fileKey, manifestDigest, type FileDifference, type Manifest } from '../snapshot/manifest.js';
import { decodeManifest, manifestKeyFor, type ManifestCodec, type ManifestFormat } from '../snapshot/manifest-codec.js';
import { manifestByteLimit } from '../snapshot/manifest-limits.js';
import { SIGNATURES_FILE_NAME } from '../snapshot/reserved-names.js';
import type { DeltaTransfer } from './delta-transfer.js';
import { listSnapshot, type FilePlan } from './file-plans.js';
import { decideSnapshot } from './plan.js';
import { putIfAbsent, type Retrying } from './requests.js';

/**
 * The manifest side of a snapshot upload: reading the one a name already has, comparing it with
 * ours, and writing ours last (after the signatures of its large files), only if the name is free.
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

type RemoteManifest = { etag: string; format: ManifestFormat } & ({ manifest: Manifest } | { manifest: undefined; unreadable: string });

export interface ManifestCommitOptions {
  store: RemoteStore;
  codec: ManifestCodec;
  encryption: Encryption | undefined;
  agentId: string;
  /** See UploaderOptions.conditionalWritesHonoured. */
  conditionalWritesHonoured: (() => boolean) | undefined;
  delta: DeltaTransfer | undefined;
  retrying: Retrying;
}

export class ManifestCommit {
  constructor(private readonly options: ManifestCommitOptions) {}

  /** Whether a complete snapshot of this name holds our content; `listed` is the snapshot's listing. */
  async compareWithRemote(name: string, local: Manifest, signal: AbortSignal, listed: Map<string, RemoteObject>): Promise<StoredManifest | { conflict: ConflictReport }> {
    const remote = await this.readRemoteManifest(name, local, signal, listed);
    if (remote === undefined) return { conflict: unreadableConflict(local, 'manifest vanished while being read') };
    return compared(local, remote);
  }

  /**
   * Paths whose object is no longer the one this upload verified. A server that ignores
   * If-None-Match on multipart completion (Ceph RGW 16) lets a second writer of the same name
   * replace an object between our check and our manifest: one listing before the manifest
   * catches that, and such a snapshot is a conflict, never written as complete.
   */
  async replacedDuringUpload(name: string, plans: readonly FilePlan[], signal: AbortSignal): Promise<string[]> {
    const listed = await this.options.retrying(() => listSnapshot(this.options.store, name), `list ${name}/`, signal);
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
   * Stores the signatures of the snapshot's large files next to where its manifest goes, for
   * agents without state of their own. Only a help for later uploads: a failure is logged, and an
   * object already there (an earlier attempt's, or another writer's) is left alone.
   */
  async writeSignatures(name: string, manifest: Manifest, signal: AbortSignal, log: Logger): Promise<void> {
    const bundle = await this.options.delta?.bundleFor(manifest.files);
    if (bundle === undefined) return;
    const key = signaturesKey(name);
    try {
      await this.options.retrying(() => putIfAbsent(this.options.store, key, bundle, md5Of(bundle), this.options.agentId, signal), `put ${key}`, signal);
    } catch (error) {
      if (isAppError(error, 'cancelled')) throw error;
      // Already there: an earlier attempt of this upload wrote it (the claim keeps other agents out).
      if (isAppError(error, 'conflict')) return;
      log.warn('cannot store the signatures of large files; their next versions can be composed only by this agent', { key, error: describeError(error) });
    }
  }

  /** Writes the manifest if the name is free; returns a conflict report when another manifest is there. */
  async writeManifest(name: string, manifest: Manifest, signal: AbortSignal): Promise<StoredManifest | { conflict: ConflictReport }> {
    const { store, codec, retrying } = this.options;
    const key = codec.key(name);
    const bytes = codec.encode(manifest);
    const md5Hex = md5Of(bytes);
    const stored: StoredManifest = { manifestEtag: md5Hex, encrypted: codec.format === 'encrypted' };
    await this.requireLocked(name, manifest, signal);
    const honoured = this.options.conditionalWritesHonoured?.() === true;
    const existingHead = honoured ? undefined : await retrying(() => store.head(key), `head ${key}`, signal);
    if (existingHead === undefined) {
      try {
        await retrying(() => putIfAbsent(store, key, bytes, md5Hex, this.options.agentId, signal), `upload ${key}`, signal);
        return stored;
      } catch (error) {
        if (!isAppError(error, 'conflict')) throw error;
      }
    }
    const remote = await this.readRemoteManifest(name, manifest, signal);
    if (remote === undefined) return stored;
    return compared(manifest, remote);
  }

  /**
   * With Object Lock, a manifest is written only over locked files. An object can reach this point
   * unlocked: one stored by an earlier attempt whose lock the server dropped and whose locking then
   * failed, found again and kept by this one. Such an object is locked now, or the upload fails.
   */
  private async requireLocked(name: string, manifest: Manifest, signal: AbortSignal): Promise<void> {
    const { store, retrying } = this.options;
    if (store.ensureLocked === undefined) return;
    for (const file of manifest.files) {
      const key = fileKey(name, file.path);
      await retrying(() => store.ensureLocked?.(key, signal) ?? Promise.resolve(), `lock ${key}`, signal);
    }
  }

  /**
   * The snapshot's remote manifest in either format (this agent's first), skipping the GET when
   * its ETag proves it is byte-identical to ours. One that cannot be read with the configured
   * key (encrypted with another key, or none configured) is returned as unreadable: the name
   * is taken by content memsync cannot compare, which is a conflict, never an overwrite.
   */
  private async readRemoteManifest(name: string, local: Manifest, signal: AbortSignal, listed?: Map<string, RemoteObject>): Promise<RemoteManifest | undefined> {
    const { store, codec, retrying } = this.options;
    const formats: ManifestFormat[] = codec.format === 'plain' ? ['plain', 'encrypted'] : ['encrypted', 'plain'];
    for (const format of formats) {
      const key = manifestKeyFor(name, format);
      const found = listed === undefined ? await retrying(() => store.head(key), `head ${key}`, signal) : listed.get(key);
      if (found === undefined) continue;
      const etag = normalizeEtag(found.etag);
      if (format === codec.format && etag === codec.etag(local)) return { manifest: local, etag, format };
      const bytes = await retrying(() => readSmallObject(store, key, manifestByteLimit(format), { signal, listedSizeBytes: found.size }), `download ${key}`, signal);
      try {
        return { manifest: await decodeManifest(bytes, format, name, this.options.encryption?.keyring), etag, format };
      } catch (error) {
        if (!isAppError(error, 'encryption_key')) throw error;
        return { manifest: undefined, unreadable: error.message, etag, format };
      }
    }
    return undefined;
  }
}

export function signaturesKey(name: string): string {
  return `${name}/${SIGNATURES_FILE_NAME}`;
}

/** Our manifest against the one the name has: the same content is that one, stored; anything else a conflict. */
function compared(local: Manifest, remote: RemoteManifest): StoredManifest | { conflict: ConflictReport } {
  if (remote.manifest === undefined) return { conflict: unreadableConflict(local, remote.unreadable) };
  if (decideSnapshot(local, remote.manifest) === 'already-remote') return { manifestEtag: remote.etag, encrypted: remote.format === 'encrypted' };
  return { conflict: manifestConflict(local, remote.manifest) };
}

/** Keys of the snapshot hold other content while its name has no manifest: an incomplete remote snapshot is in the way. */
export function incompleteConflict(local: Manifest, conflicts: readonly FilePlan[]): ConflictReport {
  return {
    localDigest: manifestDigest(local),
    remoteDigest: 'no manifest (incomplete remote snapshot)',
    files: conflicts.map((c) => ({ path: c.file.path, local: { size: c.file.size, sha256: c.digest?.sha256 ?? '' }, remote: undefined })),
  };
}

/** Objects of the snapshot replaced by another writer during the upload (see replacedDuringUpload). */
export function replacedConflict(local: Manifest, paths: readonly string[]): ConflictReport {
  return { localDigest: manifestDigest(local), remoteDigest: 'objects replaced by another writer during the upload', files: paths.map((path) => ({ path, local: undefined, remote: undefined })) };
}

/** The remote side cannot be compared (encrypted with another key, or no key configured): a conflict by name. */
function unreadableConflict(local: Manifest, reason: string): ConflictReport {
  return { localDigest: manifestDigest(local), remoteDigest: `unreadable: ${reason}`, files: [] };
}

function manifestConflict(local: Manifest, remote: Manifest): ConflictReport {
  return { localDigest: manifestDigest(local), remoteDigest: manifestDigest(remote), files: diffManifests(local, remote).slice(0, 50) };
}

function md5Of(bytes: Buffer): string {
  return createHash('md5').update(bytes).digest('hex');
}
