// A snapshot the service prunes while its manifest is being written is completed all the same
// (its files are stored and verified): the agent must then report it uploaded, not lost.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agent.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import type { BodySource, PutOptions } from '../../src/remote/store.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { agentInMemory } from '../helpers/test-agent.js';
import { tempDir } from '../helpers/tmp.js';

const NAME = 'auto_20250101_000000';
const agents: Agent[] = [];
afterEach(async () => {
  for (const agent of agents.splice(0)) await agent.stop();
});

describe('a snapshot pruned while its manifest is written', () => {
  it('is reported uploaded once, not as removed before it could be uploaded', async () => {
    const backupDir = path.join(await tempDir('pruned-during-commit'), 'backups');
    await mkdir(path.join(backupDir, NAME), { recursive: true });
    await writeFile(path.join(backupDir, NAME, 'metadata.json'), '{"memories":1}');
    await writeFile(path.join(backupDir, NAME, 'config.json'), '{}');
    let agent: Agent | undefined;

    /** The prune lands while the manifest's PUT is on its way; the agent has seen it gone before the PUT ends. */
    class PruneDuringManifest extends MemoryRemoteStore {
      override async put(key: string, body: BodySource, options: PutOptions): Promise<void> {
        if (key !== `${NAME}/.memsync-manifest.json`) return super.put(key, body, options);
        await rm(path.join(backupDir, NAME), { recursive: true, force: true });
        await expect.poll(() => agent?.status().local.count, { timeout: 10_000 }).toBe(0);
        return super.put(key, body, { ...options, signal: undefined });
      }
    }

    const lines: LogLine[] = [];
    agent = agentInMemory({ backupDir, store: new PruneDuringManifest(), log: recordingLogger(lines) });
    agents.push(agent);
    await agent.start();

    await expect.poll(() => lines.filter((line) => line.message === 'snapshot uploaded').map((line) => line.fields.snapshot), { timeout: 10_000 }).toEqual([NAME]);
    // The removal is judged once the upload has settled: the remote copy stays.
    await expect.poll(() => lines.some((line) => line.message === 'snapshot removed locally; the remote copy stays'), { timeout: 10_000 }).toBe(true);
    expect(lines.filter((line) => line.message === 'snapshot removed before it could be uploaded')).toEqual([]);
    expect(agent.status().counters.prunedBeforeUpload).toBe(0);
    expect(agent.status().local.count).toBe(0);
  });
});
