// The watcher's promise: every top-level name that appears reaches onActivity, however briefly it
// existed, and it watches inside only the snapshots it is asked to (those not yet uploaded).
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { BackupWatcher } from '../../src/watch/watcher.js';
import { inotifyWatchCount } from '../helpers/inotify.js';
import { tempDir } from '../helpers/tmp.js';

const watchers: BackupWatcher[] = [];
afterEach(async () => {
  for (const watcher of watchers.splice(0)) await watcher.stop();
});

/** A started watcher over a fresh backup directory, and the activity it reports, by name. */
async function watched(existing: string[] = [], watchAfterChangeMs?: number): Promise<{ dir: string; watcher: BackupWatcher; activity: Map<string, number> }> {
  const dir = await tempDir('watcher');
  for (const name of existing) {
    await mkdir(path.join(dir, name));
    await writeFile(path.join(dir, name, 'metadata.json'), '{}');
  }
  const activity = new Map<string, number>();
  const watcher = new BackupWatcher({
    backupDir: dir,
    log: silentLogger,
    onActivity: (name) => activity.set(name, (activity.get(name) ?? 0) + 1),
    ...(watchAfterChangeMs === undefined ? {} : { watchAfterChangeMs }),
  });
  watchers.push(watcher);
  await watcher.start();
  return { dir, watcher, activity };
}

const snapshotName = (i: number): string => `auto_20250101_${String(i).padStart(6, '0')}`;

describe('BackupWatcher', () => {
  it('reports every folder that appeared, also one removed again within milliseconds', async () => {
    const { dir, activity } = await watched();
    const names = Array.from({ length: 200 }, (_, i) => snapshotName(i));
    for (const name of names) {
      await mkdir(path.join(dir, name));
      await rm(path.join(dir, name), { recursive: true });
    }
    await expect.poll(() => names.filter((name) => !activity.has(name)), { timeout: 5_000 }).toEqual([]);
  });

  it('holds one watch for the backup directory however many snapshots it holds, until asked to watch inside one', async () => {
    const names = Array.from({ length: 50 }, (_, i) => snapshotName(i));
    const before = inotifyWatchCount();
    const { watcher } = await watched(names);
    expect(inotifyWatchCount() - before).toBe(1);
    expect(watcher.watchingInside).toBe(0);

    await watcher.watchInside(snapshotName(7));
    // The folder: one watch per directory below the backup directory, none per file.
    expect(inotifyWatchCount() - before).toBe(2);
    watcher.stopWatchingInside(snapshotName(7));
    await expect.poll(() => inotifyWatchCount() - before).toBe(1);
    expect(watcher.watchingInside).toBe(0);
  });

  it('sees a file written into a snapshot it watches inside, and stops when told the snapshot is uploaded', async () => {
    const name = snapshotName(1);
    const { dir, watcher, activity } = await watched([name]);
    await watcher.watchInside(name);
    expect(watcher.isWatchingInside(name)).toBe(true);
    await writeFile(path.join(dir, name, 'memories.json'), '[]');
    await expect.poll(() => activity.get(name) ?? 0).toBeGreaterThan(0);

    watcher.stopWatchingInside(name);
    expect(watcher.isWatchingInside(name)).toBe(false);
  });

  it('watches an uploaded snapshot inside only until it has been quiet for the window after its last change', async () => {
    const [quiet, recent] = [snapshotName(5), snapshotName(6)];
    const { watcher } = await watched([quiet, recent], 300);
    await watcher.watchInside(quiet);
    watcher.releaseInside(quiet, Date.now() - 300);
    expect(watcher.isWatchingInside(quiet)).toBe(false);
    await watcher.watchInside(recent);
    watcher.releaseInside(recent, Date.now());
    expect(watcher.isWatchingInside(recent)).toBe(true);
    await expect.poll(() => watcher.isWatchingInside(recent)).toBe(false);
  });

  it('watches inside a new folder from its first appearance, and again after it is removed and created anew', async () => {
    const name = snapshotName(2);
    const { dir, watcher, activity } = await watched();
    await mkdir(path.join(dir, name));
    await expect.poll(() => watcher.isWatchingInside(name)).toBe(true);
    await watcher.watchInside(name);
    const afterCreate = activity.get(name) ?? 0;
    await writeFile(path.join(dir, name, 'metadata.json'), '{}');
    await expect.poll(() => activity.get(name) ?? 0).toBeGreaterThan(afterCreate);

    // The service rewrites a snapshot of the same second by removing and recreating its folder.
    await rm(path.join(dir, name), { recursive: true });
    await mkdir(path.join(dir, name));
    await expect.poll(() => watcher.isWatchingInside(name)).toBe(true);
    await watcher.watchInside(name);
    const afterRecreate = activity.get(name) ?? 0;
    await writeFile(path.join(dir, name, 'config.json'), '{}');
    await expect.poll(() => activity.get(name) ?? 0).toBeGreaterThan(afterRecreate);
  });

  it('reports a write to a single-file snapshot at the top level', async () => {
    const name = 'auto_20250101_000003.json';
    const { dir, activity } = await watched();
    await writeFile(path.join(dir, name), '{}');
    await expect.poll(() => activity.get(name) ?? 0).toBeGreaterThan(0);
  });

  it('ignores dotfiles and temporary names, where restores stage their files', async () => {
    const { dir, activity } = await watched();
    await mkdir(path.join(dir, '.memsync-restore-x'));
    await writeFile(path.join(dir, '.memsync-restore-x', 'a'), 'a');
    await mkdir(path.join(dir, snapshotName(4)));
    await expect.poll(() => activity.has(snapshotName(4))).toBe(true);
    expect([...activity.keys()]).toEqual([snapshotName(4)]);
  });
});
