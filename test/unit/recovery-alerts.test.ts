// "recovered" means nothing is failing any more: one snapshot's success while another keeps
// failing is no recovery, and snapshots that stop failing without succeeding (pruned, a conflict)
// neither hold the recovery back nor announce it.
import { describe, expect, it } from 'vitest';
import type { Alert, Notifier } from '../../src/alerts/notifier.js';
import { FailureRun } from '../../src/alerts/recovery.js';
import { AppError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { OutcomeRecorder } from '../../src/outcomes.js';
import type { RemoteIndex } from '../../src/remote/remote-index.js';
import { buildManifest } from '../../src/snapshot/manifest.js';
import type { SnapshotStat } from '../../src/snapshot/scan.js';
import { agentStateSchema, freshAgentState } from '../../src/state/agent-state.js';
import { PersistedJson } from '../../src/state/persisted.js';
import type { SnapshotOutcome } from '../../src/upload/snapshot-uploader.js';

const A = 'auto_20260101_000000';
const B = 'auto_20260101_010000';
const C = 'auto_20260101_020000';
const OUTAGE = new AppError('remote_unavailable', 'connect ECONNREFUSED');

const emptyIndex = (): RemoteIndex => ({ snapshots: new Map(), ignoredKeys: 0, listedAtMs: 0 });
const statOf = (name: string): SnapshotStat => ({ name, timeMs: 0 }) as unknown as SnapshotStat;

function uploaded(name: string): SnapshotOutcome {
  return {
    outcome: 'uploaded',
    manifest: buildManifest(name, 'directory', [{ path: 'metadata.json', size: 1, sha256: 'a'.repeat(64) }]),
    manifestEtag: 'etag',
    encrypted: false,
    filesSent: 1,
    bytes: 1,
    bytesSent: 1,
    bytesCopied: 0,
    filesCopied: 0,
    bytesDelta: 0,
    filesDelta: 0,
    durationMs: 10,
  } as unknown as SnapshotOutcome;
}

function conflictOf(name: string): SnapshotOutcome {
  return { outcome: 'conflict', manifest: buildManifest(name, 'directory', []), conflict: { localDigest: 'l', remoteDigest: 'r', files: [] } } as unknown as SnapshotOutcome;
}

function recorder(): { outcomes: OutcomeRecorder; alerts: Alert[] } {
  const alerts: Alert[] = [];
  const notifier: Notifier = { notify: (alert) => void alerts.push(alert) };
  const state = new PersistedJson(undefined, agentStateSchema, freshAgentState, silentLogger);
  return { outcomes: new OutcomeRecorder(state, silentLogger, () => 0, undefined, notifier), alerts };
}

const recoveries = (alerts: Alert[]): Alert[] => alerts.filter((alert) => alert.event === 'recovered');

describe('the recovered alert', () => {
  it('is not sent while another snapshot keeps failing, and is sent once the last one succeeds', () => {
    const { outcomes, alerts } = recorder();
    outcomes.recordFailure(A, OUTAGE, true);
    outcomes.recordFailure(B, OUTAGE, true);
    outcomes.record(statOf(A), uploaded(A), emptyIndex());
    expect(recoveries(alerts)).toEqual([]);

    outcomes.recordFailure(B, OUTAGE, false);
    outcomes.record(statOf(B), uploaded(B), emptyIndex());
    expect(recoveries(alerts)).toHaveLength(1);
    expect(recoveries(alerts)[0]).toMatchObject({ snapshot: B, details: { failedBefore: [A, B] } });

    // A later success with nothing failed since is no recovery.
    outcomes.record(statOf(C), uploaded(C), emptyIndex());
    expect(recoveries(alerts)).toHaveLength(1);
  });

  it('a failing snapshot that is pruned or ends in a conflict stops holding the recovery back', () => {
    const { outcomes, alerts } = recorder();
    outcomes.recordFailure(A, OUTAGE, true);
    outcomes.recordFailure(B, OUTAGE, true);
    outcomes.recordFailure(C, OUTAGE, true);
    outcomes.recordGone(A, emptyIndex());
    outcomes.record(statOf(B), conflictOf(B), emptyIndex());
    // Neither a prune nor a conflict is a success: nothing is announced yet.
    expect(recoveries(alerts)).toEqual([]);
    outcomes.record(statOf(C), uploaded(C), emptyIndex());
    expect(recoveries(alerts)).toHaveLength(1);
    expect(recoveries(alerts)[0]).toMatchObject({ snapshot: C, details: { failedBefore: [A, B, C] } });
  });
});

describe('FailureRun', () => {
  it.each([
    { label: 'one failure, then its success', steps: [['fail', A], ['succeed', A]], recovered: [[A]] },
    { label: 'two failing, the first succeeds', steps: [['fail', A], ['fail', B], ['succeed', A], ['succeed', B]], recovered: [undefined, [A, B]] },
    { label: 'the failing one is dropped', steps: [['fail', A], ['drop', A], ['succeed', B]], recovered: [[A]] },
    { label: 'no failure', steps: [['succeed', A]], recovered: [undefined] },
    { label: 'a success after the recovery', steps: [['fail', A], ['succeed', A], ['succeed', B]], recovered: [[A], undefined] },
  ] as const)('$label', ({ steps, recovered }) => {
    const run = new FailureRun();
    const answers: (readonly string[] | undefined)[] = [];
    for (const [step, name] of steps) {
      if (step === 'fail') run.failed(name);
      else if (step === 'drop') run.dropped(name);
      else answers.push(run.succeeded(name));
    }
    expect(answers).toEqual(recovered);
  });
});
