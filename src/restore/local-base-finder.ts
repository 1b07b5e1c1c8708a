import { signatureBundleByteLimit, signatureFromBundle } from '../delta/signature-bundle.js';
import { describeError, isAppError } from '../errors.js';
import type { Logger } from '../log.js';
import { readSmallObject } from '../remote/body.js';
import type { RemoteStore } from '../remote/store.js';
import type { Manifest } from '../snapshot/manifest.js';
import { SIGNATURES_FILE_NAME } from '../snapshot/reserved-names.js';
import { findLocalVersion, type LocalBase } from './local-base.js';
import type { ExpectedFile } from './remote-snapshot.js';

/**
 * The local bases of one snapshot's restore: for each large file, an earlier version in another
 * local snapshot and the restored version's chunks from the signatures stored with the snapshot
 * (read once). Anything missing or unusable only means the file is fetched whole.
 */
export class LocalBaseFinder {
  private bundle: Promise<Buffer | undefined> | undefined;

  constructor(
    private readonly options: {
      store: RemoteStore;
      backupDir: string;
      snapshot: string;
      manifest: Manifest | undefined;
      /** Files below this are fetched whole (CLOUD_SYNC_DELTA_MIN_MB). */
      minFileBytes: number;
      log: Logger;
      signal: AbortSignal | undefined;
    },
  ) {}

  async baseFor(file: ExpectedFile): Promise<LocalBase | undefined> {
    const { backupDir, snapshot, manifest, minFileBytes } = this.options;
    if (manifest === undefined || file.encrypted || file.sha256 === undefined || file.size < minFileBytes) return undefined;
    const local = await findLocalVersion(backupDir, snapshot, file.path, minFileBytes);
    if (local === undefined) return undefined;
    const bytes = await this.bundleBytes(manifest);
    if (bytes === undefined) return undefined;
    try {
      const signature = signatureFromBundle(bytes, file.path, { size: file.size, sha256: file.sha256 });
      return signature === undefined ? undefined : { ...local, signature };
    } catch (error) {
      this.options.log.warn('signatures stored with the snapshot are unusable; its files are fetched whole', { file: file.path, error: describeError(error) });
      return undefined;
    }
  }

  private bundleBytes(manifest: Manifest): Promise<Buffer | undefined> {
    const { store, snapshot, minFileBytes, signal, log } = this.options;
    this.bundle ??= (async () => {
      const sizes = manifest.files.filter((file) => file.size >= minFileBytes).map((file) => file.size);
      try {
        return await readSmallObject(store, `${snapshot}/${SIGNATURES_FILE_NAME}`, signatureBundleByteLimit(sizes), { signal });
      } catch (error) {
        if (isAppError(error, 'cancelled')) throw error;
        if (!isAppError(error, 'not_found')) log.warn('cannot read the signatures stored with the snapshot; its files are fetched whole', { error: describeError(error) });
        return undefined;
      }
    })();
    return this.bundle;
  }
}
