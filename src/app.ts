import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Agent, agentSettings } from './agent.js';
import { Heartbeat } from './alerts/heartbeat.js';
import { openEncryption, type Encryption } from './crypto/encryption.js';
import { makeConfiguredDirectory } from './directories.js';
import { silentNotifier, WebhookNotifier } from './alerts/notifier.js';
import type { Config } from './config.js';
import { AppError, describeError } from './errors.js';
import type { SyncApi } from './http/routes/sync.js';
import { buildServer } from './http/server.js';
import { fileOperationsPastDeadline } from './snapshot/safe-open.js';
import type { Logger } from './log.js';
import { Metrics } from './metrics.js';
import { SyncOperations } from './operations.js';
import type { ConditionalWrites } from './remote/conditional-writes.js';
import { ConditionalWritesProbe } from './remote/conditional-writes-probe.js';
import { createRemoteStore } from './remote/store-factory.js';
import type { RemoteStore } from './remote/store.js';
import { Restorer } from './restore/restorer.js';
import { RetentionRunner, type RetentionStatus } from './retention/apply.js';
import { SweepFollowUp } from './retention/after-sweep.js';
import { DEFAULT_RETRY, type RetryPolicy } from './retry.js';
import { storeStatus, type StoreStatus } from './remote/s3-profile-status.js';
import { MemoryServiceClient } from './service/memory-service.js';
import { agentStateSchema, freshAgentState } from './state/agent-state.js';
import { emptyHashCache, hashCacheSchema } from './state/hash-cache.js';
import { PersistedJson } from './state/persisted.js';

/**
 * Composition root: builds every object from the configuration, starts them in order and
 * stops them in reverse. main.ts adds the process around it (signals, exit codes); tests
 * build the same graph, optionally with another store (fault injection) and without listening.
 */

export interface Memsync {
  server: FastifyInstance;
  agent: Agent | undefined;
  operations: SyncOperations | undefined;
  /** Starts watching, the start sweep, the automatic download, and listening when asked. */
  start(options?: { listen?: boolean }): Promise<void>;
  stop(): Promise<void>;
}

export interface BuildOptions {
  /** Replaces the S3 store (tests of fault paths a real server cannot produce on demand). */
  store?: RemoteStore;
  retry?: RetryPolicy;
  /** Minimum time between two alerts of one type (default 5 minutes); tests shorten it. */
  alertIntervalMs?: number;
  /** Replaces the state directory's file writes (tests of a directory that refuses them, which root cannot make). */
  writeStateFile?: (filePath: string, content: string) => Promise<void>;
  /** How long start waits for the store's first answer before it watches without it (default START_PROBE_WAIT_MS). */
  startProbeWaitMs?: number;
}

/**
 * Start waits this long for the store's first answer, so that a refusal (credentials, a missing
 * bucket) still stops memsync at once with exit 3. A store that has not answered by then is not
 * waited for: memsync watches and serves meanwhile (its readiness is its own, see /readyz), and
 * the answer, when it comes, is handled as any later one would be.
 */
const START_PROBE_WAIT_MS = 10_000;

