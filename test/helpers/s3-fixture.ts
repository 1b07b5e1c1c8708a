// The S3-compatible server integration tests run against, picked by what this machine offers:
// S3_TEST_ENDPOINT > a Docker engine (MinIO) > Ceph RGW on PATH > s3rver (a fake; see its capabilities).
// S3_TEST_SERVER=rgw|s3rver|minio forces one. Everything listens on 127.0.0.1 (MinIO: where Docker publishes).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants, createWriteStream, openSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';

export type S3ServerKind = 'external' | 'minio-container' | 'ceph-rgw' | 's3rver';
export interface S3Capabilities {
  conditionalWrites: boolean;
  abortMultipart: boolean;
  listMultipartUploads: boolean;
  suffixRange: boolean;
  /** A PUT whose body does not match its Content-MD5 is refused. */
  contentMd5Check: boolean;
  /** UploadPartCopy, and S3's error codes for copies (NoSuchKey, PreconditionFailed). */
  partCopy: boolean;
}
export interface S3TestServer {
  kind: S3ServerKind;
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  capabilities: S3Capabilities;
  note: string;
  /** The server process, when the fixture started it (Ceph RGW: radosgw; s3rver: its child), for outage tests (SIGSTOP/SIGCONT). */
  pid?: number;
}

interface Started {
  server: S3TestServer;
  stop: () => Promise<void>;
  label: string;
  logPath?: string;
}

const HELPERS_DIR = path.dirname(fileURLToPath(import.meta.url));
const REGION = 'us-east-1';
const READY_TIMEOUT_MS = 60_000;
const DOCKER_PROBE_TIMEOUT_MS = 5_000;
// rgw-start.sh bounds each of its own waits; this only catches a wedged script (typical start: ~13 s).
const RGW_START_TIMEOUT_MS = 240_000;
// rgw-stop.sh waits up to 10 s per daemon before SIGKILL.
const RGW_STOP_TIMEOUT_MS = 60_000;
const MINIO_IMAGE = process.env.S3_TEST_MINIO_IMAGE ?? 'minio/minio:RELEASE.2025-04-22T22-12-26Z';
const ALL: S3Capabilities = { conditionalWrites: true, abortMultipart: true, listMultipartUploads: true, suffixRange: true, contentMd5Check: true, partCopy: true };
const NONE: S3Capabilities = { conditionalWrites: false, abortMultipart: false, listMultipartUploads: false, suffixRange: false, contentMd5Check: false, partCopy: false };

export async function startS3TestServer(): Promise<{ server: S3TestServer; stop: () => Promise<void> }> {
  const t0 = Date.now();
  const started = await choose();
  try {
    await waitUntilServing(started);
  } catch (err) {
    await started.stop().catch((stopErr: unknown) => console.error(`[s3-fixture] stop after failed start: ${errorMessage(stopErr)}`));
    throw err;
  }
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  console.error(`[s3-fixture] using ${started.label} at ${started.server.endpoint}, ready in ${secs} s`);
  return { server: started.server, stop: once(started.stop) };
}

async function choose(): Promise<Started> {
  const forced = process.env.S3_TEST_SERVER;
  switch (forced) {
    case undefined:
    case '':
      break;
    case 'minio': {
      const noDocker = await dockerUnavailable();
      if (noDocker) throw new Error(`S3_TEST_SERVER=minio, but no Docker engine is reachable: ${noDocker}`);
      return startMinio('S3_TEST_SERVER=minio');
    }
    case 'rgw': {
      const missing = missingCeph();
      if (missing.length > 0) throw new Error(`S3_TEST_SERVER=rgw, but ${missing.join(', ')} not found on PATH`);
      return startRgw('S3_TEST_SERVER=rgw');
    }
    case 's3rver':
      return startS3rver('S3_TEST_SERVER=s3rver');
    default:
      throw new Error(`S3_TEST_SERVER must be rgw, s3rver or minio, not ${JSON.stringify(forced)}`);
  }
  if (process.env.S3_TEST_ENDPOINT) return external(process.env.S3_TEST_ENDPOINT);
  const noDocker = await dockerUnavailable();
  if (!noDocker) return startMinio('a Docker engine is reachable');
  const missing = missingCeph();
  if (missing.length === 0) return startRgw('radosgw found on PATH, no Docker engine');
  const why = `no Docker engine; ${missing.join(', ')} not on PATH`;
  // CI must test against a real server: a fake that skips what it cannot do would pass in silence.
  if (process.env.CI === 'true') {
    throw new Error(`CI=true and no real S3 server to start (${why}): install Ceph RGW (see .ci/run), provide a Docker engine or S3_TEST_ENDPOINT, or force the fake with S3_TEST_SERVER=s3rver`);
  }
  return startS3rver(why);
}

function external(endpoint: string): Started {
  const server: S3TestServer = {
    kind: 'external',
    endpoint,
    region: process.env.S3_TEST_REGION ?? REGION,
    accessKeyId: requiredEnv('S3_TEST_ACCESS_KEY'),
    secretAccessKey: requiredEnv('S3_TEST_SECRET_KEY'),
    capabilities: ALL,
    note: 'external server from S3_TEST_ENDPOINT: capabilities assumed, not probed',
  };
  return { server, stop: async () => {}, label: 'external S3 (S3_TEST_ENDPOINT set)' };
}

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`S3_TEST_ENDPOINT is set, so ${name} must be too`);
  return value;
}

