import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { statAhead, statOrGone, type StatInOrder, type StatOrGone } from '../../src/snapshot/stat-ahead.js';
import type { SnapshotStat } from '../../src/snapshot/scan.js';
import { tempDir } from '../helpers/tmp.js';

const names = Array.from({ length: 10 }, (_, i) => `auto_20250101_0000${String(i).padStart(2, '0')}`);

function fakeStat(name: string): SnapshotStat {
  return { name, kind: 'directory', files: [], skipped: [], newestChangeMs: 0, timeMs: 0 };
}

/** A stat function that records which names it was asked for. */
function recordingStat(fail?: string): { asked: string[]; stat: (name: string) => Promise<StatOrGone> } {
  const asked: string[] = [];
  return {
    asked,
    stat: async (name) => {
      asked.push(name);
      if (name === fail) throw new AppError('local_io', `cannot read ${name}`);
      return fakeStat(name);
    },
  };
}

describe('statAhead', () => {
  it('gives every stat in the order of the names', async () => {
    const { stat } = recordingStat();
    const read: string[] = [];
    for await (const item of statAhead(names, 3, stat)) read.push(item.name === (item.stat as SnapshotStat).name ? item.name : 'mismatch');
    expect(read).toEqual(names);
  });

  it('takes at most `ahead` stats beyond those read, however slowly the reader goes', async () => {
    const { asked, stat } = recordingStat();
    const stats = statAhead(names, 3, stat);
    // Started before the first read, so the stats go on while the sweep waits for the listing.
    expect(asked).toEqual(names.slice(0, 3));
    let read = 0;
    for await (const item of stats) {
      read += 1;
      expect(item.stat).not.toBe('gone');
      expect(asked.length).toBeLessThanOrEqual(read + 3);
    }
    expect(asked).toEqual(names);
  });

  it('throws a failed stat when the reader reaches it, after the ones before it', async () => {
    const { stat } = recordingStat(names[4]);
    const read: string[] = [];
    const reading = (async () => {
      for await (const item of statAhead(names, 8, stat)) read.push(item.name);
    })();
    await expect(reading).rejects.toThrow(`cannot read ${names[4]}`);
    expect(read).toEqual(names.slice(0, 4));
  });

  it('reads nothing for no names', async () => {
    const items: StatInOrder[] = [];
    for await (const item of statAhead([], 4, recordingStat().stat)) items.push(item);
    expect(items).toEqual([]);
  });
});

describe('statOrGone', () => {
  it('stats a snapshot, and calls one removed since the listing gone', async () => {
    const backupDir = await tempDir('memsync-stat-ahead');
    await mkdir(path.join(backupDir, names[0] as string));
    await writeFile(path.join(backupDir, names[0] as string, 'config.json'), '{}');
    const present = await statOrGone(backupDir, names[0] as string);
    expect(present !== 'gone' && present.files.map((f) => f.path)).toEqual(['config.json']);
    await rm(path.join(backupDir, names[0] as string), { recursive: true });
    expect(await statOrGone(backupDir, names[0] as string)).toBe('gone');
  });
});
