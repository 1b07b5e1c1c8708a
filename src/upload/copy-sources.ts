import { createHash } from 'node:crypto';
import { describeError, isAppError } from '../errors.js';
import type { Logger } from '../log.js';
import { readBody } from '../remote/body.js';
import type { RemoteIndex } from '../remote/remote-index.js';
import type { RemoteStore } from '../remote/store.js';
import { manifestEtag, manifestKey, parseManifest, type Manifest } from '../snapshot/manifest.js';
import { copySourceSnapshots, type KnownSnapshot } from './copy-plan.js';

/**
 * What the bucket already holds, by content: the manifests of the newest complete remote
 * snapshots, kept in memory and keyed by the manifest's ETag. The listing the agent keeps
 * anyway says which snapshots are complete and what their manifest ETags are; a manifest is
 * downloaded only when its snapshot is new to the cache or its ETag changed, so steady state
 * costs one small GET per new snapshot, and none for snapshots this process wrote itself.
 * Not persisted: after a restart, re-reading a few small manifests is cheaper than keeping a
 * second state file consistent with a bucket that retention and other writers change.
 */

export interface CopySourceCacheOptions {
  store: RemoteStore;
  /** The latest listing of the bucket (the agent's remote index). */
  remoteIndex: () => RemoteIndex;
  /** How many of the newest complete snapshots to know. */
  snapshots: number;
  log: Logger;
}

interface Entry {
  /** MD5 of the manifest bytes, as S3 reports it for memsync's single-PUT manifests. */
  etag: string;
  manifest: Promise<Manifest | undefined>;
}

export class CopySourceCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly options: CopySourceCacheOptions) {}

  /** Manifests of the newest complete remote snapshots other than `exclude`, read where new or changed. */
  async known(exclude: string, signal: AbortSignal): Promise<KnownSnapshot[]> {
    const wanted = copySourceSnapshots(this.options.remoteIndex(), this.options.snapshots, exclude);
    const names = new Set(wanted.map((s) => s.name));
    // Bounded memory: what fell out of the window (or was deleted) is forgotten.
    for (const name of this.entries.keys()) if (!names.has(name) && name !== exclude) this.entries.delete(name);
    const found = await Promise.all(
      wanted.map(async (snapshot) => {
        let entry = this.entries.get(snapshot.name);
        if (entry?.etag !== snapshot.manifestEtag) {
          // Shared by concurrent uploads, so one changed manifest is downloaded once.
          entry = { etag: snapshot.manifestEtag, manifest: this.read(snapshot.name, snapshot.manifestEtag, signal) };
          this.entries.set(snapshot.name, entry);
        }
        const manifest = await entry.manifest;
        return manifest === undefined ? [] : [{ name: snapshot.name, timeMs: snapshot.timeMs, manifest }];
      }),
    );
    return found.flat();
  }

  /** A manifest this process has just written or confirmed: known without a download. */
  remember(manifest: Manifest): void {
    this.entries.set(manifest.snapshot, { etag: manifestEtag(manifest), manifest: Promise.resolve(manifest) });
  }

  private forgetIfStill(name: string, etag: string): void {
    if (this.entries.get(name)?.etag === etag) this.entries.delete(name);
  }

  /** A manifest that cannot be read only means fewer copy sources: an upload never fails for it. */
  private async read(name: string, listedEtag: string, signal: AbortSignal): Promise<Manifest | undefined> {
    const key = manifestKey(name);
    try {
      const bytes = await readBody(await this.options.store.get(key, signal), key);
      const manifest = parseManifest(bytes, name);
      // Replaced between the listing and this read: used now, but read again next time.
      if (createHash('md5').update(bytes).digest('hex') !== listedEtag) this.forgetIfStill(name, listedEtag);
      return manifest;
    } catch (error) {
      this.forgetIfStill(name, listedEtag);
      if (isAppError(error, 'cancelled')) return undefined;
      this.options.log.debug('cannot read manifest of a possible copy source; skipping it', { snapshot: name, error: describeError(error) });
      return undefined;
    }
  }
}
