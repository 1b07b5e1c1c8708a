import path from 'node:path';
import { AppError } from '../errors.js';
import { errnoOf, isMissing, translateFsError } from './fs-errors.js';
import { sidecarName, splitKey, temporaryName } from './fs-layout.js';
import type { GuardedFile } from './fs-operations.js';
import { keyDirectory, syncDirectory, type StoreRoot } from './fs-paths.js';
import { identityOf, sameIdentity, serializeSidecar, type ObjectIdentity, type ObjectRecord } from './fs-sidecar.js';

export type { StoreRoot } from './fs-paths.js';

/**
 * How the directory store writes an object so that no reader ever sees a partial one and a crash
 * leaves none: the bytes go to a temporary name in the object's own directory (one file system,
 * so the final step is a link or a rename), are fsynced, then put in place, and the directory is
 * fsynced so the name survives a power loss too. "Never replace" is link(2), which fails with
 * EEXIST when the name is taken, where a rename would silently replace.
 */

/** A directory that vanished between its walk and the open (a concurrent delete pruned it) is made again this often. */
const CREATE_ATTEMPTS = 3;

/** An object being written: a temporary file beside where it will be. */
export class TempObject {
  private position = 0;

  private constructor(
    private readonly where: StoreRoot,
    private readonly dirKey: string,
    readonly dirPath: string,
    readonly base: string,
    readonly tempPath: string,
    readonly file: GuardedFile,
  ) {}

  /** Creates the temporary file (and the key's directories); `what` names the operation in errors. */
  static async create(where: StoreRoot, key: string, what: string): Promise<TempObject> {
    const { dirKey, base } = splitKey(key);
    for (let attempt = 1; ; attempt += 1) {
      const dirPath = await keyDirectory(where, dirKey, what, 'create');
      const tempPath = path.join(dirPath, temporaryName(base));
      try {
        return new TempObject(where, dirKey, dirPath, base, tempPath, await where.io.create(tempPath));
      } catch (error) {
        if (errnoOf(error) !== 'ENOENT' || attempt >= CREATE_ATTEMPTS) throw translateFsError(error, what, 'remote_unavailable');
      }
    }
  }

  get bytesWritten(): number {
    return this.position;
  }

  /** Appends `bytes`. */
  async write(bytes: Buffer): Promise<void> {
    await this.file.writeAll(bytes, this.position);
    this.position += bytes.length;
  }

  /** Flushes the bytes to stable storage and closes the file; returns its identity for the sidecar. */
  async finish(): Promise<ObjectIdentity> {
    await this.file.sync();
    const identity = identityOf(await this.file.stat());
    await this.file.close();
    return identity;
  }

  /** Removes the temporary file: nothing of this write is left. */
  async discard(): Promise<void> {
    await this.file.close();
    await this.where.io.unlink(this.tempPath).catch(() => undefined);
  }

  /**
   * Whether the temporary file is still the one written, in a folder still reached without links:
   * a folder swapped for a link since it was made would put the object elsewhere.
   */
  async stillInPlace(identity: ObjectIdentity, what: string): Promise<boolean> {
    if ((await keyDirectory(this.where, this.dirKey, what, 'existing')) !== this.dirPath) return false;
    const now = await this.where.io.lstat(this.tempPath).catch(() => undefined);
    return now !== undefined && now.isFile() && sameIdentity(identityOf(now), identity);
  }

  get store(): StoreRoot {
    return this.where;
  }
}

/**
 * Puts a finished temporary object in place with its sidecar. 'create' never replaces an
 * existing name (conflict); 'replace' does, as an S3 PUT without a condition does.
 */
export async function placeObject(temp: TempObject, identity: ObjectIdentity, record: ObjectRecord, mode: 'create' | 'replace', what: string): Promise<void> {
  const { io } = temp.store;
  const target = path.join(temp.dirPath, temp.base);
  const sidecar = path.join(temp.dirPath, sidecarName(temp.base));
  const sidecarTemp = path.join(temp.dirPath, temporaryName(sidecarName(temp.base)));
  try {
    if (!(await temp.stillInPlace(identity, what))) {
      throw new AppError('remote_unavailable', `${what}: ${temp.tempPath} is no longer the file written (its folder changed meanwhile); nothing was put in place`);
    }
    const file = await io.create(sidecarTemp);
    try {
      await file.writeAll(serializeSidecar(identity, record), 0);
      await file.sync();
    } finally {
      await file.close();
    }
    if (mode === 'create') {
      try {
        await io.link(temp.tempPath, target);
      } catch (error) {
        if (errnoOf(error) === 'EEXIST') throw new AppError('conflict', `${what}: the key exists and is never replaced (PreconditionFailed)`, { cause: error, details: { code: 'PreconditionFailed' } });
        throw error;
      }
      await io.unlink(temp.tempPath);
    } else {
      // The old sidecar goes first: for a moment the object then has none (its bytes answer for
      // it), never one that describes other bytes.
      await io.unlink(sidecar).catch((error: unknown) => {
        if (!isMissing(error)) throw error;
      });
      await io.rename(temp.tempPath, target);
    }
    await io.rename(sidecarTemp, sidecar);
    await syncDirectory(temp.store, temp.dirPath);
  } catch (error) {
    await io.unlink(sidecarTemp).catch(() => undefined);
    throw translateFsError(error, what, 'remote_unavailable');
  }
}

/**
 * Removes an object, then its sidecar: a sidecar left by an unlink that failed still describes
 * the object that is still there (and one left by a crash between the two describes no file, so
 * it is never taken for another's). Missing is fine.
 */
export async function removeObject(where: StoreRoot, key: string, what: string): Promise<void> {
  const { dirKey, base } = splitKey(key);
  const dirPath = await keyDirectory(where, dirKey, what, 'existing');
  if (dirPath === undefined) return;
  const objectPath = path.join(dirPath, base);
  try {
    try {
      await where.io.unlink(objectPath);
    } catch (error) {
      // EISDIR (Linux) or EPERM (POSIX) when a directory has the name: no object has that key.
      // EPERM on anything else is a refusal (a sticky directory, an immutable file), not "gone".
      const code = errnoOf(error);
      const isDirectory = (code === 'EISDIR' || code === 'EPERM') && (await where.io.lstat(objectPath).catch(() => undefined))?.isDirectory() === true;
      if (!isMissing(error) && !isDirectory) throw error;
    }
    await where.io.unlink(path.join(dirPath, sidecarName(base))).catch((error: unknown) => {
      if (!isMissing(error)) throw error;
    });
    await syncDirectory(where, dirPath).catch((error: unknown) => {
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
      await where.io.rmdir(dir);
    } catch {
      return;
    }
  }
}

function isStrictlyInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
}
