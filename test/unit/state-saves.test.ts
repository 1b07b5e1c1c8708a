import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildMemsync, type Memsync } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { isAppError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { writeFileAtomic } from '../../src/state/atomic-file.js';
import { tempDir } from '../helpers/tmp.js';

const running: Memsync[] = [];
afterEach(async () => {
  for (const memsync of running.splice(0)) await memsync.stop();
});

/** A state directory whose writes can be refused on demand, as a read-only or full disk would. */
function switchableWrites() {
  const control = { refuse: false, attempts: 0 };
  const write = async (filePath: string, content: string): Promise<void> => {
    control.attempts += 1;
    if (control.refuse) throw Object.assign(new Error(`EROFS: read-only file system, open '${filePath}'`), { code: 'EROFS' });
    await writeFileAtomic(filePath, content);
  };
  return { control, write };
}

async function setup() {
  const root = await tempDir('memsync-state-saves');
  const backupDir = path.join(root, 'backups');
  const stateDir = path.join(root, 'state');
  await mkdir(backupDir);
  const config = loadConfig({
    CLOUD_SYNC_ENABLED: 'true',
    CLOUD_SYNC_BUCKET: 'state-saves',
    CLOUD_SYNC_BACKUP_DIR: backupDir,
    CLOUD_SYNC_STATE_DIR: stateDir,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    CLOUD_SYNC_S3_ENDPOINT: 'http://127.0.0.1:9',
  });
  return { config, stateDir };
}

describe('state directory that refuses writes', () => {
  it('refuses to start with a new agent id it cannot save, naming the directory', async () => {
    const { config, stateDir } = await setup();
    const { control, write } = switchableWrites();
    control.refuse = true;
    const attempt = buildMemsync(config, silentLogger, { store: new MemoryRemoteStore(), writeStateFile: write });
    await expect(attempt).rejects.toSatisfy((error: unknown) => isAppError(error, 'config') && error.message.includes(`CLOUD_SYNC_STATE_DIR=${stateDir}`) && error.message.includes('EROFS'));
  });

  it('keeps running with an id already on disk, and reports failing saves in status, readiness and metrics until they recover', async () => {
    const { config, stateDir } = await setup();
    const first = await buildMemsync(config, silentLogger, { store: new MemoryRemoteStore() });
    await first.stop();
    const savedId = (JSON.parse(await readFile(path.join(stateDir, 'state.json'), 'utf8')) as { agentId: string }).agentId;

    const { control, write } = switchableWrites();
    control.refuse = true;
    const memsync = await buildMemsync(config, silentLogger, { store: new MemoryRemoteStore(), writeStateFile: write });
    running.push(memsync);
    await memsync.start({ listen: false });
    expect(memsync.agent?.status().stateSaves).toMatchObject({ ok: false, failures: 1, lastFailure: { file: path.join(stateDir, 'state.json') } });
    expect(memsync.agent?.status().stateSaves.lastFailure?.message).toContain('EROFS');

    const ready = await memsync.server.inject({ url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toMatchObject({ ready: false, checks: { state: false } });
    const status = await memsync.server.inject({ url: '/sync/status' });
    expect(status.json()).toMatchObject({ stateSaves: { ok: false } });
    expect((await memsync.server.inject({ url: '/metrics' })).body).toMatch(/^memsync_state_saved 0$/m);

    // A failed save is retried on its own: no new change is needed for the state to reach the disk.
    control.refuse = false;
    await expect.poll(async () => (await memsync.server.inject({ url: '/metrics' })).body, { timeout: 10_000 }).toMatch(/^memsync_state_saved 1$/m);
    expect((JSON.parse(await readFile(path.join(stateDir, 'state.json'), 'utf8')) as { agentId: string }).agentId).toBe(savedId);
  });
});
