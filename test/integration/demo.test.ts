// `npm run demo` as a newcomer runs it: the command the npm script runs, in a process group of
// its own, stopped with SIGINT as Ctrl-C in a terminal would. memsync runs as its own process
// and stores into a directory under the demo's, not on the test run's S3 server.
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MANIFEST_FILE_NAME } from '../../src/snapshot/manifest.js';
import { startAgent } from '../helpers/agent-process.js';
import { tempDir } from '../helpers/tmp.js';

const PROJECT_DIR = path.resolve(import.meta.dirname, '../..');

async function demoCommand(): Promise<string[]> {
  const scripts = (JSON.parse(await readFile(path.join(PROJECT_DIR, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  const words = (scripts.demo ?? '').split(/\s+/);
  expect(words[0], 'the demo script runs node').toBe('node');
  return words.slice(1);
}

describe('npm run demo', () => {
  it('starts the stand-in service and memsync as its own process; backups arrive in the storage directory; Ctrl-C stops everything with exit 0', async () => {
    const dir = await tempDir('memsync-demo');
    const demo = startAgent({
      label: 'demo',
      nodeArgs: await demoCommand(),
      detached: true,
      env: { DEMO_DIR: dir, CLOUD_SYNC_PORT: '0', DEMO_BACKUP_EVERY_MS: '700', LOG_FORMAT: 'json' },
    });
    const ready = await demo.waitFor('demo ready', {}, 60_000);
    const api = String(ready.api);
    const storage = path.join(dir, 'storage', 'memories');
    expect(ready).toMatchObject({ provider: 'fs', storage: `${storage}${path.sep}` });
    // memsync is a process of its own, and the banner says plainly where the snapshots go.
    expect(ready.memsyncPid).not.toBe(demo.pid);
    expect(demo.find('memsync starting')[0]?.pid).toBe(ready.memsyncPid);
    const banner = demo.otherStdout.join('\n');
    expect(banner).toContain(`curl -s ${api}/sync/status`);
    expect(banner).toContain(`stores each backup in a plain directory on this disk:\n    ${storage}${path.sep}`);
    expect(banner).toContain('CLOUD_SYNC_PROVIDER=fs');

    const first = await demo.waitFor('snapshot uploaded', {}, 30_000);
    await demo.waitFor('snapshot uploaded', {}, 30_000, demo.logs.indexOf(first) + 1);
    const status = (await (await fetch(`${api}/sync/status`)).json()) as { enabled: boolean; remoteSnapshots: { count: number }; lastSuccess?: { snapshot: string } };
    expect(status.enabled).toBe(true);
    expect(status.remoteSnapshots.count).toBeGreaterThanOrEqual(2);
    expect(status.lastSuccess?.snapshot).toMatch(/^auto_\d{8}_\d{6}$/);

    // The storage directory holds each uploaded snapshot as plain files, with its manifest.
    expect(await readdir(storage)).toContain(String(first.snapshot));
    const files = await readdir(path.join(storage, String(first.snapshot)));
    expect(files).toEqual(expect.arrayContaining([MANIFEST_FILE_NAME, 'metadata.json', 'config.json']));
    const backupCopy = path.join(dir, 'backups', String(first.snapshot), 'config.json');
    const stored = await readFile(path.join(storage, String(first.snapshot), 'config.json'));
    // The service prunes to 10; a pruned backup is no longer there to compare with.
    const local = await readFile(backupCopy).catch(() => undefined);
    if (local !== undefined) expect(stored.equals(local)).toBe(true);

    const exit = await demo.stop(30_000, 'SIGINT');
    expect(exit, demo.tail()).toMatchObject({ code: 0, signal: null });
    expect(demo.find('demo stopped')).toHaveLength(1);
    expect(demo.find('stopped').length, 'memsync stopped gracefully').toBe(1);
    expect(demo.logs.filter((e) => e.level === 'error')).toEqual([]);
    await expect(fetch(`${api}/healthz`)).rejects.toThrow();
  });
});
