// `npm run demo` as a newcomer runs it: the command the npm script runs, in a process group of
// its own, stopped with SIGINT as Ctrl-C in a terminal would. It uses its own in-process S3
// endpoint, not the test run's server.
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
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
  it('starts S3, the stand-in service and memsync; backups arrive in the bucket; Ctrl-C stops everything with exit 0', async () => {
    const dir = await tempDir('memsync-demo');
    const demo = startAgent({
      label: 'demo',
      nodeArgs: await demoCommand(),
      detached: true,
      env: { DEMO_DIR: dir, DEMO_S3_PORT: '0', CLOUD_SYNC_PORT: '0', DEMO_BACKUP_EVERY_MS: '700', LOG_FORMAT: 'json' },
    });
    const ready = await demo.waitFor('demo ready', {}, 60_000);
    const api = String(ready.api);
    expect(demo.otherStdout.join('\n')).toContain(`curl -s ${api}/sync/status`);

    const first = await demo.waitFor('snapshot uploaded', {}, 30_000);
    await demo.waitFor('snapshot uploaded', {}, 30_000, demo.logs.indexOf(first) + 1);
    const status = (await (await fetch(`${api}/sync/status`)).json()) as { enabled: boolean; remoteSnapshots: { count: number }; lastSuccess?: { snapshot: string } };
    expect(status.enabled).toBe(true);
    expect(status.remoteSnapshots.count).toBeGreaterThanOrEqual(2);
    expect(status.lastSuccess?.snapshot).toMatch(/^auto_\d{8}_\d{6}$/);

    // The bucket as s3rver keeps it on disk: each uploaded snapshot with its manifest.
    const inBucket = await readdir(path.join(dir, 's3', 'memsync-demo', 'memories'));
    expect(inBucket).toContain(String(first.snapshot));
    const files = await readdir(path.join(dir, 's3', 'memsync-demo', 'memories', String(first.snapshot)));
    expect(files.some((f) => f.startsWith('.memsync-manifest.json'))).toBe(true);

    const exit = await demo.stop(15_000, 'SIGINT');
    expect(exit, demo.tail()).toMatchObject({ code: 0, signal: null });
    expect(demo.find('demo stopped')).toHaveLength(1);
    expect(demo.logs.filter((e) => e.level === 'error')).toEqual([]);
    await expect(fetch(`${api}/healthz`)).rejects.toThrow();
  });
});
