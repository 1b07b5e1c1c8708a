import { plainManifestCodec, type ManifestCodec } from '../snapshot/manifest-codec.js';
import { DeltaTransfer } from './delta-transfer.js';
import { FilePlanner } from './file-plans.js';
import { FileUpload } from './file-upload.js';
import { ManifestCommit } from './manifest-commit.js';
import { NameClaims } from './name-claim.js';
import { retryingWith, type Retrying } from './requests.js';
import { ServerSideCopier } from './server-side-copy.js';
import { ComposeTransfer } from './server-side-transfers.js';
import { SnapshotFiles } from './snapshot-files.js';
import { ETAG_VERIFICATION } from './stored-verification.js';
import type { UploaderOptions } from './uploader-options.js';

/**
 * The pieces a snapshot uploader works with, wired from its options: which transfers exist
 * (server-side copies and compositions only where stored objects can be proved by their ETags,
 * and never for encrypted files), and the planner, manifest writer and claims over one store.
 */
export interface UploaderParts {
  codec: ManifestCodec;
  retrying: Retrying;
  files: SnapshotFiles;
  planner: FilePlanner;
  manifests: ManifestCommit;
  claims: NameClaims;
  copier: ServerSideCopier | undefined;
  /** Delta uploads' transfer, tried after a copy and before the upload; undefined when off. */
  compose: ComposeTransfer | undefined;
  fileUpload: FileUpload;
  delta: DeltaTransfer | undefined;
}

export function uploaderParts(options: UploaderOptions): UploaderParts {
  const { store, agentId, encryption, multipartThresholdBytes } = options;
  const copy = options.serverSideCopy;
  const signatures = options.delta?.signatures;
  const verification = options.verification ?? ETAG_VERIFICATION;
  const codec = encryption?.codec ?? plainManifestCodec();
  const retrying = retryingWith(options.retry, options.log, options.onRetry);
  // An encrypted object's ETag cannot be predicted from the local file, and an SSE-KMS one is no
  // digest at all: a copy could then not be verified without downloading it, so every file is sent.
  const copier =
    copy === undefined || encryption !== undefined || !verification.serverSideCopies
      ? undefined
      : new ServerSideCopier({
          store,
          remoteIndex: copy.remoteIndex,
          sourceSnapshots: copy.sourceSnapshots,
          agentId,
          retry: options.retry,
          log: options.log,
          ...(signatures === undefined ? {} : { composedEtags: (sha256: string) => signatures.composedEtags(sha256) }),
        });
  const delta =
    options.delta === undefined || copier === undefined
      ? undefined
      : new DeltaTransfer({
          store,
          signatures: options.delta.signatures,
          minFileBytes: options.delta.minFileBytes,
          knownSnapshots: (exclude, signal) => copier.knownSnapshots(exclude, signal),
          agentId,
          retry: options.retry,
          log: options.log,
        });
  const files = new SnapshotFiles({
    backupDir: options.backupDir,
    hashCache: options.hashCache,
    multipartThresholdBytes,
    log: options.log,
    localFileDeadlineMs: options.localFileDeadlineMs,
    refuseHardlinks: options.refuseHardlinks,
    delta,
  });
  return {
    codec,
    retrying,
    files,
    planner: new FilePlanner({ store, files, agentId, multipartThresholdBytes, encryption, copier, delta, retrying, etagsAreDigests: verification.method === 'etag' }),
    manifests: new ManifestCommit({ store, codec, encryption, agentId, conditionalWritesHonoured: options.conditionalWritesHonoured, delta, retrying }),
    claims: new NameClaims({ store, agentId, now: options.now, retrying, leaseMs: options.claimLeaseMs }),
    copier,
    compose: delta === undefined ? undefined : new ComposeTransfer(delta, files),
    fileUpload: new FileUpload({ store, files, agentId, multipartThresholdBytes, encryption, retrying, now: options.now, verification: verification.method }),
    delta,
  };
}
