import { describe, expect, it } from 'vitest';
import type { FileStat, SnapshotStat } from '../../src/snapshot/scan.js';
import { judgeSettle, type SettleState } from '../../src/watch/settle.js';

const SETTLE = 2000;
const NOW = 1_000_000;

function stat(changeMs: number, files: FileStat[] = [{ path: 'metadata.json', size: 10, mtimeMs: changeMs, ctimeMs: changeMs }]): SnapshotStat {
  return { name: 'auto_20250101_000000', kind: 'directory', files, skipped: [], newestChangeMs: files.reduce((max, f) => Math.max(max, f.ctimeMs), changeMs), timeMs: 0 };
}

describe('judgeSettle', () => {
  interface Row {
    label: string;
    previous: SettleState | undefined;
    current: SnapshotStat;
    now: number;
    verdict: 'settled' | 'wait' | 'empty';
    checkAtMs?: number;
    stableSinceMs: number;
  }

  const old = stat(NOW - 60_000);
  const recent = stat(NOW - 500);
  const future = stat(NOW + 3_600_000);
  const rows: Row[] = [
    { label: 'first observation, ctime long ago', previous: undefined, current: old, now: NOW, verdict: 'settled', stableSinceMs: NOW },
    { label: 'first observation, ctime exactly settleMs ago', previous: undefined, current: stat(NOW - SETTLE), now: NOW, verdict: 'settled', stableSinceMs: NOW },
    { label: 'first observation, recent ctime', previous: undefined, current: recent, now: NOW, verdict: 'wait', checkAtMs: NOW - 500 + SETTLE, stableSinceMs: NOW },
    { label: 'first observation, ctime 1 ms short of settleMs', previous: undefined, current: stat(NOW - SETTLE + 1), now: NOW, verdict: 'wait', checkAtMs: NOW + 25, stableSinceMs: NOW },
    {
      label: 'unchanged since a recent ctime, not yet quiet',
      previous: { stat: recent, stableSinceMs: NOW - 100 },
      current: recent,
      now: NOW,
      verdict: 'wait',
      checkAtMs: NOW - 500 + SETTLE,
      stableSinceMs: NOW - 100,
    },
    {
      label: 'fingerprint changed: stableSince resets to now',
      previous: { stat: stat(NOW - 10_000), stableSinceMs: NOW - 10_000 },
      current: recent,
      now: NOW,
      verdict: 'wait',
      checkAtMs: NOW - 500 + SETTLE,
      stableSinceMs: NOW,
    },
    {
      label: 'a file added: stableSince resets',
      previous: { stat: recent, stableSinceMs: NOW - 1000 },
      current: stat(NOW - 500, [...recent.files, { path: 'index.faiss', size: 5, mtimeMs: NOW - 500, ctimeMs: NOW - 500 }]),
      now: NOW,
      verdict: 'wait',
      checkAtMs: NOW - 500 + SETTLE,
      stableSinceMs: NOW,
    },
    {
      label: 'a size changed with the same times: stableSince resets',
      previous: { stat: recent, stableSinceMs: NOW - 1000 },
      current: stat(NOW - 500, [{ path: 'metadata.json', size: 11, mtimeMs: NOW - 500, ctimeMs: NOW - 500 }]),
      now: NOW,
      verdict: 'wait',
      checkAtMs: NOW - 500 + SETTLE,
      stableSinceMs: NOW,
    },
    {
      label: 'future ctime (clock skew), first observation',
      previous: undefined,
      current: future,
      now: NOW,
      verdict: 'wait',
      checkAtMs: NOW + SETTLE,
      stableSinceMs: NOW,
    },
    {
      label: 'future ctime, unchanged for less than settleMs by observation',
      previous: { stat: future, stableSinceMs: NOW - 1500 },
      current: future,
      now: NOW,
      verdict: 'wait',
      checkAtMs: NOW - 1500 + SETTLE,
      stableSinceMs: NOW - 1500,
    },
    {
      label: 'future ctime, unchanged for settleMs by observation',
      previous: { stat: future, stableSinceMs: NOW - SETTLE },
      current: future,
      now: NOW,
      verdict: 'settled',
      stableSinceMs: NOW - SETTLE,
    },
    {
      label: 'recent ctime but unchanged for settleMs by observation',
      previous: { stat: recent, stableSinceMs: NOW - SETTLE },
      current: recent,
      now: NOW,
      verdict: 'settled',
      stableSinceMs: NOW - SETTLE,
    },
    {
      label: 'fingerprint changed to an old ctime: the change time is trusted',
      previous: { stat: recent, stableSinceMs: NOW - 100 },
      current: old,
      now: NOW,
      verdict: 'settled',
      stableSinceMs: NOW,
    },
    {
      label: 'empty directory',
      previous: undefined,
      current: stat(NOW - 60_000, []),
      now: NOW,
      verdict: 'empty',
      stableSinceMs: NOW,
    },
    {
      label: 'empty directory, unchanged for long',
      previous: { stat: stat(NOW - 60_000, []), stableSinceMs: NOW - 60_000 },
      current: stat(NOW - 60_000, []),
      now: NOW,
      verdict: 'empty',
      stableSinceMs: NOW - 60_000,
    },
  ];

  it.each(rows)('$label -> $verdict', ({ previous, current, now, verdict, checkAtMs, stableSinceMs }) => {
    const result = judgeSettle(previous, current, now, SETTLE);
    expect(result.verdict.verdict).toBe(verdict);
    if (result.verdict.verdict === 'wait') expect(result.verdict.checkAtMs).toBe(checkAtMs);
    expect(result.state.stat).toBe(current);
    expect(result.state.stableSinceMs).toBe(stableSinceMs);
  });

  it('a waiting snapshot that stays unchanged settles at checkAtMs', () => {
    const first = judgeSettle(undefined, recent, NOW, SETTLE);
    expect(first.verdict.verdict).toBe('wait');
    const checkAt = first.verdict.verdict === 'wait' ? first.verdict.checkAtMs : Number.NaN;
    expect(judgeSettle(first.state, recent, checkAt - 1, SETTLE).verdict.verdict).toBe('wait');
    expect(judgeSettle(first.state, recent, checkAt, SETTLE).verdict.verdict).toBe('settled');
  });

  it('a snapshot that keeps changing never settles by observation alone', () => {
    let state: SettleState | undefined;
    for (let step = 0; step < 10; step += 1) {
      const now = NOW + step * 1000;
      const result = judgeSettle(state, stat(now + 3_600_000, [{ path: 'a', size: step, mtimeMs: now, ctimeMs: now + 3_600_000 }]), now, SETTLE);
      expect(result.verdict.verdict).toBe('wait');
      state = result.state;
    }
  });
});
