import path from 'node:path';
import type { z } from 'zod';
import { Agent, agentSettings } from '../agent.js';
import type { Config } from '../config.js';
import type { Encryption } from '../crypto/encryption.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { SyncOperations } from '../operations.js';
import { createRemoteStore } from '../remote/store-factory.js';
import type { RemoteStore } from '../remote/store.js';
import { Restorer } from '../restore/restorer.js';
import { DEFAULT_RETRY } from '../retry.js';
import { MemoryServiceClient } from '../service/memory-service.js';
import { agentStateSchema, freshAgentState, type AgentState } from '../state/agent-state.js';
import { readJsonFile } from '../state/atomic-file.js';
import { emptyHashCache, hashCacheSchema, type HashCacheDocument } from '../state/hash-cache.js';
import { PersistedJson } from '../state/persisted.js';
import type { ProgressDisplay } from './progress.js';

/**
 * What a command is built from: the classes app.ts wires for the agent (S3 store, Agent,
 * Restorer, SyncOperations), wired for a process that may run beside an agent using the same
 * state directory. The agent owns state.json and hash-cache.json and rewrites them whenever it
 * likes; a second writer would lose its updates or have them lost. So a command only reads
 * them (never creates, rewrites or sets aside a corrupt one) and keeps every change in memory.
 */

export interface CommandContext {
  config: Config;
  store: RemoteStore;
  log: Logger;
  progress: ProgressDisplay;
  /** The command's answer, on stdout. */
  out: (text: string) => void;
  /** Aborted on SIGINT/SIGTERM, for commands that stop cleanly (upload). */
  signal: AbortSignal;
  now: () => number;
  /** The configured client-side encryption; undefined when off. */
  encryption: Encryption | undefined;
}

export function openStore(config: Config): Promise<RemoteStore> {
  return createRemoteStore(config);
}

export const STATE_FILE = 'state.json';
export const HASH_CACHE_FILE = 'hash-cache.json';

/** The agent's files as they are now; undefined where absent or unreadable. */
export interface AgentFiles {
  state: AgentState | undefined;
  hashCache: HashCacheDocument | undefined;
}

export async function readAgentFiles(stateDir: string, log: Logger): Promise<AgentFiles> {
  return {
    state: await readOwnedJson(path.join(stateDir, STATE_FILE), agentStateSchema, log),
    hashCache: await readOwnedJson(path.join(stateDir, HASH_CACHE_FILE), hashCacheSchema, log),
  };
}

/** The agent writes atomically (temp file, rename), so a read never sees half a file. */
async function readOwnedJson<T>(file: string, schema: z.ZodType<T>, log: Logger): Promise<T | undefined> {
  let raw: unknown;
  try {
    raw = await readJsonFile(file);
  } catch (error) {
    log.warn('cannot read the agent\'s state file; going on without it', { file, error: describeError(error) });
    return undefined;
  }
  if (raw === undefined) return undefined;
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  log.warn('the agent\'s state file is not valid; going on without it', { file });
  return undefined;
}

export interface SyncGraph {
  agent: Agent;
  restorer: Restorer;
  operations: SyncOperations;
  /** This command's in-memory copy of the agent's state: outcomes (conflicts, last error) land here. */
  state: PersistedJson<AgentState>;
  stop(): Promise<void>;
}

/**
 * The agent's objects, never started: no watcher, no schedule, no HTTP server. State starts
 * as a copy of the agent's, so uploads carry the same agent id and may finish what an
 * interrupted agent upload left (objects marked with that id), and the digest cache spares
 * re-reading files the agent has already hashed.
 */
export function buildSyncGraph(context: CommandContext, files: AgentFiles): SyncGraph {
  const { config, store, log } = context;
  const state = new PersistedJson<AgentState>(undefined, agentStateSchema, () => structuredClone(files.state) ?? freshAgentState(), log);
  const hashCache = new PersistedJson<HashCacheDocument>(undefined, hashCacheSchema, () => structuredClone(files.hashCache) ?? emptyHashCache(), log);
  const { encryption } = context;
  const restorer = new Restorer({
    store,
    backupDir: config.backupDir,
    multipartThresholdBytes: config.multipartThresholdBytes,
    retry: DEFAULT_RETRY,
    log: log.child({ component: 'restore' }),
    now: context.now,
    ...(encryption === undefined ? {} : { keyring: encryption.keyring }),
    localBaseMinFileBytes: config.localBaseMinFileBytes,
  });
  const agent = new Agent({
    ...agentSettings(config),
    store,
    state,
    hashCache,
    log,
    retry: DEFAULT_RETRY,
    now: context.now,
    ...(encryption === undefined ? {} : { encryption }),
    // A running agent's multipart upload of a large file can be older than any threshold, and
    // this process cannot see the agent's jobs: it never aborts multipart uploads.
    staleMultipartMs: Number.POSITIVE_INFINITY,
    // Its digest cache is the agent's file plus what this command read: too little to say which
    // signatures are still needed, so only the agent prunes them.
    pruneSignatures: false,
  });
  const memoryService = config.memoryService === undefined ? undefined : new MemoryServiceClient(config.memoryService);
  const operations = new SyncOperations({ agent, restorer, memoryService, state, backupDir: config.backupDir, settleMs: config.settleMs, log: log.child({ component: 'operations' }) });
  return { agent, restorer, operations, state, stop: () => agent.stop() };
}
