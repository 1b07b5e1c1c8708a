import { AppError, describeError, isAppError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RemoteObject } from '../remote/store.js';
import { usesMultipart, type FileDigest } from '../snapshot/digest.js';
import { buildManifest, fileKey, type Manifest } from '../snapshot/manifest.js';
import { manifestKeyFor, type ManifestCodec } from '../snapshot/manifest-codec.js';
import type { SnapshotStat } from '../snapshot/scan.js';
import { cleanUpCancelledAttempt } from './attempt-cleanup.js';
import type { DeltaTransfer } from './delta-transfer.js';
import { listSnapshot, type FilePlan, type FilePlanner } from './file-plans.js';
import type { FileUpload } from './file-upload.js';
import { incompleteConflict, replacedConflict, type ManifestCommit } from './manifest-commit.js';
import type { HeldClaim, NameClaims } from './name-claim.js';
import { requireUploadablePaths } from './plan.js';
import type { Retrying } from './requests.js';
import type { ServerSideCopier } from './server-side-copy.js';
import { commitSignal, type CommitSignal } from './commit-signal.js';
import { isNameTaken, listingNeeded } from './unlisted-upload.js';
import { CopyTransfer, type ComposeTransfer } from './server-side-transfers.js';
import type { SnapshotFiles } from './snapshot-files.js';
import { addTransfer, noTransfers, transferFile, type FileTransfer, type TransferContext, type TransferTotals } from './transfer.js';
import { sealedLayout } from './upload-body.js';
import type { SnapshotOutcome, UploaderOptions, UploadProgress } from './uploader-options.js';
import { uploaderParts } from './uploader-parts.js';

export type { ConflictReport, StoredManifest } from './manifest-commit.js';
export type { SnapshotOutcome, UploaderOptions, UploadProgress } from './uploader-options.js';

/**
 * Uploads one settled snapshot: digest its files (cached), compare with what the bucket
 * holds, upload missing files through the shared file queue, verify each against the
 * server's own account, and write the manifest last. A snapshot whose name is taken by
 * different content is reported as a conflict and nothing is written.
 *
 * It reads as plan (file-plans.ts), transfer each file by the first way that applies
 * (transfer.ts: a server-side copy, a composition from its previous version, an upload), commit
 * (manifest-commit.ts).
 */

/** Names remembered as tried and not completed (see `tried`). */
const MAX_TRIED_NAMES = 10_000;

export class SnapshotUploader {
  private readonly copier: ServerSideCopier | undefined;
  private readonly codec: ManifestCodec;
  private readonly retrying: Retrying;
  private readonly files: SnapshotFiles;
  private readonly planner: FilePlanner;
  private readonly manifests: ManifestCommit;
  private readonly claims: NameClaims;
  /** Delta uploads' transfer, tried after a copy and before the upload; undefined when off. */
  private readonly compose: ComposeTransfer | undefined;
  private readonly fileUpload: FileUpload;
  private readonly delta: DeltaTransfer | undefined;
  /** Names whose upload started in this process and has not completed: a failed attempt may have left objects. */
  private readonly tried = new Set<string>();

  constructor(private readonly options: UploaderOptions) {
    ({
      codec: this.codec,
      retrying: this.retrying,
      files: this.files,
      planner: this.planner,
      manifests: this.manifests,
      claims: this.claims,
      copier: this.copier,
      compose: this.compose,
      fileUpload: this.fileUpload,
      delta: this.delta,
    } = uploaderParts(options));
  }

  /** Digests a settled snapshot into its manifest, re-reading only files whose stat changed. */
  async buildLocalManifest(stat: SnapshotStat): Promise<{ manifest: Manifest; digests: Map<string, FileDigest> }> {
    const digests = new Map<string, FileDigest>();
    for (const file of stat.files) digests.set(file.path, await this.files.digest(stat, file));
    const manifest = buildManifest(
      stat.name,
      stat.kind,
      stat.files.map((file) => ({ path: file.path, size: file.size, sha256: (digests.get(file.path) as FileDigest).sha256 })),
    );
    return { manifest, digests };
  }

  /** The ETag this agent's manifest of that content has in the bucket (the codec's: plain or encrypted). */
  manifestEtag(manifest: Manifest): string {
    return this.codec.etag(manifest);
  }

  async upload(stat: SnapshotStat, signal: AbortSignal, onProgress: (progress: UploadProgress) => void): Promise<SnapshotOutcome> {
    // Before the first request: a snapshot a restore would refuse is never claimed, sent or marked complete.
    requireUploadablePaths(stat.name, stat.files.map((file) => file.path));
    const startedAtMs = this.options.now();
    const log = this.options.log.child({ snapshot: stat.name });
    if (stat.skipped.length > 0) {
      log.warn('entries inside the snapshot are not uploaded: symbolic links and special files are never followed', { entries: stat.skipped.slice(0, 20), count: stat.skipped.length });
    }
    const unlisted = !this.listingNeeded(stat);
    this.tried.add(stat.name);
    // Bounded: a name forgotten is only listed first no more (a 412 still sends it to the listing).
    if (this.tried.size > MAX_TRIED_NAMES) this.tried.delete(this.tried.values().next().value as string);
    try {
      const outcome = await this.uploadAttempt(stat, signal, onProgress, { startedAtMs, log, unlisted });
      if (outcome.outcome !== 'conflict') this.tried.delete(stat.name);
      return outcome;
    } catch (error) {
      if (!isNameTaken(error)) throw error;
      // A create-only write found an object after all: the listing decides, as for any snapshot
      // whose name the bucket knows (what this attempt wrote is this agent's, and is kept).
      log.debug('name taken in the bucket after all; listing it and starting over', { reason: describeError(error) });
    }
    const outcome = await this.uploadAttempt(stat, signal, onProgress, { startedAtMs, log, unlisted: false });
    if (outcome.outcome !== 'conflict') this.tried.delete(stat.name);
    return outcome;
  }

