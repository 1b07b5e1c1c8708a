import { describeError, isAppError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RemoteIndex } from '../remote/remote-index.js';
import type { RemoteStore } from '../remote/store.js';
import type { RetryPolicy } from '../retry.js';
import { retryingWith, type Retrying } from './requests.js';
import { normalizeEtag, type FileDigest } from '../snapshot/digest.js';
import type { Manifest } from '../snapshot/manifest.js';
import { checkCopySource, copyFallback, copyPartSize, selectCopySources, verifyCopy, type CopySource, type KnownSnapshot } from './copy-plan.js';
import { CopySourceCache } from './copy-sources.js';
import { METADATA_AGENT, METADATA_SHA256 } from './plan.js';

/**
 * Differential uploads: a file whose bytes a complete remote snapshot already holds is
 * created by a server-side copy of that object instead of being sent again. The result is
 * the same plain object an upload makes, verified the same way (size, ETag) before the
 * manifest is written. Whatever stands in the way of a copy (no support, no permission on
 * the source, the source deleted meanwhile) makes the caller upload the file as before.
 */

export interface ServerSideCopyOptions {
  store: RemoteStore;
  remoteIndex: () => RemoteIndex;
  /** Newest complete snapshots whose files are copy sources. Default 10. */
  sourceSnapshots?: number;
  agentId: string;
  retry: RetryPolicy;
  log: Logger;
  /** ETags of objects memsync composed and verified for a content (delta uploads); omitted: none. */
  composedEtags?: (sha256: string) => Promise<ReadonlySet<string>>;
}

/** A file with two or three stale sources is rare; beyond that, uploading is the better bet. */
const MAX_SOURCES_TRIED = 3;
const DEFAULT_SOURCE_SNAPSHOTS = 10;

export class ServerSideCopier {
  private readonly sources: CopySourceCache;
  private disabledReason: string | undefined;
  /** Fallback reasons already logged at warn: one line per reason per process, not one per file. */
  private readonly loggedReasons = new Set<string>();

  private readonly retrying: Retrying;

  constructor(private readonly options: ServerSideCopyOptions) {
    this.retrying = retryingWith(options.retry, options.log, undefined);
    this.sources = new CopySourceCache({
      store: options.store,
      remoteIndex: options.remoteIndex,
      snapshots: options.sourceSnapshots ?? DEFAULT_SOURCE_SNAPSHOTS,
      log: options.log,
    });
  }

  /** Copy sources for the files of `snapshot` that need writing, by path; files without one are absent. */
  async sourcesFor(snapshot: string, files: readonly { path: string; size: number; sha256: string }[], signal: AbortSignal): Promise<Map<string, CopySource[]>> {
    const sources = new Map<string, CopySource[]>();
    if (this.disabledReason !== undefined || files.length === 0) return sources;
    const known = await this.sources.known(snapshot, signal);
    for (const file of files) {
      const found = selectCopySources(file, known, snapshot);
      if (found.length > 0) sources.set(file.path, found.slice(0, MAX_SOURCES_TRIED));
    }
    return sources;
  }

  /** Sizes of the files that could be copy sources for `snapshot` (empty when copies are off). */
  async sourceSizes(snapshot: string, signal: AbortSignal): Promise<Set<number>> {
    if (this.disabledReason !== undefined) return new Set();
    const known = await this.sources.known(snapshot, signal);
    return new Set(known.flatMap((s) => s.manifest.files.map((file) => file.size)));
  }

  /** Manifests of the newest complete remote snapshots other than `exclude` (none when copies are off). */
  async knownSnapshots(exclude: string, signal: AbortSignal): Promise<KnownSnapshot[]> {
    return this.disabledReason === undefined ? this.sources.known(exclude, signal) : [];
  }

  /** The snapshot's manifest is in the bucket: its files are copy sources from now on. */
  remember(manifest: Manifest): void {
    this.sources.remember(manifest);
  }

  /**
   * Creates `targetKey` from the first usable source; the verified copy's ETag when it is in
   * place, undefined when the file has to be uploaded. Failures that are not about copying (store
   * unreachable after retries, cancelled) are thrown as they are.
   */
  async copy(targetKey: string, local: FileDigest, sources: readonly CopySource[], signal: AbortSignal, log: Logger): Promise<string | undefined> {
    const { store } = this.options;
    for (const source of sources) {
      if (this.disabledReason !== undefined) return undefined;
      const head = await this.retrying(() => store.head(source.key), `head ${source.key}`, signal);
      const stale = checkCopySource(local, head, (await this.options.composedEtags?.(local.sha256)) ?? new Set());
      if (stale !== undefined) {
        // Retention or another writer got there first: the next source, if any. The manifest stays
        // cached: re-reading it would say the same, and the next listing drops a deleted snapshot.
        this.fallback(head === undefined ? 'source gone' : 'source changed', { key: targetKey, source: source.key, detail: stale }, log);
        continue;
      }
      try {
        await this.retrying(
          () =>
            store.copy(source.key, targetKey, {
              sizeBytes: local.size,
              partSizeBytes: copyPartSize(local),
              sourceEtag: head?.etag ?? '',
              metadata: { [METADATA_AGENT]: this.options.agentId, [METADATA_SHA256]: local.sha256 },
              signal,
            }),
          `copy ${source.key} to ${targetKey}`,
          signal,
        );
      } catch (error) {
        const fallback = isAppError(error) ? copyFallback(error) : undefined;
        if (fallback === undefined) throw error;
        if (fallback.scope === 'all') this.disabledReason = fallback.reason;
        this.fallback(fallback.reason, { key: targetKey, source: source.key, detail: describeError(error) }, log);
        if (fallback.scope !== 'source') return undefined;
        continue;
      }
      const stored = await this.retrying(() => store.head(targetKey), `head ${targetKey}`, signal);
      const problem = verifyCopy(local, this.options.agentId, stored, head?.etag);
      if (problem === undefined) return normalizeEtag(stored?.etag);
      // The key was free (or held this agent's unfinished object) before the copy: removing it loses nothing.
      await store.delete(targetKey).catch(() => undefined);
      this.fallback('copy did not verify', { key: targetKey, source: source.key, detail: problem }, log);
      return undefined;
    }
    return undefined;
  }

  private fallback(reason: string, fields: Record<string, unknown>, log: Logger): void {
    const first = !this.loggedReasons.has(reason);
    this.loggedReasons.add(reason);
    const disabled = this.disabledReason === undefined ? {} : { copiesDisabled: true };
    if (first) log.warn('server-side copy not possible, uploading instead (logged once per reason)', { reason, ...fields, ...disabled });
    else log.debug('server-side copy not possible, uploading instead', { reason, ...fields });
  }
}
