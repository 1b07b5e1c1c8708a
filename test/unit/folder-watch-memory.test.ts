// Snapshots come and go all day: watching inside each one while it settles must cost nothing once
// it is gone. An earlier version kept a chokidar instance per folder, and the agent's memory grew
// by about 100 MiB per 200 snapshots created and pruned, closed watches included.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { BackupWatcher } from '../../src/watch/watcher.js';
import { tempDir } from '../helpers/tmp.js';

const MIB = 1024 * 1024;

/** A full collection before each reading, so what is measured is what is still held. */
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;
const name = (round: number, i: number): string => `auto_2025010${round}_${String(i).padStart(6, '0')}`;

describe('watching inside snapshots that come and go', () => {
  it('does not grow with the snapshots created and removed', async () => {
    const backupDir = await tempDir('folder-watch-memory');
    let activity = 0;
    const watcher = new BackupWatcher({ backupDir, log: silentLogger, onActivity: () => void (activity += 1) });
    await watcher.start();
    // As the service does: a new folder, its files, and the oldest pruned once 10 are kept.
    const rssAfter = async (round: number): Promise<number> => {
      for (let i = 0; i < 200; i += 1) {
        const folder = path.join(backupDir, name(round, i));
        mkdirSync(folder);
        for (const file of ['metadata.json', 'config.json', 'index.faiss']) writeFileSync(path.join(folder, file), 'x'.repeat(1000));
        await new Promise((resolve) => setTimeout(resolve, 5));
        if (i >= 10) rmSync(path.join(backupDir, name(round, i - 10)), { recursive: true });
      }
      await expect.poll(() => watcher.watchingInside, { timeout: 10_000 }).toBe(10 * (round + 1));
      collectGarbage();
      return process.memoryUsage().rss;
    };
    try {
      await rssAfter(0);
      const warm = await rssAfter(1);
      const later = await rssAfter(2);
      const last = await rssAfter(3);
      expect(activity).toBeGreaterThan(800);
      // 400 more snapshots: a leak of a chokidar instance each (hundreds of KiB) shows as 100 MiB and more.
      expect(Math.max(later, last) - warm).toBeLessThan(32 * MIB);
    } finally {
      await watcher.stop();
    }
  });
});
