// The API answers before the store is reached: a store that hangs for a minute of timeouts must
// not keep /healthz silent (a liveness probe would kill the container over and over).
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildMemsync } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { tempDir } from '../helpers/tmp.js';

class HangingStore extends MemoryRemoteStore {
  release: () => void = () => undefined;
  override checkAccess(): Promise<void> {
    return new Promise((resolve) => {
      this.release = resolve;
    });
  }
}

/** An enabled configuration with its own backup directory, on a port of its own. */
async function configIn(dirName: string): Promise<Config> {
  const root = await tempDir(dirName);
  await mkdir(path.join(root, 'backups'));
  return loadConfig({
    CLOUD_SYNC_ENABLED: 'true',
    CLOUD_SYNC_BUCKET: 'start-order',
    CLOUD_SYNC_BACKUP_DIR: path.join(root, 'backups'),
    CLOUD_SYNC_STATE_DIR: path.join(root, 'state'),
    CLOUD_SYNC_ENDPOINT: 'http://127.0.0.1:9',
    CLOUD_SYNC_ACCESS_KEY: 'test',
    CLOUD_SYNC_SECRET_KEY: 'test',
    CLOUD_SYNC_PORT: '0',
  });
}

describe('start order', () => {
  it('answers /healthz while the store has not answered the start probe, and /readyz says it is not ready', async () => {
    const config = await configIn('start-order');
    const store = new HangingStore();
    const memsync = await buildMemsync(config, silentLogger, { store });
    const starting = memsync.start();
    try {
      await expect.poll(() => memsync.server.server.listening, { timeout: 5_000 }).toBe(true);
      const port = (memsync.server.server.address() as AddressInfo).port;
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ ready: false, checks: { watcher: false } });
    } finally {
      store.release();
      await starting;
      await memsync.stop();
    }
  });
});

describe('start against a store that does not answer', () => {
  it('watches without it after the wait: start resolves and the sidecar readiness is 200', async () => {
    const config = await configIn('start-order-wait');
    const store = new HangingStore();
    const memsync = await buildMemsync(config, silentLogger, { store, startProbeWaitMs: 200 });
    try {
      // Resolves although the store never answered.
      await memsync.start();
      const port = (memsync.server.server.address() as AddressInfo).port;
      const own = await fetch(`http://127.0.0.1:${port}/readyz?exclude=remote`);
      expect(await own.json()).toMatchObject({ ready: true, checks: { watcher: true } });
      expect(own.status).toBe(200);
    } finally {
      store.release();
      await memsync.stop();
    }
  });
});
