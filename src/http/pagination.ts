import { AppError } from '../errors.js';
import type { RemoteIndex } from '../remote/remote-index.js';
import { compareNewestFirst, isSnapshotName } from '../snapshot/naming.js';

/**
 * Keyset pagination over the remote index, newest first. The cursor is the (time, name) of
 * the last item served, so pages stay consistent while snapshots are added.
 */
export function encodeCursor(timeMs: number, name: string): string {
  return Buffer.from(JSON.stringify([timeMs, name]), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): { timeMs: number; name: string } {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(parsed) && parsed.length === 2 && Number.isFinite(parsed[0]) && typeof parsed[1] === 'string' && isSnapshotName(parsed[1])) {
      return { timeMs: parsed[0] as number, name: parsed[1] };
    }
  } catch {
    // fall through
  }
  throw new AppError('bad_input', 'invalid cursor; use the nextCursor value of a previous answer');
}

export function pageSnapshots(index: RemoteIndex, limit: number, cursor: string | undefined) {
  const sorted = [...index.snapshots.values()].sort(compareNewestFirst);
  const after = cursor === undefined ? undefined : decodeCursor(cursor);
  const start = after === undefined ? 0 : sorted.findIndex((s) => compareNewestFirst(s, { name: after.name, timeMs: after.timeMs }) > 0);
  const page = start < 0 ? [] : sorted.slice(start, start + limit);
  const last = page[page.length - 1];
  const more = start >= 0 && start + limit < sorted.length;
  return {
    snapshots: page.map((s) => ({ name: s.name, time: new Date(s.timeMs).toISOString(), files: s.fileCount, bytes: s.bytes, complete: s.complete, verified: s.complete, encrypted: s.encrypted })),
    nextCursor: more && last !== undefined ? encodeCursor(last.timeMs, last.name) : null,
    total: sorted.length,
    listedAt: index.listedAtMs === 0 ? null : new Date(index.listedAtMs).toISOString(),
  };
}
