import { AppError } from '../errors.js';
import { readBody } from '../remote/body.js';
import type { RemoteObject, RemoteStore } from '../remote/store.js';
import { normalizeEtag } from '../snapshot/digest.js';
import { isSafeRelativePath, MANIFEST_FILE_NAME, manifestKey, parseManifest, type Manifest, type SnapshotKind } from '../snapshot/manifest.js';
import type { ExpectedObject } from '../snapshot/object-check.js';

/**
 * What a restore will fetch: the files of one remote snapshot, with what each must match.
 * With memsync's manifest that is size and SHA-256; for snapshots written by other tools
 * (the service's own sync) it is the object's size and ETag. Keys from the bucket become
 * local paths, so every one is validated: a hostile bucket cannot write outside.
 */

export interface ExpectedFile extends ExpectedObject {
  path: string;
}

export interface RemoteSnapshotPlan {
  name: string;
  kind: SnapshotKind;
  manifest: Manifest | undefined;
  files: ExpectedFile[];
  totalBytes: number;
}

export async function planRemoteSnapshot(store: RemoteStore, name: string, signal?: AbortSignal): Promise<RemoteSnapshotPlan> {
  const objects = new Map<string, RemoteObject>();
  let manifestObject: RemoteObject | undefined;
  for await (const page of store.listObjects(`${name}/`)) {
    for (const object of page) {
      const relative = object.key.slice(name.length + 1);
      if (relative === MANIFEST_FILE_NAME) manifestObject = object;
      else if (!isSafeRelativePath(relative)) {
        throw new AppError('integrity', `remote snapshot ${name} holds an unsafe key ${JSON.stringify(object.key.slice(0, 120))}; refusing to restore it`, { retryable: false });
      } else objects.set(relative, object);
    }
  }
  if (manifestObject === undefined && objects.size === 0) throw new AppError('not_found', `no remote snapshot named ${name}`);

  if (manifestObject === undefined) {
    const files = [...objects.entries()].map(([path, o]) => ({ path, size: o.size, sha256: undefined, etag: normalizeEtag(o.etag) }));
    // A single object named like its snapshot is how memsync stores single-file snapshots.
    const kind: SnapshotKind = files.length === 1 && files[0]?.path === name ? 'file' : 'directory';
    return { name, kind, manifest: undefined, files, totalBytes: sum(files) };
  }

  const manifest = parseManifest(await readBody(await store.get(manifestKey(name), signal), manifestKey(name)), name);
  const files = manifest.files.map((file) => {
    const object = objects.get(file.path);
    if (object === undefined) {
      throw new AppError('integrity', `remote snapshot ${name} is missing ${file.path}, listed in its manifest`, { retryable: false, details: { snapshot: name, file: file.path } });
    }
    if (object.size !== file.size) {
      throw new AppError('integrity', `remote ${name}/${file.path} has ${object.size} bytes, its manifest says ${file.size}`, { retryable: false, details: { snapshot: name, file: file.path } });
    }
    return { path: file.path, size: file.size, sha256: file.sha256, etag: normalizeEtag(object.etag) };
  });
  return { name, kind: manifest.kind, manifest, files, totalBytes: sum(files) };
}

function sum(files: readonly { size: number }[]): number {
  return files.reduce((total, file) => total + file.size, 0);
}
