// One agent test's world: its own bucket on the test server, backup and state directories, the
// environment that points a real agent process at them, and a cleanup after each test (agents
// first: they must not be writing into a bucket being emptied).
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, expect, type TestContext } from 'vitest';
import { killAllAgents, startAgent, type AgentProcess, type LogEntry } from './agent-process.js';
import { RemoteBucket } from './remote-bucket.js';
import { createTestBucket, emptyAndDeleteBucket, s3ClientFor, type S3TestServer } from './s3-fixture.js';
import { s3Env } from './s3.js';
import { tempDir } from './tmp.js';

export interface Sandbox {
  bucket: string;
  backupDir: string;
  stateDir: string;
}

export interface SandboxSettings {
  /** CLOUD_SYNC_PREFIX. */
  prefix: string;
  settleMs: number;
  /** Shown in bucket names and cleanup messages. */
  label: string;
}

/** A cron expression that never fires during a test run (once a year). */
export const NEVER_SOON = '0 0 1 1 *';
/** Bounds for single waits on the agent: generous for two shared cores, finite always. */
export const START_TIMEOUT_MS = 30_000;

/**
 * Registers the per-file client and the per-test cleanup; returns what a test file uses to make
 * sandboxes, point agents at them and read their buckets.
 */
export function useSandboxes(server: S3TestServer, settings: SandboxSettings) {
  let client: S3Client | undefined;
  const buckets: string[] = [];
  beforeAll(() => {
    client = s3ClientFor(server);
  });
  afterAll(() => {
    client?.destroy();
  });
  afterEach(async (context: TestContext) => {
    await killAllAgents(context);
    for (const bucket of buckets.splice(0)) {
      await emptyAndDeleteBucket(server, bucket).catch((error: unknown) => console.error(`[${settings.label}] cannot delete bucket ${bucket}: ${String(error)}`));
    }
  });

  const s3 = (): S3Client => {
    if (client === undefined) throw new Error('the S3 client exists from beforeAll on');
    return client;
  };

  async function sandbox(label: string): Promise<Sandbox> {
    const bucket = await createTestBucket(server, `${settings.label} ${label}`);
    buckets.push(bucket);
    return { bucket, backupDir: await tempDir('memsync-backups'), stateDir: await tempDir('memsync-state') };
  }

  function agentEnv(box: Sandbox, overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> {
    return {
      ...s3Env(server, box.bucket),
      CLOUD_SYNC_PREFIX: settings.prefix,
      CLOUD_SYNC_BACKUP_DIR: box.backupDir,
      CLOUD_SYNC_STATE_DIR: box.stateDir,
      CLOUD_SYNC_SETTLE_MS: String(settings.settleMs),
      CLOUD_SYNC_CONCURRENCY: '4',
      CLOUD_SYNC_MULTIPART_THRESHOLD_MB: '5',
      CLOUD_SYNC_SCHEDULE: NEVER_SOON,
      CLOUD_SYNC_PORT: '0',
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'debug',
      ...overrides,
    };
  }

  /** Starts an agent and waits for its start sweep to finish; returns both. */
  async function startAndSweep(box: Sandbox, label: string, overrides: Record<string, string | undefined> = {}): Promise<{ agent: AgentProcess; sweep: LogEntry }> {
    const agent = startAgent({ env: agentEnv(box, overrides), label });
    const sweep = await agent.waitFor('sweep finished', { reason: 'start' }, START_TIMEOUT_MS);
    return { agent, sweep };
  }

  const remoteOf = (box: Sandbox): RemoteBucket => new RemoteBucket(s3(), box.bucket, settings.prefix);

  return { sandbox, agentEnv, startAndSweep, remoteOf, client: s3 };
}

export async function stopCleanly(agent: AgentProcess): Promise<void> {
  const exit = await agent.stop();
  expect(exit, `${agent.label} exit\n${agent.tail()}`).toMatchObject({ code: 0, signal: null });
}

/** The base URL of the agent's HTTP API (CLOUD_SYNC_PORT=0: read from its log). */
export async function apiUrl(agent: AgentProcess, timeoutMs = START_TIMEOUT_MS): Promise<string> {
  const listening = await agent.waitFor('HTTP API listening', {}, timeoutMs);
  return String(listening.address).replace('://localhost', '://127.0.0.1');
}
