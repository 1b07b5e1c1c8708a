// `npm run demo`: memsync on a first run, with nothing else installed. Starts, in this one
// process, a local S3-compatible endpoint (s3rver), a stand-in memory service that writes a
// backup every few seconds the way the real one does, and memsync against both. Everything
// lives under .demo/ in the checkout and listens on 127.0.0.1 only. Ctrl-C stops it all.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import S3rver from 's3rver';
import { buildMemsync, type Memsync } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { describeError } from '../src/errors.js';
import { createLogger } from '../src/log.js';
import { startMemoryService, type MemoryService } from './memory-service.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BUCKET = 'memsync-demo';
/** s3rver accepts any signature made with these. */
const S3RVER_CREDENTIALS = { accessKey: 'S3RVER', secretKey: 'S3RVER' };

interface DemoSettings {
  dir: string;
  s3Port: number;
  apiPort: number;
  backupEveryMs: number;
}

function settings(env: NodeJS.ProcessEnv): DemoSettings {
  const port = (name: string, fallback: number): number => {
    const raw = env[name];
    const value = raw === undefined || raw === '' ? fallback : Number(raw);
    if (!Number.isInteger(value) || value < 0 || value > 65_535) throw new Error(`${name} must be a port number (0-65535), not ${JSON.stringify(raw)}`);
    return value;
  };
  const every = Number(env.DEMO_BACKUP_EVERY_MS ?? 5000);
  if (!Number.isInteger(every) || every < 500) throw new Error(`DEMO_BACKUP_EVERY_MS must be an integer of at least 500, not ${JSON.stringify(env.DEMO_BACKUP_EVERY_MS)}`);
  return {
    dir: path.resolve(env.DEMO_DIR ?? path.join(ROOT, '.demo')),
    s3Port: port('DEMO_S3_PORT', 4568),
    apiPort: port('CLOUD_SYNC_PORT', 8901),
    backupEveryMs: every,
  };
}

async function main(): Promise<void> {
  const demo = settings(process.env);
  const backupDir = path.join(demo.dir, 'backups');
  await mkdir(path.join(demo.dir, 's3'), { recursive: true });

  const s3 = new S3rver({ address: '127.0.0.1', port: demo.s3Port, directory: path.join(demo.dir, 's3'), silent: true, configureBuckets: [{ name: BUCKET }] });
  const { port: s3Port } = await s3.run();
  const endpoint = `http://127.0.0.1:${s3Port}`;
  const service = await startMemoryService({ dataDir: path.join(demo.dir, 'service-data'), backupDir });

  const config = loadConfig({
    CLOUD_SYNC_ENABLED: 'true',
    CLOUD_SYNC_BUCKET: BUCKET,
    CLOUD_SYNC_ENDPOINT: endpoint,
    CLOUD_SYNC_REGION: 'us-east-1',
    CLOUD_SYNC_ACCESS_KEY: S3RVER_CREDENTIALS.accessKey,
    CLOUD_SYNC_SECRET_KEY: S3RVER_CREDENTIALS.secretKey,
    CLOUD_SYNC_BACKUP_DIR: backupDir,
    CLOUD_SYNC_STATE_DIR: path.join(demo.dir, 'state'),
    CLOUD_SYNC_SETTLE_MS: '1000',
    CLOUD_SYNC_SCHEDULE: '*/5 * * * *',
    CLOUD_SYNC_PORT: String(demo.apiPort),
    MEMORY_SERVICE_URL: service.url,
    MEMORY_SERVICE_API_KEY: service.apiKey,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
    LOG_FORMAT: process.env.LOG_FORMAT ?? 'auto',
  });
  const log = createLogger(config.log);
  const memsync = await buildMemsync(config, log);
  await memsync.start();
  const listening = memsync.server.server.address();
  const api = `http://127.0.0.1:${typeof listening === 'object' && listening !== null ? listening.port : demo.apiPort}`;

  const writer = startBackups(service, demo.backupEveryMs, log.child({ component: 'demo' }));
  printBanner({ api, endpoint, backupDir, s3Dir: path.join(demo.dir, 's3', BUCKET), everyMs: demo.backupEveryMs });
  log.info('demo ready', { api, s3: endpoint, memoryService: service.url, backupDir });

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info('demo stopping', { signal });
    void shutdown(writer, memsync, service, s3).then(
      () => {
        log.info('demo stopped');
        process.exit(0);
      },
      (error: unknown) => {
        log.error('demo did not stop cleanly', { error: describeError(error) });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

interface BackupLoop {
  stop(): Promise<void>;
}

/** The service at work: a few new memories, then a backup, every `everyMs`. */
function startBackups(service: MemoryService, everyMs: number, log: ReturnType<typeof createLogger>): BackupLoop {
  let running: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    running = running.then(async () => {
      try {
        await service.remember(1 + Math.floor(Math.random() * 5));
        const name = await service.backup('auto');
        log.info('memory service wrote a backup', { snapshot: name });
      } catch (error) {
        log.error('memory service could not write a backup', { error: describeError(error) });
      }
    });
  }, everyMs);
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}

async function shutdown(writer: BackupLoop, memsync: Memsync, service: MemoryService, s3: S3rver): Promise<void> {
  await writer.stop();
  await memsync.stop();
  await service.close();
  await s3.close();
}

function printBanner(where: { api: string; endpoint: string; backupDir: string; s3Dir: string; everyMs: number }): void {
  const lines = [
    '',
    'memsync demo is running (Ctrl-C stops everything)',
    `  the memory service writes a backup every ${where.everyMs / 1000} s into ${where.backupDir}`,
    `  memsync uploads each one to s3://${BUCKET}/memories/ at ${where.endpoint}`,
    '',
    'look at:',
    `  curl -s ${where.api}/sync/status`,
    `  curl -s ${where.api}/sync/snapshots`,
    `  curl -s -X POST -H 'Content-Type: application/json' ${where.api}/sync/upload`,
    `  curl -s ${where.api}/docs     (the OpenAPI document)`,
    `  ls ${where.s3Dir}    (the bucket, as s3rver stores it)`,
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`memsync demo: ${describeError(error)}\n`);
  process.exit(1);
});
