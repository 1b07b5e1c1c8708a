// memsync built in the test process by buildMemsync (no listening) against its own bucket on
// the test run's S3 server, optionally through another store (a fault proxy, a wrapper). Every
// wait is bounded; cleanup stops memsync before the bucket is emptied.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { buildMemsync, type BuildOptions, type Memsync } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import type { RemoteStore } from '../../src/remote/store.js';
import { createTestBucket, emptyAndDeleteBucket, s3ClientFor } from './s3-fixture.js';
import { s3Env, testServer } from './s3.js';
import { tempDir } from './tmp.js';

export const PREFIX = 'memories/';
export const FAST_RETRY = { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 };
/** A cron expression that never fires during a test run. */
const NEVER_SOON = '0 0 1 1 *';

export interface EmbeddedWorld {
  bucket: string;
  backupDir: string;
  stateDir: string;
  client: S3Client;
  /** Builds and starts memsync; `store` replaces the S3 store built from the configuration. */
  start(extraEnv?: Record<string, string>, store?: (config: Config) => RemoteStore, options?: BuildOptions): Promise<Memsync>;
  /** Stops one memsync started here (a restart: start again afterwards). */
  stop(memsync: Memsync): Promise<void>;
  /** Registers cleanup work run after the test, after memsync stopped. */
  onCleanup(close: () => Promise<void>): void;
  /** Every key under the prefix, relative to it. */
  keys(): Promise<string[]>;
}

/** Registers the hooks of a test file and returns its world, filled in before each test. */
export function useEmbeddedMemsync(label: string): EmbeddedWorld {
  const running: Memsync[] = [];
  const closers: (() => Promise<void>)[] = [];
  let env: Record<string, string> = {};
  const world = {
    bucket: '',
    backupDir: '',
    stateDir: '',
    client: undefined as unknown as S3Client,
    async start(extraEnv: Record<string, string> = {}, store?: (config: Config) => RemoteStore, options: BuildOptions = {}): Promise<Memsync> {
      const config = loadConfig({ ...env, ...extraEnv });
      const memsync = await buildMemsync(config, silentLogger, { retry: FAST_RETRY, ...(store === undefined ? {} : { store: store(config) }), ...options });
      running.push(memsync);
      await memsync.start({ listen: false });
      return memsync;
    },
    async stop(memsync: Memsync): Promise<void> {
      running.splice(running.indexOf(memsync), 1);
      await memsync.stop();
    },
    onCleanup(close: () => Promise<void>): void {
      closers.push(close);
    },
    async keys(): Promise<string[]> {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await world.client.send(new ListObjectsV2Command({ Bucket: world.bucket, Prefix: PREFIX, ContinuationToken: token }));
        for (const object of page.Contents ?? []) keys.push((object.Key ?? '').slice(PREFIX.length));
        token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
      return keys.sort();
    },
  };
  beforeAll(() => {
    world.client = s3ClientFor(testServer());
  });
  afterAll(() => world.client.destroy());
  beforeEach(async () => {
    const server = testServer();
    world.bucket = await createTestBucket(server, label);
    const root = await tempDir(`memsync-${label}`);
    world.backupDir = path.join(root, 'backups');
    world.stateDir = path.join(root, 'state');
    await mkdir(world.backupDir);
    env = {
      ...s3Env(server, world.bucket),
      CLOUD_SYNC_PREFIX: PREFIX,
      CLOUD_SYNC_BACKUP_DIR: world.backupDir,
      CLOUD_SYNC_STATE_DIR: world.stateDir,
      CLOUD_SYNC_SETTLE_MS: '200',
      CLOUD_SYNC_SHUTDOWN_TIMEOUT_MS: '2000',
      CLOUD_SYNC_SCHEDULE: NEVER_SOON,
    };
  });
  afterEach(async () => {
    for (const memsync of running.splice(0)) await memsync.stop();
    for (const close of closers.splice(0)) await close();
    await emptyAndDeleteBucket(testServer(), world.bucket);
  });
  return world;
}

/** Writes a snapshot folder into the backup directory. */
export async function writeSnapshot(backupDir: string, name: string, files: Record<string, string>): Promise<void> {
  const dir = path.join(backupDir, name);
  await mkdir(dir, { recursive: true });
  for (const [file, content] of Object.entries(files)) await writeFile(path.join(dir, file), content);
}

/** Polls `probe` until it returns a value; throws, naming `what`, after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The parts of /sync/status these tests read. */
export interface StatusBody {
  remote: { available: boolean | undefined };
  lastSuccess?: { snapshot: string };
  lastError?: { snapshot?: string; kind: string; message: string };
  counters: { prunedBeforeUpload: number; uploadFailures: number; sweeps: number };
  conditionalWrites: string;
}

export async function statusOf(memsync: Memsync): Promise<StatusBody> {
  return (await memsync.server.inject({ url: '/sync/status' })).json() as StatusBody;
}

/** A store that behaves like `real` except for the methods given. */
export function wrapStore(real: RemoteStore, overrides: Partial<RemoteStore>): RemoteStore {
  return new Proxy(real, {
    get(target, property) {
      const override: unknown = Reflect.get(overrides, property);
      if (override !== undefined) return override;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