async function dockerUnavailable(): Promise<string | null> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await withTimeout(getContainerRuntimeClient(), DOCKER_PROBE_TIMEOUT_MS, 'container runtime probe');
    return null;
  } catch (err) {
    return errorMessage(err);
  }
}

async function startMinio(why: string): Promise<Started> {
  const { MinioContainer } = await import('@testcontainers/minio');
  const user = `memsync${randomBytes(4).toString('hex')}`;
  const password = randomBytes(16).toString('hex');
  const container = await new MinioContainer(MINIO_IMAGE).withUsername(user).withPassword(password).start();
  const server: S3TestServer = {
    kind: 'minio-container',
    endpoint: container.getConnectionUrl(),
    region: REGION,
    accessKeyId: user,
    secretAccessKey: password,
    capabilities: ALL,
    note: `MinIO ${MINIO_IMAGE} in a container`,
  };
  return { server, stop: async () => { await container.stop(); }, label: `MinIO container ${MINIO_IMAGE} (${why})` };
}

function missingCeph(): string[] {
  return ['radosgw', 'ceph-mon', 'ceph-osd'].filter((bin) => !onPath(bin));
}

function onPath(bin: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((dir) => {
    try {
      accessSync(path.join(dir, bin), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

async function startRgw(why: string): Promise<Started> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'memsync-rgw-'));
  const stateDir = path.join(base, 'cluster');
  const logPath = path.join(base, 'rgw.log');
  const accessKeyId = `memsync${randomBytes(6).toString('hex')}`;
  const secretAccessKey = randomBytes(20).toString('hex');
  const env = {
    ...process.env,
    RGW_PORT: String(await freePort()),
    MON_PORT: String(await freePortPair()), // the mon also takes MON_PORT+1 (msgr1)
    ACCESS_KEY: accessKeyId,
    SECRET_KEY: secretAccessKey,
    OWNER_PID: String(process.pid), // the script's watchdog stops the cluster if this process dies unannounced
  };
  // On failure the script has already stopped its daemons and removed stateDir; base keeps the log.
  await runScript('rgw-start.sh', stateDir, env, logPath, RGW_START_TIMEOUT_MS);
  const vars = parseEnvFile(await readFile(path.join(stateDir, 'env'), 'utf8'));
  const version = vars.get('CEPH_VERSION') ?? '?';
  const rgwPid = Number((await readFile(path.join(stateDir, 'run', 'client.rgw.local.pid'), 'utf8').catch(() => '')).trim());
  const server: S3TestServer = {
    kind: 'ceph-rgw',
    pid: Number.isInteger(rgwPid) && rgwPid > 0 ? rgwPid : undefined,
    endpoint: required(vars, 'S3_ENDPOINT'),
    region: vars.get('S3_REGION') ?? REGION,
    accessKeyId,
    secretAccessKey,
    capabilities: ALL,
    note: `Ceph RGW ${version} (${process.env.OBJECTSTORE ?? 'memstore'}): If-None-Match ignored on CompleteMultipartUpload; ` +
      'CompleteMultipartUpload answers an empty ETag; x-amz-checksum-* not validated; error <Message> is empty. ' +
      `RGW log: ${vars.get('RGW_LOG') ?? '?'}`,
  };
  const stop = async (): Promise<void> => {
    await runScript('rgw-stop.sh', stateDir, process.env, logPath, RGW_STOP_TIMEOUT_MS);
    await rm(base, { recursive: true, force: true });
  };
  return { server, stop, label: `Ceph RGW ${version} (${why})`, logPath: vars.get('RGW_LOG') };
}

async function runScript(name: string, stateDir: string, env: NodeJS.ProcessEnv, logPath: string, timeoutMs: number): Promise<void> {
  // Output goes to a file, not a pipe: nothing the script leaves behind can then hold us waiting on a pipe.
  const logFd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn('bash', [path.join(HELPERS_DIR, 'rgw', name), stateDir], { env, stdio: ['ignore', logFd, logFd] });
  } finally {
    closeSync(logFd);
  }
  const closed = closeOf(child);
  let code: number | null;
  try {
    code = await withTimeout(closed, timeoutMs, `${name} ${stateDir}`);
  } catch (err) {
    await terminate(child, closed, 60_000); // the scripts stop what they started on SIGTERM
    throw new Error(`${errorMessage(err)}; log: ${logPath}\n${await logTail(logPath)}`);
  }
  if (code !== 0) throw new Error(`${name} ${stateDir} failed (exit ${code}); log: ${logPath}\n${await logTail(logPath)}`);
}

async function logTail(logPath: string): Promise<string> {
  return (await readFile(logPath, 'utf8').catch(() => '')).split('\n').slice(-40).join('\n');
}

/** 'close', not 'exit': only then has all of the child's output been delivered. */
function closeOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
}

