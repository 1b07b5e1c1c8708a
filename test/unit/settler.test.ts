import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import type { SnapshotStat } from '../../src/snapshot/scan.js';
import { Settler } from '../../src/watch/settler.js';
import { tempDir } from '../helpers/tmp.js';

const NAME = 'auto_20250101_000000';

/** Polls until `condition` holds, at most 5 s. */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 250 && !condition(); i += 1) await sleep(20);
  expect(condition()).toBe(true);
}

describe('Settler', () => {
  it('reports a snapshot settled once quiet, and a removal once however many events it produces', async () => {
    const dir = await tempDir('settler');
    const settled: SnapshotStat[] = [];
    const gone: string[] = [];
    const settler = new Settler({ backupDir: dir, settleMs: 100, now: Date.now, log: silentLogger, onSettled: (s) => settled.push(s), onGone: (n) => gone.push(n) });
    try {
      await mkdir(path.join(dir, NAME));
      await writeFile(path.join(dir, NAME, 'metadata.json'), '{}');
      settler.touch(NAME);
      await until(() => settled.length === 1);
      expect(settled[0]?.name).toBe(NAME);

      // A recursive delete: one event per file and directory.
      await rm(path.join(dir, NAME), { recursive: true });
      for (let i = 0; i < 3; i += 1) {
        settler.touch(NAME);
        await until(() => !settler.isSettling(NAME));
      }
      expect(gone).toEqual([NAME]);

      // The name comes back (a new backup in the same second) and is pruned again: a second report.
      await mkdir(path.join(dir, NAME));
      await writeFile(path.join(dir, NAME, 'metadata.json'), '{"again":true}');
      settler.touch(NAME);
      await until(() => settled.length === 2);
      await rm(path.join(dir, NAME), { recursive: true });
      settler.touch(NAME);
      await until(() => gone.length === 2);
      expect(gone).toEqual([NAME, NAME]);
    } finally {
      settler.stop();
    }
  });
});
