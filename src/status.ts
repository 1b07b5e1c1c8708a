import { chooseLatestRestorable, remoteNewerThan, type RemoteIndex } from './remote/remote-index.js';
import type { RemoteHealth } from './remote-health.js';
import { latestByTime } from './snapshot/naming.js';
import type { AgentState, ConflictRecord, Counters, ErrorRecord, UploadRecord } from './state/agent-state.js';
import type { SaveHealth } from './state/persisted.js';
import { compareSides, type LocalEntry } from './upload/compare.js';
import type { UploadJobs } from './upload/jobs.js';
import type { UploadProgress } from './upload/snapshot-uploader.js';
import type { StoredVerification } from './upload/stored-verification.js';

/** What memsync reports about itself; built from memory, never from a bucket listing per call. */
export interface AgentStatus {
  watching: boolean;
  remote: {
    available: boolean | undefined;
    lastOkAt: string | undefined;
    lastFailure: { at: string; message: string } | undefined;
    listedAt: string | undefined;
  };
  lastSuccess: (Omit<UploadRecord, 'atMs'> & { at: string }) | undefined;
  lastError: (Omit<ErrorRecord, 'atMs'> & { at: string }) | undefined;
  lastSweep: { at: string; durationMs: number; queued: number } | undefined;
  nextSweepAt: string | undefined;
  uploading: (UploadProgress & { percent: number })[];
  queueDepth: number;
  settling: number;
  local: { count: number; latest: { name: string; time: string } | undefined; pending: string[] };
  remoteSnapshots: { count: number; /** Of those, encrypted client-side. */ encrypted: number; latest: { name: string; time: string } | undefined; onlyRemote: string[]; newerThanLocal: string[] };
  conflicts: (Omit<ConflictRecord, 'detectedAtMs'> & { detectedAt: string })[];
  counters: Counters;
  /** Whether the state directory takes memsync's saves (agent id, counters, conflicts). */
  stateSaves: { ok: boolean; failures: number; lastFailure: { at: string; file: string; message: string } | undefined };
  /** How each stored object is proven to hold the bytes sent (by ETag, or read back under SSE-KMS), and whether copies are on for it. */
  verification: StoredVerification;
}

export interface StatusInputs {
  state: AgentState;
  stateSaves: SaveHealth;
  remote: RemoteIndex;
  local: ReadonlyMap<string, LocalEntry>;
  jobs: UploadJobs;
  settling: number;
  health: RemoteHealth;
  nextSweepMs: number | undefined;
  watching: boolean;
  verification: StoredVerification;
}

const iso = (ms: number | undefined): string | undefined => (ms === undefined || ms === 0 ? undefined : new Date(ms).toISOString());
/** Long name lists are cut; counts stay exact. */
const LIST_LIMIT = 100;

export function buildStatus(inputs: StatusInputs): AgentStatus {
  const { state, remote, local } = inputs;
  const picture = compareSides(local.values(), remote, new Set(Object.keys(state.conflicts)));
  const latestLocal = latestByTime(local.values());
  // The snapshot a download without a name would fetch, never an untimed or planted one.
  const latestRemote = chooseLatestRestorable(remote);
  const newerThanLocal = remoteNewerThan(remote, latestLocal?.timeMs)
    .map((s) => s.name)
    .slice(0, LIST_LIMIT);
  const health = inputs.health.snapshot();
  return {
    watching: inputs.watching,
    remote: {
      available: health.available,
      lastOkAt: iso(health.lastOkMs),
      lastFailure: health.lastFailure && { at: iso(health.lastFailure.atMs) ?? '', message: health.lastFailure.message },
      listedAt: iso(remote.listedAtMs),
    },
    lastSuccess: state.lastSuccess && {
      snapshot: state.lastSuccess.snapshot,
      at: iso(state.lastSuccess.atMs) ?? '',
      bytes: state.lastSuccess.bytes,
      bytesSent: state.lastSuccess.bytesSent,
      bytesCopied: state.lastSuccess.bytesCopied,
      bytesDelta: state.lastSuccess.bytesDelta,
      durationMs: state.lastSuccess.durationMs,
    },
    lastError: state.lastError && { at: iso(state.lastError.atMs) ?? '', message: state.lastError.message, kind: state.lastError.kind, snapshot: state.lastError.snapshot },
    lastSweep: state.lastSweep && { at: iso(state.lastSweep.atMs) ?? '', durationMs: state.lastSweep.durationMs, queued: state.lastSweep.queued },
    nextSweepAt: iso(inputs.nextSweepMs),
    uploading: inputs.jobs.active().map((p) => ({ ...p, percent: p.totalBytes === 0 ? 100 : Math.floor((p.sentBytes / p.totalBytes) * 100) })),
    queueDepth: inputs.jobs.queuedCount,
    settling: inputs.settling,
    local: {
      count: local.size,
      latest: latestLocal && { name: latestLocal.name, time: iso(latestLocal.timeMs) ?? '' },
      pending: picture.pending.slice(0, LIST_LIMIT),
    },
    remoteSnapshots: {
      count: remote.snapshots.size,
      encrypted: [...remote.snapshots.values()].filter((s) => s.encrypted).length,
      latest: latestRemote && { name: latestRemote.name, time: iso(latestRemote.timeMs) ?? '' },
      onlyRemote: picture.remoteOnly.slice(0, LIST_LIMIT),
      newerThanLocal,
    },
    conflicts: Object.values(state.conflicts).map(({ detectedAtMs, ...rest }) => ({ ...rest, detectedAt: iso(detectedAtMs) ?? '' })),
    counters: { ...state.counters },
    stateSaves: {
      ok: inputs.stateSaves.ok,
      failures: inputs.stateSaves.failures,
      lastFailure: inputs.stateSaves.lastFailure && { at: iso(inputs.stateSaves.lastFailure.atMs) ?? '', file: inputs.stateSaves.lastFailure.file, message: inputs.stateSaves.lastFailure.message },
    },
    verification: { ...inputs.verification },
  };
}
