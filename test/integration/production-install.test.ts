// The image's runtime stage reproduced without Docker: dist/ built by tsconfig.build.json, the
// manifests, `npm ci --omit=dev`, and `node dist/main.js` from there, against the test run's S3
// server. It proves that production dependencies are enough to run and upload, that no dev
// dependency ships, that the Dockerfile's HEALTHCHECK works, and that SIGTERM stops cleanly.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { killAllAgents, startAgent } from '../helpers/agent-process.js';
import { healthcheckArgv, parseDockerfile, runNodeCommand, type Stage } from '../helpers/dockerfile.js';
import { createTestBucket, emptyAndDeleteBucket, s3ClientFor } from '../helpers/s3-fixture.js';
import { s3Env, testServer } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const server = testServer();
/** The heavy dev dependencies that must never reach the image. */
const DEV_ONLY = ['typescript', 'vitest', 'tsx', 'testcontainers', 's3rver'];
const BUILD_TIMEOUT_MS = 180_000;
// A cold npm cache downloads every production dependency on two shared cores.
const INSTALL_TIMEOUT_MS = 420_000;
const START_TIMEOUT_MS = 30_000;
const UPLOAD_TIMEOUT_MS = 45_000;
/** Docker's default grace period between SIGTERM and SIGKILL. */
const DOCKER_STOP_GRACE_MS = 10_000;
const PREFIX = 'memories/';
const NEVER_SOON = '0 0 1 1 *';

interface LockEntry {
  dev?: boolean;
  optional?: boolean;
  devOptional?: boolean;
  peer?: boolean;
  link?: boolean;
}

let appDir: string;
let client: S3Client;
const buckets: string[] = [];

/** Runs a command to completion; rejects on a non-zero exit (with its output) or after timeoutMs. */
function run(command: string, args: string[], options: { cwd: string; timeoutMs: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const what = `${path.basename(command)} ${args.join(' ')}`;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} did not finish within ${options.timeoutMs / 1000} s\n${output.slice(-4000)}`));
    }, options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${what} failed (${signal ?? `exit ${code}`})\n${output.slice(-4000)}`));
    });
  });
}

beforeAll(async () => {
  client = s3ClientFor(server);
  appDir = await mkdtemp(path.join(os.tmpdir(), 'memsync-production-'));
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await run(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', path.join(appDir, 'dist')], { cwd: ROOT, timeoutMs: BUILD_TIMEOUT_MS });
  await copyFile(path.join(ROOT, 'package.json'), path.join(appDir, 'package.json'));
  await copyFile(path.join(ROOT, 'package-lock.json'), path.join(appDir, 'package-lock.json'));
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: appDir, timeoutMs: INSTALL_TIMEOUT_MS });
}, BUILD_TIMEOUT_MS + INSTALL_TIMEOUT_MS + 30_000);

afterAll(async () => {
  client?.destroy();
  if (appDir !== undefined) await rm(appDir, { recursive: true, force: true });
});

afterEach(async (context: TestContext) => {
  await killAllAgents(context); // before its bucket goes
  for (const bucket of buckets.splice(0)) {
    await emptyAndDeleteBucket(server, bucket).catch((error: unknown) => console.error(`[production-install] cannot delete bucket ${bucket}: ${String(error)}`));
  }
});

async function remoteKeys(bucket: string): Promise<string[]> {
  const answer = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (answer.Contents ?? []).map((object) => object.Key ?? '').sort();
}

async function remoteText(bucket: string, key: string): Promise<string> {
  const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return (await answer.Body?.transformToString('utf8')) ?? '';
}

