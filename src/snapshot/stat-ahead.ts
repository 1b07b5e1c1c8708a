import { isAppError } from '../errors.js';
import { statSnapshot, type SnapshotStat } from './scan.js';

/**
 * The stats a sweep walks through, in the order of its names, taken a few ahead of the reader.
 * At most `ahead` stats are taken and not yet read: a sweep over 10,000 snapshots holds a
 * window of stats, never all of them, however far the reader falls behind (while it waits
 * for the bucket's listing, say).
 */

/** 'gone': removed since the directory was listed. */
export type StatOrGone = SnapshotStat | 'gone';

export interface StatInOrder {
  name: string;
  stat: StatOrGone;
}

/**
 * Starts the first `ahead` stats at once (before the first read), then one more for each
 * stat read. A failed stat is thrown when the reader reaches it; rejections are marked
 * handled here, so a reader that stops early leaves none unhandled. Read once.
 */
export function statAhead(names: readonly string[], ahead: number, statOne: (name: string) => Promise<StatOrGone>): AsyncIterable<StatInOrder> {
  const window: Promise<StatOrGone>[] = [];
  let started = 0;
  const fill = (): void => {
    while (started < names.length && window.length < ahead) {
      const stat = statOne(names[started] as string);
      stat.catch(() => undefined);
      window.push(stat);
      started += 1;
    }
  };
  fill();
  return {
    async *[Symbol.asyncIterator]() {
      for (const name of names) {
        const next = window.shift();
        if (next === undefined) return;
        fill();
        yield { name, stat: await next };
      }
    },
  };
}

/** statSnapshot, with a snapshot removed meanwhile as 'gone' rather than an error. */
export async function statOrGone(backupDir: string, name: string): Promise<StatOrGone> {
  try {
    return await statSnapshot(backupDir, name);
  } catch (error) {
    if (isAppError(error, 'snapshot_gone')) return 'gone';
    throw error;
  }
}
