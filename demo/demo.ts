// `npm run demo`: memsync on a first run, with nothing else installed. A stand-in memory service
// writes a backup every few seconds the way the real one does, and memsync runs beside it as its
// own process, as you would run it, storing the snapshots in a plain directory (the fs provider)
// under .demo/. Everything listens on 127.0.0.1 only. Ctrl-C stops it all.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { describeError } from '../src/errors.js';
import { createLogger, type Logger } from '../src/log.js';
import { startMemoryService, type MemoryService } from './memory-service.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PREFIX = 'memories/';
/** How long memsync may take to answer /healthz after it was started (tsx compiles on the fly). */
const START_TIMEOUT_MS = 60_000;
const HEALTH_POLL_MS = 200;
/** The user's own settings for memsync are not the demo's: it configures memsync itself. */
const MEMSYNC_VARIABLES = /^(CLOUD_SYNC_|MEMORY_SERVICE_)/;

interface DemoSettings {
  dir: string;
  apiPort: number;
  backupEveryMs: number;
}

function settings(env: NodeJS.ProcessEnv): DemoSettings {
  const raw = env.CLOUD_SYNC_PORT;
  const apiPort = raw === undefined || raw === '' ? 8901 : Number(raw);
  if (!Number.isInteger(apiPort) || apiPort < 0 || apiPort > 65_535) throw new Error(`CLOUD_SYNC_PORT must be a port number (0-65535), not ${JSON.stringify(raw)}`);
  const every = Number(env.DEMO_BACKUP_EVERY_MS ?? 5000);
  if (!Number.isInteger(every) || every < 500) throw new Error(`DEMO_BACKUP_EVERY_MS must be an integer of at least 500, not ${JSON.stringify(env.DEMO_BACKUP_EVERY_MS)}`);
  return { dir: path.resolve(env.DEMO_DIR ?? path.join(ROOT, '.demo')), apiPort, backupEveryMs: every };
}

