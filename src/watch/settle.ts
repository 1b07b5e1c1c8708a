import { sameFingerprint, type SnapshotStat } from '../snapshot/scan.js';

/**
 * When is a snapshot complete? The memory service writes file after file with no marker, so
 * a snapshot counts as settled once nothing in it has changed for `settleMs`. Two clocks
 * say so: the newest ctime in the snapshot (any write, truncate, rename or copystat moves
 * it, even when mtime is copied from the source), and memsync's own observations of an
 * unchanged fingerprint, which also hold where file times cannot be trusted (clock skew).
 */

export interface SettleState {
  stat: SnapshotStat;
  /** When memsync first saw the current fingerprint. */
  stableSinceMs: number;
}

export type SettleVerdict =
  | { verdict: 'settled' }
  | { verdict: 'wait'; checkAtMs: number }
  /** A directory with no files yet: nothing to upload; activity will bring it back. */
  | { verdict: 'empty' };

/** Checks closer together than this add cost, not latency. */
const MIN_RECHECK_MS = 25;

export function judgeSettle(previous: SettleState | undefined, current: SnapshotStat, nowMs: number, settleMs: number): { verdict: SettleVerdict; state: SettleState } {
  const unchanged = previous !== undefined && sameFingerprint(previous.stat, current);
  const state: SettleState = { stat: current, stableSinceMs: unchanged ? previous.stableSinceMs : nowMs };
  if (current.files.length === 0) return { verdict: { verdict: 'empty' }, state };

  const observedQuietMs = nowMs - state.stableSinceMs;
  // A change time in the future means the file system's clock is ahead: only observations count.
  const trustChangeTime = current.newestChangeMs <= nowMs;
  const changeQuietMs = trustChangeTime ? nowMs - current.newestChangeMs : 0;
  if (observedQuietMs >= settleMs || changeQuietMs >= settleMs) return { verdict: { verdict: 'settled' }, state };

  const byObservation = state.stableSinceMs + settleMs;
  const byChangeTime = trustChangeTime ? current.newestChangeMs + settleMs : Number.POSITIVE_INFINITY;
  return { verdict: { verdict: 'wait', checkAtMs: Math.max(nowMs + MIN_RECHECK_MS, Math.min(byObservation, byChangeTime)) }, state };
}