export async function buildMemsync(config: Config, log: Logger, options: BuildOptions = {}): Promise<Memsync> {
  const metrics = new Metrics({ enabled: config.enabled });
  const http = { apiToken: config.http.apiToken, metrics, metricsOpen: config.http.metricsOpen, log: log.child({ component: 'http' }) };
  if (!config.enabled) {
    // Metrics still answer (memsync_enabled 0), so a scraper tells "switched off" from "down".
    const server = await buildServer({ ...http, sync: undefined, readiness: () => ({ enabled: false, config: true, watcher: false, remote: false, state: true, localFiles: true }) });
    return {
      server,
      agent: undefined,
      operations: undefined,
      start: async ({ listen = true } = {}) => {
        log.info('cloud sync is disabled (CLOUD_SYNC_ENABLED is not true): watching nothing, making no S3 calls');
        if (listen) await listenOn(server, config, log);
      },
      stop: () => server.close(),
    };
  }

  await makeConfiguredDirectory(config.stateDir, 'CLOUD_SYNC_STATE_DIR', 0o700);
  const stateLog = log.child({ component: 'state' });
  const write = options.writeStateFile === undefined ? {} : { write: options.writeStateFile };
  const state = new PersistedJson(path.join(config.stateDir, 'state.json'), agentStateSchema, freshAgentState, stateLog, write);
  const hashCache = new PersistedJson(path.join(config.stateDir, 'hash-cache.json'), hashCacheSchema, emptyHashCache, stateLog, { saveDelayMs: 2000, ...write });
  await state.load();
  // The agent id is in every object's metadata and every name claim: it is on disk before the
  // first write, or an agent killed before its first save would find its own claims a stranger's.
  // A new id that cannot be saved is refused outright; one already on disk survives a failing
  // save, which then shows in /sync/status, /readyz and the metrics.
  await state.saveNow().catch((error: unknown) => {
    if (state.wasLoaded) return;
    throw new AppError('config', `CLOUD_SYNC_STATE_DIR=${config.stateDir}: cannot save memsync's agent id there (${describeError(error)})`, {
      hint: 'memsync marks its objects and name claims with an id kept in this directory; make it writable by the user memsync runs as',
      cause: error,
    });
  });
  await hashCache.load();

  const store = options.store ?? (await createRemoteStore(config));
  const retry = options.retry ?? DEFAULT_RETRY;
  // A passphrase is stretched here, once: a few hundred milliseconds and 128 MiB, then released.
  const encryption = config.encryption === undefined ? undefined : await openEncryption(config.encryption, config.stateDir);
  if (encryption !== undefined) log.info('client-side encryption is on: files and manifests are encrypted before upload', { keyId: encryption.keyId, source: encryption.source });
  const restorer = new Restorer({
    store,
    backupDir: config.backupDir,
    multipartThresholdBytes: config.multipartThresholdBytes,
    retry,
    log: log.child({ component: 'restore' }),
    now: Date.now,
    metrics,
    ...(encryption === undefined ? {} : { keyring: encryption.keyring }),
    localBaseMinFileBytes: config.localBaseMinFileBytes,
  });
  const { notifyUrl, heartbeatUrl } = config.alerts;
  const notifier =
    notifyUrl === undefined ? undefined : new WebhookNotifier({ url: notifyUrl, log: log.child({ component: 'alerts' }), ...(options.alertIntervalMs === undefined ? {} : { intervalMs: options.alertIntervalMs }) });
  const heartbeat = heartbeatUrl === undefined ? undefined : new Heartbeat({ url: heartbeatUrl, log: log.child({ component: 'alerts' }) });
  const retention =
    config.retention === undefined
      ? undefined
      : new RetentionRunner({ ...config.retention, objectLockDays: config.s3.objectLock?.days }, {
          store,
          log: log.child({ component: 'retention' }),
          now: Date.now,
          isBusy: (name) => restorer.isRestoring(name) || state.current.conflicts[name] !== undefined,
          onDeleted: (count) => metrics.snapshotsDeletedByRetention(count),
        });
  /** Found out at start, or before the first upload when the store was unreachable at start; unknown until then. */
  const conditionalWrites = new ConditionalWritesProbe(store, log.child({ component: 'remote' }));
  const agent = new Agent({
    ...agentSettings(config),
    conditionalWritesHonoured: () => conditionalWrites.mode === 'honoured',
    beforeUpload: () => conditionalWrites.ensure(),
    store,
    state,
    hashCache,
    log,
    retry,
    metrics,
    ...(encryption === undefined ? {} : { encryption }),
    notifier: notifier ?? silentNotifier,
    // Sweeps start with agent.start(), after followUp exists.
    ...(retention === undefined && heartbeat === undefined ? {} : { afterSweep: (sweep) => followUp.handle(sweep) }),
  });
  const followUp = new SweepFollowUp({
    retention,
    heartbeat,
    refreshIndex: () => agent.refreshRemoteIndex(),
    failingUploads: () => agent.failingUploads,
    conflicts: () => Object.keys(state.current.conflicts),
    restoring: () => restorer.active().map((r) => r.snapshot),
    log: log.child({ component: 'retention' }),
  });
  metrics.readFrom({
    counters: () => state.current.counters,
    lastSuccessAtMs: () => state.current.lastSuccess?.atMs,
    uploadQueue: () => agent.uploadQueue,
    remoteAvailable: () => agent.health.available,
    stateSaved: () => state.health.ok,
    localFileOperationsStuck: fileOperationsPastDeadline,
  });
  const memoryService = config.memoryService === undefined ? undefined : new MemoryServiceClient(config.memoryService);
  const operations = new SyncOperations({ agent, restorer, memoryService, state, backupDir: config.backupDir, settleMs: config.settleMs, log: log.child({ component: 'operations' }), notifier: notifier ?? silentNotifier });
  const server = await buildServer({
    ...http,
    sync: syncApi(agent, operations, restorer, config.backupDir, conditionalWrites, () => retentionStatus(retention), encryptionStatus(encryption), () => storeStatus(config, conditionalWrites.mode)),
    readiness: () => ({ enabled: true, config: true, watcher: agent.watching, remote: agent.health.available === true, state: state.health.ok, localFiles: fileOperationsPastDeadline() === 0 }),
  });

  const stopping = new AbortController();
  let startupDownload: Promise<unknown> = Promise.resolve();

  return {
    server,
    agent,
    operations,
    start: async ({ listen = true } = {}) => {
      // Listening comes first: a store that hangs holds the probe below for a minute of timeouts,
      // and a liveness probe must get /healthz meanwhile (/readyz says the watcher is not running
      // yet); the watcher waits for the probe only START_PROBE_WAIT_MS.
      if (listen) await listenOn(server, config, log);
      // A refusal (credentials, missing bucket) is fatal and said once; an unreachable store is retried.
      const firstAnswer = agent.health.track(store.checkAccess()).then(
        () => {
          log.info('remote store reachable', { location: store.location });
          return 'reachable' as const;
        },
        (error: unknown) => {
          if (error instanceof AppError && (error.kind === 'remote_rejected' || error.kind === 'config')) return error;
          log.error('remote store unreachable at start; will retry', { location: store.location, error: describeError(error) });
          return 'unreachable' as const;
        },
      );
      const waited = await firstAnswerWithin(firstAnswer, options.startProbeWaitMs ?? START_PROBE_WAIT_MS);
      if (waited instanceof AppError) throw waited;
      // The conditional-write probe can hang on a request lost on the way (a minute of timeouts):
      // every upload waits for its answer (beforeUpload), so watching need not wait longer.
      if (waited === 'reachable' && (await firstAnswerWithin(conditionalWrites.ensure(), options.startProbeWaitMs ?? START_PROBE_WAIT_MS)) === 'still waiting') {
        log.warn('the conditional-write probe has not answered yet; watching meanwhile, uploads wait for it', { location: store.location });
      }
      if (waited === 'still waiting') {
        // Too late to stop the start: a refusal after this is logged and shown like one a later sweep finds.
        log.warn('remote store has not answered yet; watching without it meanwhile', { location: store.location, waitedMs: options.startProbeWaitMs ?? START_PROBE_WAIT_MS });
      }
      await restorer.cleanStaging();
      await agent.start();
      startupDownload = operations.autoDownloadIfEmpty(stopping.signal).catch((error: unknown) => {
        if (!stopping.signal.aborted) log.error('automatic download at start failed', { error: describeError(error) });
      });
    },
    stop: async () => {
      // A download at start still running is cancelled; its staging folder is removed with it.
      stopping.abort();
      await startupDownload;
      await server.close();
      await agent.stop();
      await followUp.stop(config.shutdownTimeoutMs);
      await Promise.all([notifier?.stop(), heartbeat?.stop()]);
      store.close();
    },
  };
}

