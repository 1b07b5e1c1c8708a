import { compareNewestFirst } from '../snapshot/naming.js';
import { weakestVerification, type Verification } from '../snapshot/object-check.js';
import type { RemoteIndex } from '../remote/remote-index.js';

/**
 * What a verification of remote snapshots found, as data: which snapshots to check, and the
 * verdict on one snapshot from the checks of its files. Pure; the reading is in verifier.ts.
 */

export type FileResult = { path: string; ok: true; verification: Verification } | { path: string; ok: false; reason: string };

/** ok: every file matches its manifest's SHA-256; unverified: no manifest, files match their ETag or length; failed: something does not match. */
export type SnapshotStatus = 'ok' | 'unverified' | 'failed';

export interface VerifyFailure {
  /** The file that failed; undefined when the snapshot as a whole is unreadable (e.g. an invalid manifest). */
  path: string | undefined;
  reason: string;
}

export interface SnapshotVerification {
  snapshot: string;
  status: SnapshotStatus;
  /** Whether memsync's manifest was there to check against; undefined when the snapshot could not be read that far. */
  manifest: boolean | undefined;
  files: number;
  bytes: number;
  /** The weakest check any file got; undefined when the snapshot failed before its files were read. */
  verification: Verification | undefined;
  failures: VerifyFailure[];
  durationMs: number;
}

export interface VerifySummary {
  snapshots: number;
  ok: number;
  unverified: number;
  failed: number;
}

/** Everything memsync uploaded and finished (manifest present), newest first by time. */
export function completeSnapshotsNewestFirst(index: RemoteIndex): string[] {
  return [...index.snapshots.values()]
    .filter((snapshot) => snapshot.complete)
    .sort(compareNewestFirst)
    .map((snapshot) => snapshot.name);
}

export function judgeSnapshot(snapshot: { name: string; manifest: boolean; bytes: number; durationMs: number }, results: readonly FileResult[]): SnapshotVerification {
  const failures = results.flatMap((result) => (result.ok ? [] : [{ path: result.path, reason: result.reason }]));
  const verification = failures.length > 0 ? undefined : weakestVerification(results.flatMap((result) => (result.ok ? [result.verification] : [])));
  const status: SnapshotStatus = failures.length > 0 ? 'failed' : snapshot.manifest ? 'ok' : 'unverified';
  return { snapshot: snapshot.name, status, manifest: snapshot.manifest, files: results.length, bytes: snapshot.bytes, verification, failures, durationMs: snapshot.durationMs };
}

/** A snapshot whose listing or manifest already contradicts itself: no file needs reading to fail it. */
export function unreadableSnapshot(name: string, failure: VerifyFailure, durationMs: number): SnapshotVerification {
  return {
    snapshot: name,
    status: 'failed',
    manifest: undefined,
    files: 0,
    bytes: 0,
    verification: undefined,
    failures: [failure],
    durationMs,
  };
}

export function summarize(results: readonly SnapshotVerification[]): VerifySummary {
  const count = (status: SnapshotStatus): number => results.filter((result) => result.status === status).length;
  return { snapshots: results.length, ok: count('ok'), unverified: count('unverified'), failed: count('failed') };
}