/** SIGTERM, then SIGKILL if the child is still there after graceMs. */
async function terminate(child: ChildProcess, closed: Promise<unknown>, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return closed.then(() => undefined);
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await closed.finally(() => clearTimeout(timer));
}

async function startS3rver(why: string): Promise<Started> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'memsync-s3rver-'));
  const logPath = path.join(base, 's3rver.log');
  // A pipe on stdin: the child exits when it closes, so a test runner killed hard leaves no s3rver behind.
  const child = spawn(process.execPath, ['--openssl-legacy-provider', path.join(HELPERS_DIR, 's3rver-child.mjs'), path.join(base, 'data')],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  const log = createWriteStream(logPath, { flags: 'a' });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const closed = closeOf(child).finally(() => log.end());
  const stop = async (): Promise<void> => {
    await terminate(child, closed, 5_000);
    await rm(base, { recursive: true, force: true });
  };
  let port: number;
  try {
    port = await withTimeout(readPort(child, closed), 20_000, `s3rver start (log: ${logPath})`);
  } catch (err) {
    await stop();
    throw err;
  }
  const server: S3TestServer = {
    kind: 's3rver',
    endpoint: `http://127.0.0.1:${port}`,
    region: REGION,
    accessKeyId: 'S3RVER', // s3rver's only account
    secretAccessKey: 'S3RVER',
    capabilities: NONE,
    pid: child.pid,
    note: 's3rver 3.7 is a fake: If-None-Match ignored (overwrites), AbortMultipartUpload 405, ' +
      'ListMultipartUploads 501, suffix ranges return wrong bytes, MaxKeys with Delimiter can overshoot',
  };
  return { server, stop, label: `s3rver, a fake S3 (${why})`, logPath };
}

function readPort(child: ChildProcess, closed: Promise<number | null>): Promise<number> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('utf8');
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      child.stdout?.off('data', onData);
      const line = buffered.slice(0, newline);
      const port = /^\{"port":(\d+)\}$/.exec(line)?.[1];
      if (port) resolve(Number(port));
      else reject(new Error(`s3rver child printed ${line}`));
    };
    child.stdout?.on('data', onData);
    closed.then((code) => reject(new Error(`s3rver child exited (${code}) before listening`)), reject);
  });
}

async function waitUntilServing(started: Started): Promise<void> {
  const client = s3ClientFor(started.server);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last: unknown;
  try {
    while (Date.now() < deadline) {
      try {
        await client.send(new ListBucketsCommand({}), { abortSignal: AbortSignal.timeout(5_000) });
        return;
      } catch (err) {
        last = err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  } finally {
    client.destroy();
  }
  throw new Error(`${started.label} at ${started.server.endpoint} did not answer ListBuckets within ` +
    `${READY_TIMEOUT_MS / 1000} s: ${errorMessage(last)}` + (started.logPath ? `; log: ${started.logPath}` : ''));
}

export function s3ClientFor(server: S3TestServer): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    forcePathStyle: true, // RGW and s3rver on 127.0.0.1 have no per-bucket host names
    // RGW answers 411 to streamed aws-chunked bodies; s3rver stores the chunk framing as content.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export async function createTestBucket(server: S3TestServer, hint: string): Promise<string> {
  const suffix = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const slug = hint.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  // Bucket names: 3..63 chars of [a-z0-9-], starting and ending with a letter or digit.
  const head = `t-${slug}`.slice(0, 63 - suffix.length - 1).replace(/-+$/, '');
  const bucket = `${head}-${suffix}`;
  const client = s3ClientFor(server);
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
  return bucket;
}

export async function emptyAndDeleteBucket(server: S3TestServer, bucket: string): Promise<void> {
  const client = s3ClientFor(server);
  try {
    if (server.capabilities.listMultipartUploads && server.capabilities.abortMultipart) {
      await abortUploads(client, bucket);
    }
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
      const keys = (page.Contents ?? []).flatMap(({ Key }) => (Key === undefined ? [] : [{ Key }]));
      if (keys.length > 0) {
        const { Errors } = await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
        if (Errors?.length) throw new Error(`empty ${bucket}: ${Errors.length} keys not deleted, first ${Errors[0]?.Key}: ${Errors[0]?.Code}`);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}

async function abortUploads(client: S3Client, bucket: string): Promise<void> {
  for (;;) {
    const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    const uploads = page.Uploads ?? [];
    for (const { Key, UploadId } of uploads) {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId }));
    }
    if (!page.IsTruncated || uploads.length === 0) return;
  }
}

function required(vars: Map<string, string>, name: string): string {
  const value = vars.get(name);
  if (!value) throw new Error(`rgw-start.sh did not report ${name}`);
  return value;
}

function parseEnvFile(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) vars.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return vars;
}

/** A free TCP port on 127.0.0.1, as the OS hands them out (it may be taken again before use: a small race). */
function freePort(port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freePort();
    if (port < 65535 && (await freePort(port + 1).then(() => true, () => false))) return port;
  }
  throw new Error('no two consecutive free ports on 127.0.0.1 after 20 tries');
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= fn());
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.name !== 'Error' ? `${err.name}: ${err.message}` : err.message;
  return String(err);
}