  private listingNeeded(stat: SnapshotStat): boolean {
    return listingNeeded({
      index: this.options.remoteIndex?.(),
      name: stat.name,
      triedBefore: this.tried.has(stat.name),
      conditionalWritesHonoured: this.options.conditionalWritesHonoured?.() === true,
      largeFiles: stat.files.some((file) => this.sendsInParts(file.size) || this.delta?.considers(file.size) === true),
    });
  }

  /**
   * One upload. One listing says what the bucket holds under this name: manifests and files,
   * sizes and ETags. Keys it does not show need no HEAD before their upload (a conditional PUT
   * still guards the race with another writer). `unlisted`: planned as if the listing were empty
   * (see unlisted-upload.ts), listed after all before a server-side copy, which is not create-only.
   */
  private async uploadAttempt(
    stat: SnapshotStat,
    signal: AbortSignal,
    onProgress: (progress: UploadProgress) => void,
    { startedAtMs, log, unlisted }: { startedAtMs: number; log: Logger; unlisted: boolean },
  ): Promise<SnapshotOutcome> {
    const listed = unlisted ? new Map<string, RemoteObject>() : await this.retrying(() => listSnapshot(this.options.store, stat.name), `list ${stat.name}/`, signal);
    const remoteHasManifest = (['plain', 'encrypted'] as const).some((format) => listed.has(manifestKeyFor(stat.name, format)));

    if (remoteHasManifest) {
      // The name is taken by a complete snapshot: the whole local manifest decides, nothing is sent.
      const { manifest } = await this.buildLocalManifest(stat);
      await this.files.requireUnchanged(stat);
      const remote = await this.manifests.compareWithRemote(stat.name, manifest, signal, listed);
      if ('conflict' in remote) return { outcome: 'conflict', manifest, conflict: remote.conflict };
      this.copier?.remember(manifest);
      return { outcome: 'already-remote', manifest, ...remote };
    }

    const plans = await this.planner.plan(stat, listed, signal);
    const conflicts = plans.filter((plan) => plan.action.action === 'conflict');
    if (conflicts.length > 0) {
      const { manifest } = await this.buildLocalManifest(stat);
      return { outcome: 'conflict', manifest, conflict: incompleteConflict(manifest, conflicts) };
    }
    const transfers = await this.transfersFor(stat.name, plans, signal);
    if (unlisted && transfers.some((transfer) => transfer instanceof CopyTransfer && transfer.copiesAny)) {
      return this.uploadAttempt(stat, signal, onProgress, { startedAtMs, log, unlisted: false });
    }

    const progress: UploadProgress = { snapshot: stat.name, totalBytes: stat.files.reduce((sum, f) => sum + f.size, 0), sentBytes: 0, files: plans.length, filesDone: 0, startedAtMs };
    const context: TransferContext = {
      stat,
      signal,
      log,
      unlisted,
      addSentBytes: (bytes) => {
        progress.sentBytes += bytes;
        onProgress({ ...progress });
      },
    };
    const created: string[] = [];
    const attempted = new Set<string>();
    let claim: HeldClaim | undefined;
    let committing: CommitSignal | undefined;
    try {
      // Inside the try: a claim cancelled by a prune ends as snapshot_gone and is removed with the rest.
      if (plans.some((plan) => plan.action.action === 'upload' && this.sendsInParts(plan.file.size))) claim = await this.claims.claim(stat.name, listed, signal, log);
      // Under a claim, its signal: a claim lost (taken over, or not renewed in time) stops the upload.
      const claimed = claim === undefined ? context : { ...context, signal: claim.signal };
      const totals = await this.transferFiles(plans, transfers, claimed, progress, onProgress, { created, attempted });
      // Files changed while they were being sent: what was sent is not a consistent snapshot.
      await this.files.requireUnchanged(stat);
      if (claimed.signal.aborted) throw cancelledOr(undefined, claimed.signal);
      // From here on a prune does not stop the upload (see commit-signal.ts).
      committing = commitSignal(claimed.signal);
      this.options.onCommitting?.(stat.name);
      const outcome = await this.commit(plans, { ...claimed, signal: committing.signal }, { bytes: progress.totalBytes, totals, startedAtMs });
      await claim?.release();
      return outcome;
    } catch (error) {
      await claim?.stop();
      // A commit that failed is never abandoned: its manifest may be stored (see commit-signal.ts).
      const translated = cancelledOr(error, committing?.signal ?? claim?.signal ?? signal);
      // A snapshot that vanished or changed leaves nothing half-written under its name. On
      // shutdown, files already sent are kept: they are reused when the upload resumes.
      if (translated.kind === 'snapshot_gone' && committing === undefined) {
        await cleanUpCancelledAttempt(this.options.store, this.options.agentId, { name: stat.name, plans, attempted, created, claimed: claim !== undefined }, log);
      }
      throw translated;
    } finally {
      committing?.dispose();
    }
  }

