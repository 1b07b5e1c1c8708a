// A sweep that fails (the store down at start) is retried with backoff until one succeeds; while
// the store is away, status lists the local snapshots as pending.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agent.js';
import { AppError } from '../../src/errors.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import type { RemoteObject } from '../../src/remote/store.js';
import { sweepRetryDelayMs } from '../../src/schedule/sweep-retry.js';
import { agentInMemory } from '../helpers/test-agent.js';
import { tempDir } from '../helpers/tmp.js';

const NAME = 'auto_20250101_000000';
const agents: Agent[] = [];
afterEach(async () => {
  for (const agent of agents.splice(0)) await agent.stop();
});

/** A store whose listings fail while `down` is set, as an unreachable server's would. */
class SwitchableStore extends MemoryRemoteStore {
  down = true;
  listings = 0;
  override async *listObjects(keyPrefix: string): AsyncIterable<RemoteObject[]> {
    this.listings += 1;
    if (this.down) throw new AppError('remote_unavailable', 'list: connect ECONNREFUSED 127.0.0.1:9');
    yield* super.listObjects(keyPrefix);
  }
}

describe('sweep retries', () => {
  it('double from the base up to the ceiling', () => {
    const delays = { baseDelayMs: 5_000, maxDelayMs: 300_000 };
    expect([1, 2, 3, 4, 5, 6, 7, 8, 100].map((attempt) => sweepRetryDelayMs(attempt, delays))).toEqual([5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
  });

  it('retries a start sweep that failed until the store answers, then uploads what was waiting', async () => {
    const backupDir = path.join(await tempDir('sweep-retry'), 'backups');
    await mkdir(path.join(backupDir, NAME), { recursive: true });
    await writeFile(path.join(backupDir, NAME, 'metadata.json'), '{"m":1}');
    const store = new SwitchableStore();
    const agent = agentInMemory({ backupDir, store, sweepRetry: { baseDelayMs: 50, maxDelayMs: 200 } });
    agents.push(agent);
    await agent.start();
    await expect.poll(() => store.listings, { timeout: 5_000 }).toBeGreaterThanOrEqual(3);
    expect(agent.status().local.pending).toEqual([NAME]);
    expect(agent.health.available).toBe(false);

    store.down = false;
    await expect.poll(() => store.objects.has(`${NAME}/.memsync-manifest.json`), { timeout: 10_000 }).toBe(true);
    expect(agent.health.available).toBe(true);
    expect(agent.status().local.pending).toEqual([]);
  });
});
