import type { FileHandle } from 'node:fs/promises';
import { link, lstat, mkdir, open, rename, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../errors.js';
import { errnoOf, isMissing, translateFsError } from './fs-errors.js';
import { pathOf, sidecarName, splitKey, temporaryName } from './fs-layout.js';
import { identityOf, serializeSidecar, type ObjectIdentity, type ObjectRecord } from './fs-sidecar.js';

/**
 * How the directory store writes an object so that no reader ever sees a partial one and a crash
 * leaves none: the bytes go to a temporary name in the object's own directory (one file system,
 * so the final step is a link or a rename), are fsynced, then put in place, and the directory is
 * fsynced so the name survives a power loss too. "Never replace" is link(2), which fails with
 * EEXIST when the name is taken, where a rename would silently replace.
 */

/** A directory that vanished between mkdir and open (a concurrent delete pruned it) is made again this often. */
const CREATE_ATTEMPTS = 3;

export interface StoreRoot {
  /** The configured directory (CLOUD_SYNC_BUCKET): it must exist; memsync never creates it. */
  base: string;
  /** base plus the prefix: where keys start. Created as needed. */
  root: string;
}

/** An object being written: a temporary file beside where it will be. */
export class TempObject {
  private position = 0;
  private closed = false;

  private constructor(
    readonly dirPath: string,
    readonly base: string,
    readonly tempPath: string,
    private readonly handle: FileHandle,
  ) {}

  /** Creates the temporary file (and the key's directories); `what` names the operation in errors. */
  static async create(where: StoreRoot, key: string, what: string): Promise<TempObject> {
    const { dirKey, base } = splitKey(key);
    const dirPath = pathOf(where.root, dirKey);
    const tempPath = path.join(dirPath, temporaryName(base));
    for (let attempt = 1; ; attempt += 1) {
      try {
        return new TempObject(dirPath, base, tempPath, await open(tempPath, 'wx+'));
      } catch (error) {
        if (errnoOf(error) !== 'ENOENT' || attempt >= CREATE_ATTEMPTS) throw translateFsError(error, what, 'remote_unavailable');
      }
      await makeDirectories(where, dirPath, what);
    }
  }

  get bytesWritten(): number {
    return this.position;
  }

  /** Appends `bytes`. */
  async write(bytes: Buffer): Promise<void> {
    for (let written = 0; written < bytes.length; ) {
      const { bytesWritten } = await this.handle.write(bytes, written, bytes.length - written, this.position);
      written += bytesWritten;
      this.position += bytesWritten;
    }
  }

  /** The open file, for a copy that fills it by other means (copyFile) and a read of it back. */
  get file(): FileHandle {
    return this.handle;
  }

  /** Flushes the bytes to stable storage and closes the file; returns its identity for the sidecar. */
  async finish(): Promise<ObjectIdentity> {
    await this.handle.sync();
    const identity = identityOf(await this.handle.stat({ bigint: true }));
    await this.close();
    return identity;
  }

  /** Removes the temporary file: nothing of this write is left. */
  async discard(): Promise<void> {
    await this.close().catch(() => undefined);
    await unlink(this.tempPath).catch(() => undefined);
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}

/**
 * Puts a finished temporary object in place with its sidecar. 'create' never replaces an
 * existing name (conflict); 'replace' does, as an S3 PUT without a condition does.
 */
export async function placeObject(temp: TempObject, identity: ObjectIdentity, record: ObjectRecord, mode: 'create' | 'replace', what: string): Promise<void> {
  const target = path.join(temp.dirPath, temp.base);
  const sidecar = path.join(temp.dirPath, sidecarName(temp.base));
  const sidecarTemp = path.join(temp.dirPath, temporaryName(sidecarName(temp.base)));
  try {
    const handle = await open(sidecarTemp, 'wx');
    try {
      await handle.writeFile(serializeSidecar(identity, record));
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (mode === 'create') {
      try {
        await link(temp.tempPath, target);
      } catch (error) {
        if (errnoOf(error) === 'EEXIST') throw new AppError('conflict', `${what}: the key exists and is never replaced (PreconditionFailed)`, { cause: error, details: { code: 'PreconditionFailed' } });
        throw error;
      }
      await unlink(temp.tempPath);
    } else {
      // The old sidecar goes first: for a moment the object then has none (its bytes answer for
      // it), never one that describes other bytes.
      await unlink(sidecar).catch((error: unknown) => {
        if (!isMissing(error)) throw error;
      });
      await rename(temp.tempPath, target);
    }
    await rename(sidecarTemp, sidecar);
    await syncDirectory(temp.dirPath);
  } catch (error) {
    await unlink(sidecarTemp).catch(() => undefined);
    throw translateFsError(error, what, 'remote_unavailable');
  }
}

/** Removes an object and its sidecar (the sidecar first: an object never has one describing other bytes). Missing is fine. */
export async function removeObject(where: StoreRoot, key: string, what: string): Promise<void> {
  const { dirKey, base } = splitKey(key);
  const dirPath = pathOf(where.root, dirKey);
  try {
    for (const name of [sidecarName(base), base]) {
      await unlink(path.join(dirPath, name)).catch((error: unknown) => {
        // EISDIR/EPERM on a directory: no object has that key.
        const code = errnoOf(error);
        if (!isMissing(error) && !((code === 'EISDIR' || code === 'EPERM') && name === base)) throw error;
      });
    }
    await syncDirectory(dirPath).catch((error: unknown) => {
      if (!isMissing(error)) throw error;
    });
  } catch (error) {
    throw translateFsError(error, what);
  }
  await removeEmptyDirectories(where, dirPath);
}

/**
 * Removes `dirPath` and its parents up to (not including) the root while they are empty, as a
 * bucket has no folders once their keys are gone. A writer that just made one of them makes it
 * again (TempObject.create); a directory that is not empty simply stays.
 */
export async function removeEmptyDirectories(where: StoreRoot, dirPath: string): Promise<void> {
  for (let dir = dirPath; isStrictlyInside(dir, where.root); dir = path.dirname(dir)) {
    try {
      await rmdir(dir);
    } catch {
      return;
    }
  }
}

/** mkdir -p of a key's directory under the root, each new directory fsynced into its parent. */
async function makeDirectories(where: StoreRoot, dirPath: string, what: string): Promise<void> {
  try {
    // Never the configured directory itself: missing, it is an unmounted share, not a place to write.
    const base = await lstat(where.base).catch(() => undefined);
    if (base?.isDirectory() !== true) {
      throw new AppError('remote_unavailable', `${what}: the directory ${where.base} is gone (unmounted?)`, { hint: 'mount it again or fix CLOUD_SYNC_BUCKET' });
    }
    const first = await mkdir(dirPath, { recursive: true });
    if (first === undefined) return;
    for (let dir = dirPath; ; dir = path.dirname(dir)) {
      await syncDirectory(path.dirname(dir));
      if (dir === first || dir === path.dirname(dir)) break;
    }
  } catch (error) {
    throw translateFsError(error, what, 'remote_unavailable');
  }
}

/**
 * fsync of a directory, so a new or removed name survives a power loss. Some file systems
 * (several FUSE mounts) cannot sync a directory and say EINVAL or ENOTSUP; they persist names
 * on their own terms, so that answer is no failure.
 */
export async function syncDirectory(dirPath: string): Promise<void> {
  const handle = await open(dirPath, 'r');
  try {
    await handle.sync().catch((error: unknown) => {
      const code = errnoOf(error);
      if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw error;
    });
  } finally {
    await handle.close();
  }
}

function isStrictlyInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
}