  private sendsInParts(plainBytes: number): boolean {
    const { encryption, multipartThresholdBytes } = this.options;
    return encryption === undefined ? usesMultipart(plainBytes, multipartThresholdBytes) : sealedLayout(plainBytes, multipartThresholdBytes).multipart;
  }

  /** Writes each file the plan says to by the first transfer that applies; `keys` collects those begun and those written. */
  private async transferFiles(
    plans: readonly FilePlan[],
    transfers: readonly FileTransfer[],
    context: TransferContext,
    progress: UploadProgress,
    onProgress: (progress: UploadProgress) => void,
    keys: { created: string[]; attempted: Set<string> },
  ): Promise<TransferTotals> {
    const { stat, signal } = context;
    const totals = noTransfers();
    const priority = Math.floor(stat.timeMs / 1000);
    // No signal is handed to the queue: an aborted add() would reject while its task still
    // runs, and the cleanup below must only start once every task has really finished.
    const tasks = plans.map((plan) =>
      this.options.fileQueue.add(
        async () => {
          if (signal.aborted) throw cancelledOr(undefined, signal);
          if (plan.action.action === 'upload') {
            const writing = (key: string): void => void keys.attempted.add(key);
            const result = await transferFile({ file: plan.file, digest: plan.digest, replace: plan.action.replace }, { ...context, writing }, transfers, this.fileUpload);
            plan.storedEtag = result.storedEtag;
            if (result.digest !== undefined) plan.digest = result.digest;
            addTransfer(totals, result);
            if (result.kind !== 'found') keys.created.push(fileKey(stat.name, plan.file.path));
            // An upload counted its bytes as they went out; a copy or composition counts once done.
            if (result.kind === 'copied' || result.kind === 'composed') progress.sentBytes += plan.file.size;
          } else {
            progress.sentBytes += plan.file.size;
          }
          progress.filesDone += 1;
          onProgress({ ...progress });
        },
        { priority },
      ),
    );
    const results = await Promise.allSettled(tasks);
    const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failure !== undefined) throw failure.reason;
    return totals;
  }

  /** The transfers tried before the upload, in order: a server-side copy (its sources looked up for this snapshot's files), then a composition. */
  private async transfersFor(name: string, plans: readonly FilePlan[], signal: AbortSignal): Promise<FileTransfer[]> {
    const transfers: FileTransfer[] = [];
    if (this.copier !== undefined) {
      const toWrite = plans.flatMap((plan) => (plan.action.action === 'upload' && plan.digest !== undefined ? [{ path: plan.file.path, size: plan.digest.size, sha256: plan.digest.sha256 }] : []));
      transfers.push(new CopyTransfer(this.copier, await this.copier.sourcesFor(name, toWrite, signal)));
    }
    if (this.compose !== undefined) transfers.push(this.compose);
    return transfers;
  }

  /** Writes the manifest of the files sent, unless an object was replaced meanwhile or the name got taken. */
  private async commit(plans: readonly FilePlan[], { stat, signal, log }: TransferContext, sent: { bytes: number; totals: TransferTotals; startedAtMs: number }): Promise<SnapshotOutcome> {
    // Every file has its digest now: those hashed on the way out were filled in by their upload.
    const manifest = buildManifest(stat.name, stat.kind, plans.map(({ file, digest }) => ({ path: file.path, size: file.size, sha256: (digest as FileDigest).sha256 })));
    const replaced = await this.manifests.replacedDuringUpload(stat.name, plans, signal);
    if (replaced.length > 0) {
      log.warn('objects of this snapshot were replaced by another writer during the upload; manifest not written', { files: replaced.slice(0, 20) });
      return { outcome: 'conflict', manifest, conflict: replacedConflict(manifest, replaced) };
    }
    await this.manifests.writeSignatures(stat.name, manifest, signal, log);
    const written = await this.manifests.writeManifest(stat.name, manifest, signal);
    if ('conflict' in written) return { outcome: 'conflict', manifest, conflict: written.conflict };
    this.copier?.remember(manifest);
    return { outcome: 'uploaded', manifest, ...written, bytes: sent.bytes, ...sent.totals, durationMs: this.options.now() - sent.startedAtMs };
  }
}

function cancelledOr(error: unknown, signal: AbortSignal): AppError {
  if (signal.aborted && isAppError(signal.reason)) return signal.reason;
  if (isAppError(error)) return error;
  if (signal.aborted) return new AppError('cancelled', 'upload cancelled', { cause: error });
  return new AppError('local_io', describeError(error), { cause: error });
}
