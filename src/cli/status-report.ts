import { chooseLatestRestorable, remoteNewerThan, type RemoteIndex } from '../remote/remote-index.js';
import { latestByTime, type Timed } from '../snapshot/naming.js';
import type { AgentState, ConflictRecord } from '../state/agent-state.js';
import { compareSides, type LocalEntry } from '../upload/compare.js';

/**
 * `memsync status` as data: the local and remote pictures compared with the agent's own rule
 * (compareSides), plus what the agent has recorded in its state directory. Pure.
 */

export interface StatusInputs {
  location: string;
  backupDir: string;
  stateDir: string;
  remote: { reachable: true; index: RemoteIndex } | { reachable: false; state: UnusableStoreState; error: string; hint: string | undefined };
  /** Settled local snapshots with their manifest identity. */
  local: LocalEntry[];
  /** Local snapshots still being written (or empty): not compared. */
  settling: Timed[];
  /** The agent's state file; undefined when there is none (no agent ran with this state directory). */
  agentState: AgentState | undefined;
}

/** A store that refused memsync (credentials, bucket) needs a fix; one that did not answer may come back. */
export type UnusableStoreState = 'refused' | 'unreachable';

export interface NamedTime {
  name: string;
  time: string;
}

export interface StatusReport {
  location: string;
  backupDir: string;
  stateDir: string;
  remote: {
    reachable: boolean;
    state: 'reachable' | UnusableStoreState;
    error: string | null;
    /** What to do about the error. */
    hint: string | null;
    count: number | null;
    complete: number | null;
    latest: NamedTime | null;
  };
  local: { count: number; latest: NamedTime | null; settling: string[] };
  /** Null when the store could not be listed: nothing can be said about either side's difference. */
  inSync: string[] | null;
  pending: string[] | null;
  onlyRemote: string[] | null;
  newerRemote: string[] | null;
  /** Conflicts the agent recorded (never resolved automatically). */
  conflicts: (Omit<ConflictRecord, 'detectedAtMs'> & { detectedAt: string })[];
  agent: {
    stateFound: boolean;
    lastSuccess: { snapshot: string; at: string; bytes: number } | null;
    lastError: { at: string; kind: string; message: string; snapshot: string | null } | null;
    lastSweepAt: string | null;
  };
}

const iso = (ms: number): string => new Date(ms).toISOString();
const named = (item: Timed | undefined): NamedTime | null => (item === undefined ? null : { name: item.name, time: iso(item.timeMs) });

export function buildStatusReport(inputs: StatusInputs): StatusReport {
  const { agentState: state } = inputs;
  const latestLocal = latestByTime([...inputs.local, ...inputs.settling]);
  const recordedConflicts = Object.values(state?.conflicts ?? {});
  const remote = inputs.remote.reachable ? inputs.remote.index : undefined;
  const picture = remote === undefined ? undefined : compareSides(inputs.local, remote, new Set(recordedConflicts.map((c) => c.snapshot)));
  return {
    location: inputs.location,
    backupDir: inputs.backupDir,
    stateDir: inputs.stateDir,
    remote: remoteSummary(inputs.remote),
    local: { count: inputs.local.length + inputs.settling.length, latest: named(latestLocal), settling: inputs.settling.map((s) => s.name).sort() },
    inSync: picture === undefined ? null : picture.inSync.sort(),
    pending: picture?.pending ?? null,
    onlyRemote: picture?.remoteOnly ?? null,
    newerRemote: remote === undefined ? null : remoteNewerThan(remote, latestLocal?.timeMs).map((s) => s.name),
    conflicts: recordedConflicts.map(({ detectedAtMs, ...rest }) => ({ ...rest, detectedAt: iso(detectedAtMs) })),
    agent: {
      stateFound: state !== undefined,
      lastSuccess: state?.lastSuccess === undefined ? null : { snapshot: state.lastSuccess.snapshot, at: iso(state.lastSuccess.atMs), bytes: state.lastSuccess.bytes },
      lastError:
        state?.lastError === undefined
          ? null
          : { at: iso(state.lastError.atMs), kind: state.lastError.kind, message: state.lastError.message, snapshot: state.lastError.snapshot ?? null },
      lastSweepAt: state?.lastSweep === undefined ? null : iso(state.lastSweep.atMs),
    },
  };
}

function remoteSummary(remote: StatusInputs['remote']): StatusReport['remote'] {
  if (!remote.reachable) return { reachable: false, state: remote.state, error: remote.error, hint: remote.hint ?? null, count: null, complete: null, latest: null };
  const { index } = remote;
  const complete = [...index.snapshots.values()].filter((s) => s.complete).length;
  return { reachable: true, state: 'reachable', error: null, hint: null, count: index.snapshots.size, complete, latest: named(chooseLatestRestorable(index)) };
}
