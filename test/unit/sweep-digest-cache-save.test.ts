// A sweep that finds nothing to drop from the digest cache leaves its file alone: at 10,000
// snapshots the cache is 7 MB of JSON, and rewriting it after every sweep was a memory peak of its own.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agent.js';
import { silentLogger } from '../../src/log.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { emptyHashCache, hashCacheSchema, type HashCacheDocument } from '../../src/state/hash-cache.js';
import { PersistedJson } from '../../src/state/persisted.js';
import { agentInMemory } from '../helpers/test-agent.js';
import { tempDir } from '../helpers/tmp.js';

const NAME = 'auto_20250101_000000';
const agents: Agent[] = [];
afterEach(async () => {
  for (const agent of agents.splice(0)) await agent.stop();
});

describe('the digest cache after a sweep', () => {
  it('is saved only when the sweep dropped digests of snapshots gone locally', async () => {
    const stateDir = await tempDir('sweep-cache-state');
    const backupDir = path.join(await tempDir('sweep-cache'), 'backups');
    await mkdir(path.join(backupDir, NAME), { recursive: true });
    await writeFile(path.join(backupDir, NAME, 'metadata.json'), '{"m":1}');
    const saves: string[] = [];
    const hashCache = new PersistedJson<HashCacheDocument>(path.join(stateDir, 'hash-cache.json'), hashCacheSchema, emptyHashCache, silentLogger, {
      write: async (_file, content) => void saves.push(content),
    });
    const store = new MemoryRemoteStore();
    const agent = agentInMemory({ backupDir, store, hashCache });
    agents.push(agent);
    await agent.start();
    await expect.poll(() => store.objects.has(`${NAME}/.memsync-manifest.json`), { timeout: 10_000 }).toBe(true);
    await hashCache.flush();
    const savedAfterUpload = saves.length;
    expect(savedAfterUpload).toBeGreaterThan(0);

    const inSync = await agent.sweep('manual');
    expect(inSync.inSync).toEqual([NAME]);
    await hashCache.flush();
    expect(saves.length).toBe(savedAfterUpload);

    await rm(path.join(backupDir, NAME), { recursive: true });
    await agent.sweep('manual');
    await hashCache.flush();
    expect(saves.length).toBe(savedAfterUpload + 1);
    expect(Object.keys(hashCache.current.entries)).toEqual([]);
  });
});
