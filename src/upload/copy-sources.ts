import { createHash } from 'node:crypto';
import PQueue from 'p-queue';
import { describeError, isAppError } from '../errors.js';
import type { Logger } from '../log.js';
import { readSmallObject } from '../remote/body.js';
import type { RemoteIndex } from '../remote/remote-index.js';
import type { RemoteStore } from '../remote/store.js';
import { manifestEtag, manifestKey, parseManifest, type Manifest } from '../snapshot/manifest.js';
import { manifestByteLimit } from '../snapshot/manifest-limits.js';
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

/**
 * Manifests downloaded and parsed at once. After a restart every window snapshot is new to the
 * cache; reading them all at the same time would hold all of them in memory together.
 */
const MANIFEST_READS_IN_FLIGHT = 2;

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
  private readonly reads = new PQueue({ concurrency: MANIFEST_READS_IN_FLIGHT });

  constructor(private readonly options: CopySourceCacheOptions) {}

  /** Manifests of the newest complete remote snapshots other than `exclude`, read where new or changed. */
  async known(exclude: string, signal: AbortSignal): Promise<KnownSnapshot[]> {
    const index = this.options.remoteIndex();
    const wanted = copySourceSnapshots(index, this.options.snapshots, exclude);
    const names = new Set(wanted.map((s) => s.name));
    // Bounded memory: what fell out of the window (or was deleted) is forgotten.
    for (const name of this.entries.keys()) if (!names.has(name) && name !== exclude) this.entries.delete(name);
    const found = await Promise.all(
      wanted.map(async (snapshot) => {
        let entry = this.entries.get(snapshot.name);
        if (entry?.etag !== snapshot.manifestEtag) {
          // Shared by concurrent uploads, so one changed manifest is downloaded once.
          const fileCount = index.snapshots.get(snapshot.name)?.fileCount;
          entry = { etag: snapshot.manifestEtag, manifest: this.reads.add(() => this.read(snapshot.name, snapshot.manifestEtag, fileCount, signal)) };
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
  private async read(name: string, listedEtag: string, fileCount: number | undefined, signal: AbortSignal): Promise<Manifest | undefined> {
    const key = manifestKey(name);
    try {
      const bytes = await readSmallObject(this.options.store, key, manifestByteLimit('plain', fileCount), { signal });
      const manifest = parseManifest(bytes, name);
      // Replaced between the listing and this read: used now, but read again next time.
      if (createHash('md5').update(bytes).digest('hex') !== listedEtag) this.forgetIfStill(name, listedEtag);
      return manifest;
    } catch (error) {
      if (isAppError(error, 'integrity')) {
        // Oversized or invalid: the same ETag is the same bytes, so it stays skipped until it changes.
        this.options.log.warn('manifest of a possible copy source is not one memsync wrote; not copying from that snapshot', { snapshot: name, error: describeError(error) });
        return undefined;
      }
      this.forgetIfStill(name, listedEtag);
      if (isAppError(error, 'cancelled')) return undefined;
      this.options.log.debug('cannot read manifest of a possible copy source; skipping it', { snapshot: name, error: describeError(error) });
      return undefined;
    }
  }
}
