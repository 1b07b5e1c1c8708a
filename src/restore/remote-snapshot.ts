import { AppError } from '../errors.js';
import { readSmallObject } from '../remote/body.js';
import type { RemoteObject, RemoteStore } from '../remote/store.js';
import { normalizeEtag } from '../snapshot/digest.js';
import { filePathProblem } from '../snapshot/file-path-rule.js';
import { isBookkeepingName } from '../snapshot/reserved-names.js';
import { requireRestorableFiles, type Manifest, type SnapshotKind } from '../snapshot/manifest.js';
import { decodeManifest, manifestFormatOf, manifestKeyFor, type ManifestFormat } from '../snapshot/manifest-codec.js';
import { manifestByteLimit } from '../snapshot/manifest-limits.js';
import { encryptedSize } from '../crypto/format.js';
import type { Keyring } from '../crypto/keys.js';
import type { ExpectedObject } from '../snapshot/object-check.js';

/**
 * What a restore will fetch: the files of one remote snapshot, with what each must match.
 * With memsync's manifest that is size and SHA-256; for snapshots written by other tools
 * (the service's own sync) it is the object's size and ETag. Keys from the bucket become
 * local paths, so every one is validated: a hostile bucket cannot write outside.
 */

export interface ExpectedFile extends ExpectedObject {
  path: string;
  /** Stored encrypted: decrypted on the way in, then checked as plaintext against the manifest. */
  encrypted: boolean;
}

export interface RemoteSnapshotPlan {
  name: string;
  kind: SnapshotKind;
  manifest: Manifest | undefined;
  encrypted: boolean;
  files: ExpectedFile[];
  totalBytes: number;
}

/**
 * @param keyring the configured key, for encrypted snapshots; their manifest is read (and the
 * key checked) here, before any file is fetched.
 */
export async function planRemoteSnapshot(store: RemoteStore, name: string, signal?: AbortSignal, keyring?: Keyring): Promise<RemoteSnapshotPlan> {
  const objects = new Map<string, RemoteObject>();
  let manifestFormat: ManifestFormat | undefined;
  const manifestSizes = new Map<ManifestFormat, number>();
  for await (const page of store.listObjects(`${name}/`)) {
    for (const object of page) {
      const relative = object.key.slice(name.length + 1);
      const format = manifestFormatOf(relative);
      // Both formats for one name never come from memsync (it checks both before writing); prefer the plain one.
      if (format !== undefined) {
        manifestFormat = manifestFormat === 'plain' ? 'plain' : format;
        manifestSizes.set(format, object.size);
      }
      else if (isBookkeepingName(relative)) continue;
      else {
        const problem = filePathProblem(relative);
        if (problem !== undefined) {
          throw new AppError('integrity', `remote snapshot ${name} holds a key no file can be restored from: ${JSON.stringify(object.key.slice(0, 120))} (its path ${problem}); refusing to restore it`, {
            retryable: false,
            details: { snapshot: name, file: relative.slice(0, 120), problem },
          });
        }
        objects.set(relative, object);
      }
    }
  }
  if (manifestFormat === undefined && objects.size === 0) throw new AppError('not_found', `no remote snapshot named ${name}`);

  if (manifestFormat === undefined) {
    const files = [...objects.entries()].map(([path, o]) => ({ path, size: o.size, sha256: undefined, etag: normalizeEtag(o.etag), encrypted: false }));
    // A single object named like its snapshot is how memsync stores single-file snapshots.
    const kind: SnapshotKind = files.length === 1 && files[0]?.path === name ? 'file' : 'directory';
    // Keys are distinct, but `a` and `a/b` cannot both be written back.
    requireRestorableFiles(name, kind, files.map((file) => file.path));
    return { name, kind, manifest: undefined, encrypted: false, files, totalBytes: sum(files) };
  }

  const key = manifestKeyFor(name, manifestFormat);
  // A manifest lists only files its snapshot holds: the listing bounds it before anything is read.
  const bytes = await readSmallObject(store, key, manifestByteLimit(manifestFormat, objects.size), { signal, listedSizeBytes: manifestSizes.get(manifestFormat) });
  const manifest = await decodeManifest(bytes, manifestFormat, name, keyring);
  const encrypted = manifestFormat === 'encrypted';
  const files = manifest.files.map((file) => {
    const object = objects.get(file.path);
    if (object === undefined) {
      throw new AppError('integrity', `remote snapshot ${name} is missing ${file.path}, listed in its manifest`, { retryable: false, details: { snapshot: name, file: file.path } });
    }
    const storedSize = encrypted ? encryptedSize(file.size) : file.size;
    if (object.size !== storedSize) {
      const says = encrypted ? `${storedSize} (${file.size} bytes encrypted)` : String(file.size);
      throw new AppError('integrity', `remote ${name}/${file.path} has ${object.size} bytes, its manifest says ${says}`, { retryable: false, details: { snapshot: name, file: file.path } });
    }
    return { path: file.path, size: file.size, sha256: file.sha256, etag: normalizeEtag(object.etag), encrypted };
  });
  return { name, kind: manifest.kind, manifest, encrypted, files, totalBytes: sum(files) };
}

function sum(files: readonly { size: number }[]): number {
  return files.reduce((total, file) => total + file.size, 0);
}
