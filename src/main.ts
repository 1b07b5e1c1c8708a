#!/usr/bin/env node
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Agent } from './agent.js';
import { loadConfig, redactedConfig, type Config } from './config.js';
import { AppError, describeError, isAppError } from './errors.js';
import { createLogger, type Logger } from './log.js';
import { buildServer } from './http/server.js';
import type { SyncApi } from './http/routes/sync.js';
import { SyncOperations } from './operations.js';
import { S3RemoteStore } from './remote/s3-store.js';
import { Restorer } from './restore/restorer.js';
import { DEFAULT_RETRY } from './retry.js';
import { MemoryServiceClient } from './service/memory-service.js';
import { agentStateSchema, freshAgentState } from './state/agent-state.js';
import { emptyHashCache, hashCacheSchema } from './state/hash-cache.js';
import { PersistedJson } from './state/persisted.js';

/**
 * Composition root: the only place that reads the configuration into concrete objects,
 * starts them in order and stops them in reverse on SIGTERM/SIGINT.
 */

/** Exit codes: 2 for configuration an operator must fix, 3 for a store that refuses us. */
const EXIT_CONFIG = 2;
const EXIT_REMOTE_REJECTED = 3;

async function run(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    process.stderr.write(`memsync: ${describeError(error)}\n`);
    process.exit(EXIT_CONFIG);
  }
  const log = createLogger(config.log);
  log.info('memsync starting', { pid: process.pid, config: redactedConfig(config) });

  const stopFns: (() => Promise<void>)[] = [];
  installSignalHandlers(log, stopFns);

  if (!config.enabled) {
    log.info('cloud sync is disabled (CLOUD_SYNC_ENABLED is not true): watching nothing, making no S3 calls');
    // Stay up with the API answering 503 on /sync/*, so the sidecar does not restart in a loop.
    await listen(config, log, stopFns, undefined, () => ({ enabled: false, config: true, watcher: false, remote: true }));
    return;
  }

  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  const stateLog = log.child({ component: 'state' });
  const state = new PersistedJson(path.join(config.stateDir, 'state.json'), agentStateSchema, freshAgentState, stateLog);
  const hashCache = new PersistedJson(path.join(config.stateDir, 'hash-cache.json'), hashCacheSchema, emptyHashCache, stateLog, 2000);
  await state.load();
  await hashCache.load();

  const store = new S3RemoteStore({ ...config.s3, partsInFlight: 4 });
  try {
    await store.checkAccess();
    log.info('remote store reachable', { location: store.location });
  } catch (error) {
    if (isAppError(error, 'remote_rejected')) {
      log.error('the remote store refuses memsync', { location: store.location, error: error.message, hint: error.hint });
      process.stderr.write(`memsync: ${error.message}${error.hint === undefined ? '' : ` (${error.hint})`}\n`);
      process.exit(EXIT_REMOTE_REJECTED);
    }
    // Unreachable now is not fatal: the agent keeps watching and retries with backoff.
    log.error('remote store unreachable at start; will retry', { location: store.location, error: describeError(error) });
  }

  const restorer = new Restorer({
    store,
    backupDir: config.backupDir,
    multipartThresholdBytes: config.multipartThresholdBytes,
    retry: DEFAULT_RETRY,
    log: log.child({ component: 'restore' }),
    now: Date.now,
  });
  await restorer.cleanStaging();

  const agent = new Agent({
    backupDir: config.backupDir,
    settleMs: config.settleMs,
    concurrency: config.concurrency,
    multipartThresholdBytes: config.multipartThresholdBytes,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    schedule: config.schedule,
    store,
    state,
    hashCache,
    log,
  });
  stopFns.push(async () => {
    await agent.stop();
    store.close();
  });
  const memoryService = config.memoryService === undefined ? undefined : new MemoryServiceClient(config.memoryService);
  const operations = new SyncOperations({ agent, restorer, memoryService, state, backupDir: config.backupDir, settleMs: config.settleMs, log: log.child({ component: 'operations' }) });

  await agent.start();
  await listen(config, log, stopFns, syncApi(agent, operations, restorer, config.backupDir), () => ({
    enabled: true,
    config: true,
    watcher: agent.watching,
    remote: agent.health.available === true,
  }));
  void operations.autoDownloadIfEmpty().catch((error: unknown) => {
    log.error('automatic download at start failed', { error: describeError(error) });
  });
}

function syncApi(agent: Agent, operations: SyncOperations, restorer: Restorer, backupDir: string): SyncApi {
  return {
    upload: () => operations.manualUpload(),
    describeDownload: async (name) => {
      const target = await operations.resolveDownloadTarget(name);
      return `download ${target}${name === undefined ? ' (the latest remote snapshot by time)' : ''} into ${backupDir}, refusing if a different snapshot of that name exists there`;
    },
    download: (name) => operations.download(name),
    restore: (name) => operations.restore(name),
    status: () => ({ ...agent.status(), restoring: restorer.active(), memoryService: operations.serviceConfigured }),
    remoteIndex: async (maxAgeMs) => (Date.now() - agent.remoteIndex.listedAtMs > maxAgeMs ? agent.refreshRemoteIndex() : agent.remoteIndex),
    serviceConfigured: operations.serviceConfigured,
  };
}

async function listen(config: Config, log: Logger, stopFns: (() => Promise<void>)[], sync: SyncApi | undefined, readiness: Parameters<typeof buildServer>[0]['readiness']): Promise<void> {
  const server = await buildServer({ sync, readiness, apiToken: config.http.apiToken, log: log.child({ component: 'http' }) });
  try {
    const address = await server.listen({ host: config.http.host, port: config.http.port });
    log.info('HTTP API listening', { address, auth: config.http.apiToken === undefined ? 'none (loopback only)' : 'bearer token' });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new AppError('config', `cannot listen on ${config.http.host}:${config.http.port}: ${code ?? describeError(error)}`, {
      hint: 'set CLOUD_SYNC_PORT to a free port or CLOUD_SYNC_HOST to an address of this machine',
    });
  }
  stopFns.push(async () => {
    await server.close();
  });
}

function installSignalHandlers(log: Logger, stopFns: (() => Promise<void>)[]): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    log.info('stopping', { signal });
    void (async () => {
      // Reverse order of start: the HTTP API first, the agent (and its uploads) last.
      for (const stop of [...stopFns].reverse()) {
        try {
          await stop();
        } catch (error) {
          log.error('error while stopping', { error: describeError(error) });
        }
      }
      log.info('stopped');
      process.exit(0);
    })();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

run().catch((error: unknown) => {
  const message = error instanceof AppError && error.hint !== undefined ? `${describeError(error)} (${error.hint})` : describeError(error);
  process.stderr.write(`memsync: fatal: ${message}\n`);
  process.exit(1);
});
