// Azurite's blob service (the npm devDependency), started by the test harness for the Azure store's
// tests: on a free port, with its data in a temp dir, stopped by PID. A failure to start fails the
// tests that need it (in CI and out), never skips them.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const AZURITE_BLOB_MAIN = path.join(REPO_ROOT, 'node_modules', 'azurite', 'dist', 'src', 'blob', 'main.js');
/** Azurite's one built-in account and its published key. */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const START_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 5_000;

export interface AzuriteServer {
  /** The blob service URL, account included (path style), e.g. http://127.0.0.1:PORT/devstoreaccount1. */
  endpoint: string;
  accountName: string;
  accountKey: string;
  pid: number;
  service: BlobServiceClient;
  /** A new empty container named for `hint`. */
  createContainer(hint: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startAzurite(): Promise<AzuriteServer> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'memsync-azurite-'));
  const logPath = path.join(base, 'azurite.log');
  const log = createWriteStream(logPath, { flags: 'a' });
  // --disableTelemetry: Azurite reports usage to a remote service by default; tests stay on this machine.
  const child = spawn(
    process.execPath,
    [AZURITE_BLOB_MAIN, '--blobHost', '127.0.0.1', '--blobPort', '0', '--location', path.join(base, 'data'), '--silent', '--skipApiVersionCheck', '--disableTelemetry'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code))).finally(() => log.end());
  // A test runner that exits without stopping it (a crash) still takes Azurite along.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const stop = async (): Promise<void> => {
    process.off('exit', killOnExit);
    await terminate(child, closed);
    await rm(base, { recursive: true, force: true });
  };
  let port: number;
  try {
    port = await withTimeout(listeningPort(child, closed), START_TIMEOUT_MS, 'Azurite start');
  } catch (error) {
    const logText = await readFile(logPath, 'utf8').catch(() => '');
    await stop();
    throw new Error(`Azurite (${AZURITE_BLOB_MAIN}) did not start: ${error instanceof Error ? error.message : String(error)}; its log: ${logText.slice(-2000)}`);
  }
  const endpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  const service = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY));
  try {
    // Listening is not serving: one request answered is.
    await withTimeout(service.getProperties(), START_TIMEOUT_MS, 'Azurite first request');
  } catch (error) {
    await stop();
    throw error;
  }
  let containers = 0;
  return {
    endpoint,
    accountName: AZURITE_ACCOUNT,
    accountKey: AZURITE_KEY,
    pid: child.pid as number,
    service,
    createContainer: async (hint) => {
      containers += 1;
      const stem = hint.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 40).replace(/^-+|-+$/g, '') || 'test';
      const name = `${stem}-${containers}-${randomBytes(4).toString('hex')}`;
      await service.getContainerClient(name).create();
      return name;
    },
    stop,
  };
}

/** The port from Azurite's "successfully listens on http://HOST:PORT" line (it prints it even when --silent). */
function listeningPort(child: ChildProcess, closed: Promise<number | null>): Promise<number> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString('utf8');
      const port = /listens on https?:\/\/[^:\s]+:(\d+)/.exec(seen)?.[1];
      if (port !== undefined) {
        child.stdout?.off('data', onData);
        resolve(Number(port));
      }
    };
    child.stdout?.on('data', onData);
    closed.then((code) => reject(new Error(`Azurite exited (${String(code)}) before listening`)), reject);
  });
}

/** SIGTERM by PID, then SIGKILL if it is still there after STOP_GRACE_MS. */
async function terminate(child: ChildProcess, closed: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return closed.then(() => undefined);
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await closed.finally(() => clearTimeout(timer));
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
