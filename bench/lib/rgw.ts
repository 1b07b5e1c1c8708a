// The S3 server of the bench: a throw-away single-node Ceph RGW with a bluestore OSD (objects on
// a sparse file on disk, not in RAM), brought up and torn down by the project's own scripts.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_DIR } from './agent.js';

const run = promisify(execFile);
const SCRIPTS = path.join(PROJECT_DIR, 'test/helpers/rgw');

export interface Rgw {
  endpoint: string;
  region: string;
  accessKey: string;
  secretKey: string;
  cephVersion: string;
  stateDir: string;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A port p with p and p+1 free, from a range the test suites' fixed ports are not in. */
async function freePortPair(from: number): Promise<number> {
  for (let port = from; port < from + 400; port += 2) if ((await portFree(port)) && (await portFree(port + 1))) return port;
  throw new Error(`no free port pair in ${from}..${from + 400}`);
}

export async function startRgw(stateDir: string, bluestoreBytes: string): Promise<Rgw> {
  const rgwPort = await freePortPair(27480 + Math.floor(Math.random() * 100) * 2);
  const monPort = await freePortPair(rgwPort + 2);
  const { stdout } = await run(path.join(SCRIPTS, 'rgw-start.sh'), [stateDir], {
    env: {
      ...process.env,
      RGW_PORT: String(rgwPort),
      MON_PORT: String(monPort),
      OBJECTSTORE: 'bluestore',
      BLUESTORE_BYTES: bluestoreBytes,
      ACCESS_KEY: 'benchaccesskey',
      SECRET_KEY: 'benchsecretkey',
      // Stops the cluster if the bench dies without its cleanup.
      OWNER_PID: String(process.pid),
    },
    timeout: 180_000,
    maxBuffer: 1 << 20,
  });
  const vars = Object.fromEntries(stdout.trim().split('\n').map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]));
  const need = (name: string): string => {
    const value = vars[name];
    if (value === undefined) throw new Error(`rgw-start.sh did not print ${name}`);
    return value;
  };
  return {
    endpoint: need('S3_ENDPOINT'),
    region: need('S3_REGION'),
    accessKey: need('S3_ACCESS_KEY'),
    secretKey: need('S3_SECRET_KEY'),
    cephVersion: need('CEPH_VERSION'),
    stateDir,
  };
}

/** A server started by hand with rgw-start.sh (its STATE_DIR/env), reused across bench runs while developing. */
export function reuseRgw(stateDir: string): Rgw {
  const vars = Object.fromEntries(
    readFileSync(path.join(stateDir, 'env'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]),
  );
  return {
    endpoint: vars.S3_ENDPOINT ?? '',
    region: vars.S3_REGION ?? 'us-east-1',
    accessKey: vars.S3_ACCESS_KEY ?? '',
    secretKey: vars.S3_SECRET_KEY ?? '',
    cephVersion: vars.CEPH_VERSION ?? '?',
    stateDir,
  };
}

export async function stopRgw(stateDir: string): Promise<void> {
  await run(path.join(SCRIPTS, 'rgw-stop.sh'), [stateDir], { timeout: 120_000 });
}
