import { Agent, type AgentOptions } from '../../src/agent.js';
import { silentLogger } from '../../src/log.js';
import { agentStateSchema, freshAgentState, type AgentState } from '../../src/state/agent-state.js';
import { emptyHashCache, hashCacheSchema, type HashCacheDocument } from '../../src/state/hash-cache.js';
import { PersistedJson } from '../../src/state/persisted.js';

/** A cron schedule that never comes during a test: sweeps run only at start or when asked. */
export const NEVER_SCHEDULED = '0 0 1 1 *';

/**
 * An agent over `backupDir` and `store` with state and digest cache in memory, a 100 ms settle
 * window, 2 files in flight and one attempt per request; `overrides` replace any of those.
 */
export function agentInMemory(options: Pick<AgentOptions, 'backupDir' | 'store'> & Partial<AgentOptions>): Agent {
  return new Agent({
    settleMs: 100,
    concurrency: 2,
    multipartThresholdBytes: 16 * 1024 * 1024,
    shutdownTimeoutMs: 1000,
    schedule: NEVER_SCHEDULED,
    state: new PersistedJson<AgentState>(undefined, agentStateSchema, freshAgentState, silentLogger),
    hashCache: new PersistedJson<HashCacheDocument>(undefined, hashCacheSchema, emptyHashCache, silentLogger),
    log: silentLogger,
    retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 2 },
    ...options,
  });
}