/** What status says of encryption: on or off, and which key (an id that reveals nothing of it). */
export interface EncryptionStatus {
  enabled: boolean;
  source: 'key' | 'passphrase' | null;
  keyId: string | null;
}

function encryptionStatus(encryption: Encryption | undefined): EncryptionStatus {
  return encryption === undefined ? { enabled: false, source: null, keyId: null } : { enabled: true, source: encryption.source, keyId: encryption.keyId };
}

function retentionStatus(retention: RetentionRunner | undefined): RetentionStatus {
  return retention?.status() ?? { policy: null, dryRun: false, lastRunAt: null, kept: 0, lastDeleted: [], wouldDelete: [], lastError: null, waitingForLocks: [] };
}

function syncApi(
  agent: Agent,
  operations: SyncOperations,
  restorer: Restorer,
  backupDir: string,
  conditionalWrites: { mode: ConditionalWrites | undefined },
  retention: () => RetentionStatus,
  encryption: EncryptionStatus,
  store: () => StoreStatus,
): SyncApi {
  return {
    upload: () => operations.manualUpload(),
    describeDownload: async (name) => {
      const target = await operations.resolveDownloadTarget(name);
      return `download ${target}${name === undefined ? ' (the latest remote snapshot by time)' : ''} into ${backupDir}, refusing if a different snapshot of that name exists there`;
    },
    download: (name) => operations.download(name),
    restore: (name) => operations.restore(name),
    status: () => ({ ...agent.status(), restoring: restorer.active(), memoryService: operations.serviceConfigured, conditionalWrites: conditionalWrites.mode ?? 'unknown', retention: retention(), encryption, store: store() }),
    remoteIndex: async (maxAgeMs) => (Date.now() - agent.remoteIndex.listedAtMs > maxAgeMs ? agent.refreshRemoteIndex() : agent.remoteIndex),
    serviceConfigured: operations.serviceConfigured,
  };
}

/** The answer, or 'still waiting' once `waitMs` has passed first (the timer never outlives the race). */
async function firstAnswerWithin<T>(answer: Promise<T>, waitMs: number): Promise<T | 'still waiting'> {
  let timer: NodeJS.Timeout | undefined;
  const waiting = new Promise<'still waiting'>((resolve) => (timer = setTimeout(() => resolve('still waiting'), waitMs)));
  try {
    return await Promise.race([answer, waiting]);
  } finally {
    clearTimeout(timer);
  }
}

async function listenOn(server: FastifyInstance, config: Config, log: Logger): Promise<void> {
  try {
    const address = await server.listen({ host: config.http.host, port: config.http.port });
    log.info('HTTP API listening', { address, auth: config.http.apiToken === undefined ? 'none (loopback only)' : 'bearer token', metricsOpen: config.http.metricsOpen });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new AppError('config', `cannot listen on ${config.http.host}:${config.http.port}: ${code ?? describeError(error)}`, {
      hint: 'set CLOUD_SYNC_PORT to a free port or CLOUD_SYNC_HOST to an address of this machine',
    });
  }
}
