// What the requests of a burst run went to: per snapshot name, against what the bench knows of
// each name (when it was removed locally, whether memsync reported it uploaded, what its files
// weigh). Pure: the case reads the server's log (rgw-requests.ts) and hands the lines in.
import { snapshotOf, type RgwRequest } from './rgw-requests.js';

export interface BurstSnapshot {
  /** Bytes of each file as written, by path inside the snapshot. */
  fileBytes: Map<string, number>;
  /** Epoch ms when the service's prune had removed the folder; undefined while it exists. */
  removedAtMs: number | undefined;
  /** Whether memsync logged 'snapshot uploaded' for it. */
  uploaded: boolean;
}

export interface RequestTally {
  requests: number;
  /** Bytes of the file bodies PUT (from the sizes written; manifests and claims are not counted). */
  fileBytesPut: number;
  /** Requests by kind ("PUT file", "GET list", "HEAD claim", ...). */
  byKind: Map<string, number>;
}

export interface BurstAccount {
  total: RequestTally;
  /** Requests about no single snapshot (the bucket's listing, probes). */
  other: RequestTally;
  /** Snapshots memsync completed remotely. */
  uploaded: RequestTally;
  /** Snapshots pruned locally before memsync completed them remotely. */
  prunedBeforeComplete: RequestTally & { snapshots: number; snapshotsWithRequests: number };
  /** Requests started after their snapshot had been removed locally. */
  afterRemoval: RequestTally & { snapshots: number; delaysMs: number[] };
}

function tally(): RequestTally {
  return { requests: 0, fileBytesPut: 0, byKind: new Map() };
}

/** "PUT file", "HEAD manifest", "GET list", ...: the method and what under the snapshot it touched. */
export function requestKind(request: RgwRequest, prefix: string): string {
  if (request.key === undefined) return `${request.method} list`;
  const relative = request.key.startsWith(prefix) ? request.key.slice(prefix.length).split('/').slice(1).join('/') : '';
  const what = relative.startsWith('.memsync-manifest') ? 'manifest' : relative === '.memsync-claim' ? 'claim' : relative === '.memsync-signatures' ? 'signatures' : relative === '' ? 'other' : 'file';
  const multipart = /[?&](uploads|uploadId)/.test(request.query) ? ' (multipart)' : '';
  return `${request.method} ${what}${multipart}`;
}

function add(into: RequestTally, kind: string, fileBytes: number): void {
  into.requests += 1;
  into.fileBytesPut += fileBytes;
  into.byKind.set(kind, (into.byKind.get(kind) ?? 0) + 1);
}

export function accountBurst(requests: readonly RgwRequest[], prefix: string, snapshots: ReadonlyMap<string, BurstSnapshot>): BurstAccount {
  const account: BurstAccount = {
    total: tally(),
    other: tally(),
    uploaded: tally(),
    prunedBeforeComplete: { ...tally(), snapshots: 0, snapshotsWithRequests: 0 },
    afterRemoval: { ...tally(), snapshots: 0, delaysMs: [] },
  };
  const withRequests = new Set<string>();
  const afterRemovalNames = new Set<string>();
  for (const request of requests) {
    const name = snapshotOf(request, prefix);
    const kind = requestKind(request, prefix);
    const snapshot = name === undefined ? undefined : snapshots.get(name);
    const file = snapshot === undefined || request.key === undefined || request.method !== 'PUT' ? undefined : request.key.slice(prefix.length + (name?.length ?? 0) + 1);
    const fileBytes = file === undefined ? 0 : (snapshot?.fileBytes.get(file) ?? 0);
    add(account.total, kind, fileBytes);
    if (name === undefined || snapshot === undefined) {
      add(account.other, kind, fileBytes);
      continue;
    }
    if (snapshot.uploaded) add(account.uploaded, kind, fileBytes);
    else if (snapshot.removedAtMs !== undefined) {
      add(account.prunedBeforeComplete, kind, fileBytes);
      withRequests.add(name);
    }
    if (snapshot.removedAtMs !== undefined && request.startedAtMs > snapshot.removedAtMs) {
      add(account.afterRemoval, kind, fileBytes);
      account.afterRemoval.delaysMs.push(request.startedAtMs - snapshot.removedAtMs);
      afterRemovalNames.add(name);
    }
  }
  account.prunedBeforeComplete.snapshots = [...snapshots.values()].filter((s) => !s.uploaded && s.removedAtMs !== undefined).length;
  account.prunedBeforeComplete.snapshotsWithRequests = withRequests.size;
  account.afterRemoval.snapshots = afterRemovalNames.size;
  return account;
}

/** "12 (PUT file 9, HEAD claim 3)": a tally in one phrase. */
export function describeTally(t: RequestTally): string {
  const kinds = [...t.byKind.entries()].sort((a, b) => b[1] - a[1]).map(([kind, n]) => `${kind} ${n}`);
  return `${t.requests}${kinds.length === 0 ? '' : ` (${kinds.join(', ')})`}`;
}
