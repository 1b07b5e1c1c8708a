import type PQueue from 'p-queue';
import type { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RemoteStore } from '../remote/store.js';
import type { RemoteIndex } from '../remote/remote-index.js';
import type { Manifest } from '../snapshot/manifest.js';
import type { Encryption } from '../crypto/encryption.js';
import type { SignatureStore } from '../state/signature-store.js';
import type { HashCacheDocument } from '../state/hash-cache.js';
import type { PersistedJson } from '../state/persisted.js';
import type { RetryPolicy } from '../retry.js';
import type { ConflictReport, StoredManifest } from './manifest-commit.js';
import type { StoredVerification } from './stored-verification.js';

/** What a snapshot uploader is given (UploaderOptions), and what it answers (SnapshotOutcome, UploadProgress). */

export type SnapshotOutcome =
  | ({
      outcome: 'uploaded';
      manifest: Manifest;
      bytes: number;
      /** Bytes that went over the wire; files copied server-side or already there are not in it. */
      bytesSent: number;
      filesSent: number;
      /** Bytes of files created by a server-side copy of an identical object already in the bucket. */
      bytesCopied: number;
      /** Bytes of files composed server-side from ranges of their previous version (see delta-transfer.ts). */
      bytesDelta: number;
      filesDelta: number;
      filesCopied: number;
      durationMs: number;
    } & StoredManifest)
  | ({ outcome: 'already-remote'; manifest: Manifest } & StoredManifest)
  | { outcome: 'conflict'; manifest: Manifest; conflict: ConflictReport };

export interface UploadProgress {
  snapshot: string;
  totalBytes: number;
  sentBytes: number;
  files: number;
  filesDone: number;
  startedAtMs: number;
}

export interface UploaderOptions {
  store: RemoteStore;
  /** Told when a snapshot's upload enters its commit: from then on a prune no longer stops it (commit-signal.ts). */
  onCommitting?: (name: string) => void;
  hashCache: PersistedJson<HashCacheDocument>;
  /** The file queue shared by all snapshots: its concurrency is the number of files in flight. */
  fileQueue: PQueue;
  agentId: string;
  backupDir: string;
  multipartThresholdBytes: number;
  retry: RetryPolicy;
  log: Logger;
  now: () => number;
  /** Each failed attempt that will be retried: lets the store's health show an outage before the retries run out. */
  onRetry?: (error: AppError) => void;
  /**
   * Differential uploads: files whose bytes a complete remote snapshot already holds are
   * created by server-side copy. `remoteIndex` is the latest listing of the bucket. Omitted: off.
   */
  serverSideCopy?: { remoteIndex: () => RemoteIndex; sourceSnapshots?: number };
  /** Client-side encryption of files and manifests; omitted: stored as they are. */
  encryption?: Encryption;
  /**
   * Whether the store refuses a conditional PUT over an existing key (found out at start). Then
   * the manifest is written without a HEAD first: the PUT itself is the check. Omitted: HEAD first.
   */
  conditionalWritesHonoured?: () => boolean;
  /**
   * Longest wait for one open, stat or read of a local file before its snapshot fails (the
   * blocked thread itself cannot be freed; see withDeadline). Default DEFAULT_FILE_DEADLINE_MS.
   */
  localFileDeadlineMs?: number;
  /** Refuse files with more than one hard link (another name may be outside the backup directory). Default false. */
  refuseHardlinks?: boolean;
  /**
   * Delta uploads (needs serverSideCopy, and no encryption): a large file whose previous version
   * is stored is composed from ranges of it plus the changed bytes. Omitted: off.
   */
  delta?: { minFileBytes: number; signatures: SignatureStore };
  /** Lease of this agent's claims on snapshot names, renewed every third of it (see claim-lease.ts). Default 10 min. */
  claimLeaseMs?: number;
  /** How stored objects are proven (stored-verification.ts); where only by reading them back, no copies or compositions. Default: by ETag. */
  verification?: StoredVerification;
  /**
   * The bucket's listing as sweeps keep it and uploads extend it. Where it shows nothing under a
   * new snapshot's name, that snapshot's own listing may be skipped (unlisted-upload.ts). Omitted:
   * every snapshot is listed before its upload.
   */
  remoteIndex?: () => RemoteIndex;
}
