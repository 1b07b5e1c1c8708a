// The API answers before the store is reached: a store that hangs for a minute of timeouts must
// not keep /healthz silent (a liveness probe would kill the container over and over).
import { mkdir, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildMemsync } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { PROBE_KEY_PREFIX } from '../../src/remote/conditional-writes.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import type { BodySource, PutOptions } from '../../src/remote/store.js';
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

/** Answers the start probe, then holds the conditional-write probe's first PUT (a request lost on the way) until released. */
class ProbeHangingStore extends MemoryRemoteStore {
  private held: Promise<void> | undefined;
  release: () => void = () => undefined;
  override async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
    if (key.startsWith(PROBE_KEY_PREFIX)) {
      this.held ??= new Promise<void>((resolve) => (this.release = resolve));
      await this.held;
    }
    return super.put(key, body, options);
  }
}

describe('start against a store whose conditional-write probe hangs', () => {
  it('watches after the wait, and uploads still wait for the probe', async () => {
    const config = await configIn('start-order-probe');
    const store = new ProbeHangingStore();
    const memsync = await buildMemsync(config, silentLogger, { store, startProbeWaitMs: 200 });
    try {
      await memsync.start();
      expect(memsync.agent?.status().watching).toBe(true);
      // A snapshot written now is not uploaded on a guess about the server.
      const dir = path.join(config.backupDir, 'auto_20250101_000000');
      await mkdir(dir);
      await writeFile(path.join(dir, 'metadata.json'), '{}');
      // Settled and handed to the upload, which waits for the probe's answer.
      await expect.poll(() => memsync.agent?.status().local.count, { timeout: 10_000 }).toBe(1);
      expect([...store.objects.keys()].filter((key) => key.startsWith('auto_'))).toEqual([]);
      store.release();
      await expect.poll(() => [...store.objects.keys()].some((key) => key.endsWith('.memsync-manifest.json')), { timeout: 10_000 }).toBe(true);
    } finally {
      store.release();
      await memsync.stop();
    }
  });
});