describe(`production install, as in the image's runtime stage (${server.kind})`, () => {
  it('installs every production dependency and no dev dependency', () => {
    // A node_modules above appDir would let a missing dependency resolve from elsewhere.
    for (let dir = path.dirname(appDir); dir !== path.dirname(dir); dir = path.dirname(dir)) {
      expect(existsSync(path.join(dir, 'node_modules')), `${dir}/node_modules`).toBe(false);
    }
    const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    for (const name of DEV_ONLY) {
      expect(Object.keys(manifest.devDependencies), `${name} is a dev dependency`).toContain(name);
      expect(existsSync(path.join(appDir, 'node_modules', name)), `${name} installed`).toBe(false);
    }
    const lock = JSON.parse(readFileSync(path.join(appDir, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
    const wronglyInstalled: string[] = [];
    const missing: string[] = [];
    for (const [location, entry] of Object.entries(lock.packages)) {
      if (location === '' || entry.link === true) continue;
      const installed = existsSync(path.join(appDir, location));
      if (entry.dev === true && installed) wronglyInstalled.push(location);
      const required = entry.dev !== true && entry.optional !== true && entry.devOptional !== true && entry.peer !== true;
      if (required && !installed) missing.push(location);
    }
    expect(wronglyInstalled, 'dev-only packages in the production install').toEqual([]);
    expect(missing, 'production packages not installed').toEqual([]);
    expect(existsSync(path.join(appDir, 'dist', 'main.js'))).toBe(true);
  });

  it('runs dist/main.js: uploads a snapshot, passes the image healthcheck, stops with exit 0 on SIGTERM within 10 s', async () => {
    const bucket = await createTestBucket(server, 'production install');
    buckets.push(bucket);
    const backupDir = await tempDir('memsync-backups');
    const stateDir = await tempDir('memsync-state');
    const agent = startAgent({
      label: 'production agent',
      // dist/main.js resolves its imports next to itself: from appDir/node_modules only.
      nodeArgs: [path.join(appDir, 'dist', 'main.js')],
      env: {
        NODE_ENV: 'production',
        LOG_FORMAT: 'json',
        ...s3Env(server, bucket),
        CLOUD_SYNC_PREFIX: PREFIX,
        CLOUD_SYNC_BACKUP_DIR: backupDir,
        CLOUD_SYNC_STATE_DIR: stateDir,
        CLOUD_SYNC_SETTLE_MS: '400',
        CLOUD_SYNC_SCHEDULE: NEVER_SOON,
        CLOUD_SYNC_PORT: '0',
      },
    });
    const listening = await agent.waitFor('HTTP API listening', {}, START_TIMEOUT_MS);
    const port = Number(new URL(String(listening.address)).port);
    expect(port).toBeGreaterThan(0);
    await agent.waitFor('sweep finished', { reason: 'start' }, START_TIMEOUT_MS);

    const name = 'auto_20250101_000000';
    const metadata = JSON.stringify({ memories: [{ id: 1, text: 'production install' }] });
    await mkdir(path.join(backupDir, name));
    await writeFile(path.join(backupDir, name, 'metadata.json'), metadata);
    await writeFile(path.join(backupDir, name, 'config.json'), JSON.stringify({ model: 'test' }));
    await agent.waitFor('snapshot uploaded', { snapshot: name }, UPLOAD_TIMEOUT_MS);
    expect(await remoteKeys(bucket)).toEqual([`${PREFIX}${name}/.memsync-manifest.json`, `${PREFIX}${name}/config.json`, `${PREFIX}${name}/metadata.json`]);
    expect(await remoteText(bucket, `${PREFIX}${name}/metadata.json`)).toBe(metadata);

    const runtime = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')).at(-1) as Stage;
    const healthcheck = healthcheckArgv(runtime);
    expect(await runNodeCommand(healthcheck, { CLOUD_SYNC_PORT: String(port) }), 'healthcheck while running').toBe(0);
    expect((await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(5_000) })).status).toBe(200);

    // stop() SIGKILLs and throws when the process outlives the grace period.
    const exit = await agent.stop(DOCKER_STOP_GRACE_MS);
    expect(exit, agent.tail()).toMatchObject({ code: 0, signal: null });
    expect(exit.durationMs).toBeLessThan(DOCKER_STOP_GRACE_MS);
    expect(await runNodeCommand(healthcheck, { CLOUD_SYNC_PORT: String(port) }), 'healthcheck once stopped').toBe(1);
    expect(agent.logs.filter((entry) => entry.level === 'error'), agent.tail()).toEqual([]);
    // stderr may carry Node warnings (the AWS SDK warns on Node 20), never a memsync failure.
    expect(agent.stderr).not.toMatch(/^memsync:/m);
  });
});
