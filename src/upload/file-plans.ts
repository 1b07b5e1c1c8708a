import type { Encryption } from '../crypto/encryption.js';
import { sha256OfBody } from '../remote/body.js';
import { listAllObjects } from '../remote/remote-index.js';
import type { RemoteObject, RemoteStore } from '../remote/store.js';
import { normalizeEtag, usesMultipart, type FileDigest } from '../snapshot/digest.js';
import { fileKey } from '../snapshot/manifest.js';
import type { FileStat, SnapshotStat } from '../snapshot/scan.js';
import type { DeltaTransfer } from './delta-transfer.js';
import { planEncryptedFile, planFile, type FileAction } from './plan.js';
import type { Retrying } from './requests.js';
import type { ServerSideCopier } from './server-side-copy.js';
import type { SnapshotFiles } from './snapshot-files.js';
import { sealedIdentity } from './upload-body.js';

/** What to do with each file of a snapshot whose name has no manifest yet, from its digest and what its key holds. */

export interface FilePlan {
  file: FileStat;
  /** Undefined until its upload has read it: a file hashed on the way out (see streamedDigestFiles). */
  digest: FileDigest | undefined;
  action: FileAction;
  /** The ETag of the object this upload verified at its key (sent, or found identical). */
  storedEtag?: string;
}

export interface FilePlannerOptions {
  store: RemoteStore;
  files: SnapshotFiles;
  agentId: string;
  multipartThresholdBytes: number;
  encryption: Encryption | undefined;
  copier: ServerSideCopier | undefined;
  delta: DeltaTransfer | undefined;
  retrying: Retrying;
  /** False where the store's ETags are no MD5s of the content (SSE-KMS): an object is then compared by reading it. */
  etagsAreDigests: boolean;
}

/** The snapshot's objects by key (relative to the prefix), from one paginated listing. */
export async function listSnapshot(store: RemoteStore, name: string): Promise<Map<string, RemoteObject>> {
  return new Map((await listAllObjects(store, `${name}/`)).map((object) => [object.key, object]));
}

export class FilePlanner {
  constructor(private readonly options: FilePlannerOptions) {}

  /** Digests the files (except those hashed on the way out), checks the snapshot is still as settled, and plans each file. */
  async plan(stat: SnapshotStat, listed: Map<string, RemoteObject>, signal: AbortSignal): Promise<FilePlan[]> {
    const { files } = this.options;
    // Large files with nothing at their key and no cached digest are hashed while they are sent:
    // read once instead of twice. The rest is digested now (see streamedDigestFiles).
    const streamed = await this.streamedDigestFiles(stat, listed, signal);
    const digests = new Map<string, FileDigest>();
    for (const file of stat.files) if (!streamed.has(file.path)) digests.set(file.path, await files.digest(stat, file));
    await files.requireUnchanged(stat);
    return this.planFiles(stat, digests, signal, listed);
  }

  /**
   * Files hashed while they are sent instead of in a pass of their own: large ones (multipart),
   * with nothing at their key and no cached digest. Not with encryption (the object carries a
   * tag of the SHA-256 from its first byte), nor where an earlier snapshot holds a file of the
   * same size (a server-side copy is decided on the SHA-256, before anything is sent).
   */
  private async streamedDigestFiles(stat: SnapshotStat, listed: ReadonlyMap<string, RemoteObject>, signal: AbortSignal): Promise<Set<string>> {
    const { files, multipartThresholdBytes, encryption, copier, delta } = this.options;
    if (encryption !== undefined) return new Set();
    // A file that may be composed from its previous version needs its chunks before anything is sent.
    const candidates = stat.files.filter(
      (file) => usesMultipart(file.size, multipartThresholdBytes) && delta?.considers(file.size) !== true && !listed.has(fileKey(stat.name, file.path)) && !files.cached(stat, file),
    );
    if (candidates.length === 0) return new Set();
    const copyable = copier === undefined ? new Set<number>() : await copier.sourceSizes(stat.name, signal);
    return new Set(candidates.filter((file) => !copyable.has(file.size)).map((file) => file.path));
  }

  private async planFiles(stat: SnapshotStat, digests: Map<string, FileDigest>, signal: AbortSignal, listed: Map<string, RemoteObject>): Promise<FilePlan[]> {
    const { store, retrying, agentId } = this.options;
    return Promise.all(
      stat.files.map(async (file): Promise<FilePlan> => {
        const key = fileKey(stat.name, file.path);
        // Only a listed object needs a HEAD: its metadata says who wrote it.
        const head = listed.has(key) ? await retrying(() => store.head(key), `head ${key}`, signal) : undefined;
        if (head === undefined) return { file, digest: digests.get(file.path), action: { action: 'upload', replace: false } };
        const storedEtag = normalizeEtag(head.etag);
        // Listed files are never left to be hashed on the way out; this only covers a listing that changed since.
        const digest = digests.get(file.path) ?? (await this.options.files.digest(stat, file));
        const sealed = sealedIdentity(this.options.encryption, digest, this.options.multipartThresholdBytes);
        if (sealed !== undefined) return { file, digest, action: planEncryptedFile(sealed, head, agentId), storedEtag };
        let action = planFile(digest, head, agentId, this.options.etagsAreDigests);
        if (action.action === 'verify-remote') {
          const remoteSha256 = await retrying(async () => sha256OfBody(await store.get(key, signal), key), `verify ${key}`, signal);
          action = remoteSha256 === digest.sha256 ? { action: 'skip' } : { action: 'conflict', reason: `remote SHA-256 ${remoteSha256} differs` };
        }
        return { file, digest, action, storedEtag };
      }),
    );
  }
}
