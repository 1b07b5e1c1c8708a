import { listRemoteIndex, type RemoteIndex } from '../../remote/remote-index.js';
import { compareNewestFirst } from '../../snapshot/naming.js';
import type { Command } from '../args.js';
import type { CommandContext } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { formatBytes, formatTime, renderTable } from '../format.js';

/** `memsync snapshots`: the bucket's snapshots, from one listing (the agent's listRemoteIndex). */

export interface SnapshotRow {
  name: string;
  time: string;
  files: number;
  bytes: number;
  /** memsync's manifest is present: every file verified, SHA-256 known. */
  complete: boolean;
  /** Encrypted client-side: restoring it needs the key it was uploaded with. */
  encrypted: boolean;
}

export interface SnapshotList {
  snapshots: SnapshotRow[];
  total: number;
  listedAt: string | null;
}

/** Newest first by time, at most `limit`. Pure; the same fields /sync/snapshots answers with. */
export function snapshotList(index: RemoteIndex, limit: number | undefined): SnapshotList {
  const sorted = [...index.snapshots.values()].sort(compareNewestFirst);
  return {
    snapshots: sorted.slice(0, limit ?? sorted.length).map((s) => ({ name: s.name, time: new Date(s.timeMs).toISOString(), files: s.fileCount, bytes: s.bytes, complete: s.complete, encrypted: s.encrypted })),
    total: sorted.length,
    listedAt: index.listedAtMs === 0 ? null : new Date(index.listedAtMs).toISOString(),
  };
}

export async function runSnapshots(command: Extract<Command, { name: 'snapshots' }>, context: CommandContext): Promise<number> {
  const list = snapshotList(await listRemoteIndex(context.store, context.now), command.limit);
  if (command.json) {
    context.out(JSON.stringify(list, null, 2));
    return EXIT.ok;
  }
  if (list.total === 0) {
    context.out(`no snapshots in ${context.store.location}`);
    return EXIT.ok;
  }
  const rows = list.snapshots.map((s) => [s.name, formatTime(Date.parse(s.time)), String(s.files), formatBytes(s.bytes), `${s.complete ? 'complete' : 'unverified'}${s.encrypted ? ', encrypted' : ''}`]);
  context.out(renderTable(['NAME', 'TIME (UTC)', 'FILES', 'SIZE', 'STATE'], rows, ['left', 'left', 'right', 'right', 'left']));
  const shown = list.snapshots.length < list.total ? `${list.snapshots.length} of ${list.total}` : `${list.total}`;
  context.out(`${shown} snapshot${list.total === 1 ? '' : 's'} in ${context.store.location}`);
  return EXIT.ok;
}