async function main(): Promise<void> {
  const demo = settings(process.env);
  const log = createLogger({ level: 'info', format: process.env.LOG_FORMAT === 'json' || (process.env.LOG_FORMAT !== 'pretty' && !process.stdout.isTTY) ? 'json' : 'pretty' }).child({ component: 'demo' });
  const backupDir = path.join(demo.dir, 'backups');
  // Stands for a mounted share (NFS, SMB, a second disk): memsync needs it to exist.
  const storageDir = path.join(demo.dir, 'storage');
  await mkdir(storageDir, { recursive: true });
  const service = await startMemoryService({ dataDir: path.join(demo.dir, 'service-data'), backupDir });
  const port = demo.apiPort === 0 ? await freePort() : demo.apiPort;
  const api = `http://127.0.0.1:${port}`;

  const memsync = startMemsync({
    CLOUD_SYNC_ENABLED: 'true',
    CLOUD_SYNC_PROVIDER: 'fs',
    CLOUD_SYNC_BUCKET: storageDir,
    CLOUD_SYNC_PREFIX: PREFIX,
    CLOUD_SYNC_BACKUP_DIR: backupDir,
    CLOUD_SYNC_STATE_DIR: path.join(demo.dir, 'state'),
    CLOUD_SYNC_SETTLE_MS: '1000',
    CLOUD_SYNC_SCHEDULE: '*/5 * * * *',
    CLOUD_SYNC_PORT: String(port),
    MEMORY_SERVICE_URL: service.url,
    MEMORY_SERVICE_API_KEY: service.apiKey,
  });
  const memsyncExited = new Promise<number | null>((resolve) => memsync.once('exit', (code) => resolve(code)));
  let stopping = false;
  void memsyncExited.then((code) => {
    if (stopping) return;
    log.error('memsync stopped on its own; stopping the demo', { exitCode: code });
    void service.close().finally(() => process.exit(1));
  });
  await waitUntilHealthy(api, memsyncExited);

  const writer = startBackups(service, demo.backupEveryMs, log);
  printBanner({ api, pid: memsync.pid, backupDir, storageDir, everyMs: demo.backupEveryMs });
  log.info('demo ready', { api, storage: path.join(storageDir, PREFIX), provider: 'fs', memoryService: service.url, backupDir, memsyncPid: memsync.pid });

  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      memsync.kill('SIGKILL');
      process.exit(1);
    }
    stopping = true;
    log.info('demo stopping', { signal });
    // Ctrl-C in a terminal reaches memsync as well (one process group), and memsync takes a
    // second signal as "exit now": only a signal aimed at the demo alone is passed on.
    if (signal !== 'SIGINT') memsync.kill('SIGTERM');
    void shutdown(writer, memsyncExited, service).then(
      (code) => {
        if (code === 0) log.info('demo stopped');
        else log.error('memsync did not stop cleanly', { exitCode: code });
        process.exit(code === 0 ? 0 : 1);
      },
      (error: unknown) => {
        log.error('demo did not stop cleanly', { error: describeError(error) });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('SIGHUP', stop);
}

/** memsync as a user starts it from a checkout (`npm run dev`), its log on this terminal. */
function startMemsync(variables: Record<string, string>): ChildProcess {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!MEMSYNC_VARIABLES.test(key)) env[key] = value;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env: { ...env, ...variables }, stdio: ['ignore', 'inherit', 'inherit'] });
  // However the demo ends (a failed start, a second Ctrl-C), memsync does not outlive it.
  process.once('exit', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

/** A port the system has free now, for CLOUD_SYNC_PORT=0 (memsync must be told its port to be found). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function waitUntilHealthy(api: string, exited: Promise<number | null>): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!gone && Date.now() < deadline) {
    const healthy = await fetch(`${api}/healthz`).then(
      (answer) => answer.ok,
      () => false,
    );
    if (healthy) return;
    await sleep(HEALTH_POLL_MS);
  }
  throw new Error(gone ? 'memsync exited while starting (its messages are above)' : `memsync did not answer ${api}/healthz within ${START_TIMEOUT_MS / 1000} s`);
}

interface BackupLoop {
  stop(): Promise<void>;
}

/** The service at work: a few new memories, then a backup, every `everyMs`. */
function startBackups(service: MemoryService, everyMs: number, log: Logger): BackupLoop {
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

/** Stops the backups, waits for memsync's own graceful stop, then closes the service; memsync's exit code. */
async function shutdown(writer: BackupLoop, memsyncExited: Promise<number | null>, service: MemoryService): Promise<number | null> {
  await writer.stop();
  const code = await memsyncExited;
  await service.close();
  return code;
}

function printBanner(where: { api: string; pid: number | undefined; backupDir: string; storageDir: string; everyMs: number }): void {
  const stored = path.join(where.storageDir, PREFIX);
  const lines = [
    '',
    'memsync demo is running (Ctrl-C stops everything)',
    `  the memory service (a stand-in) writes a backup every ${where.everyMs / 1000} s into ${where.backupDir}`,
    `  memsync runs as its own process (pid ${where.pid ?? '?'}) and stores each backup in a plain directory on this disk:`,
    `    ${stored}`,
    `  (CLOUD_SYNC_PROVIDER=fs, CLOUD_SYNC_BUCKET=${where.storageDir}, CLOUD_SYNC_PREFIX=${PREFIX}): one folder per snapshot, the`,
    '  backup\'s files as they are plus memsync\'s .memsync-manifest.json; no S3 server is involved',
    '',
    'look at:',
    `  curl -s ${where.api}/sync/status`,
    `  curl -s ${where.api}/sync/snapshots`,
    `  curl -s -X POST -H 'Content-Type: application/json' ${where.api}/sync/upload`,
    `  curl -s ${where.api}/docs     (the OpenAPI document)`,
    `  ls ${stored}     (the stored snapshots)`,
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`memsync demo: ${describeError(error)}\n`);
  process.exit(1);
});
