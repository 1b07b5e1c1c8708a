// The agent watches inside a snapshot only until it is uploaded: thousands of uploaded snapshots
// cost no watches. A change to an uploaded snapshot is then found by the next sweep, which gives
// the conflict warning as it would for a change seen as it happened.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agent.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { inotifyWatchCount } from '../helpers/inotify.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { agentInMemory } from '../helpers/test-agent.js';
import { tempDir } from '../helpers/tmp.js';

const agents: Agent[] = [];
afterEach(async () => {
  for (const agent of agents.splice(0)) await agent.stop();
});

const snapshotName = (i: number): string => `auto_20250101_${String(i).padStart(6, '0')}`;

async function writeSnapshot(backupDir: string, name: string, content: string): Promise<void> {
  await mkdir(path.join(backupDir, name), { recursive: true });
  await writeFile(path.join(backupDir, name, 'metadata.json'), content);
  await writeFile(path.join(backupDir, name, 'memories.json'), `[${JSON.stringify(content)}]`);
}

function agentOver(backupDir: string, store: MemoryRemoteStore, lines: LogLine[], watchAfterChangeMs?: number): Agent {
  const agent = agentInMemory({ backupDir, store, log: recordingLogger(lines), ...(watchAfterChangeMs === undefined ? {} : { watchAfterChangeMs }) });
  agents.push(agent);
  return agent;
}

const uploadedNames = (lines: LogLine[]): unknown[] => lines.filter((line) => line.message === 'snapshot uploaded').map((line) => line.fields.snapshot);

describe('what the agent watches', () => {
  it('watches inside snapshots until they are uploaded and quiet, then only the backup directory', async () => {
    const backupDir = path.join(await tempDir('watch-scope'), 'backups');
    const names = Array.from({ length: 20 }, (_, i) => snapshotName(i));
    for (const name of names) await writeSnapshot(backupDir, name, `{"n":"${name}"}`);
    const store = new MemoryRemoteStore();
    const lines: LogLine[] = [];
    // Uploaded snapshots written a moment ago are watched a while longer: here, 200 ms.
    const agent = agentOver(backupDir, store, lines, 200);
    const before = inotifyWatchCount();
    await agent.start();
    await expect.poll(() => uploadedNames(lines).length, { timeout: 10_000 }).toBe(names.length);
    await expect.poll(() => inotifyWatchCount() - before).toBe(1);

    // A new one is watched inside from its first appearance, and no longer once uploaded.
    const late = snapshotName(99);
    await writeSnapshot(backupDir, late, '{"late":true}');
    await expect.poll(() => uploadedNames(lines), { timeout: 10_000 }).toContain(late);
    await expect.poll(() => inotifyWatchCount() - before).toBe(1);
  });

  it('sees a file grow in a snapshot uploaded a moment ago, and warns of the conflict without waiting for a sweep', async () => {
    const backupDir = path.join(await tempDir('watch-scope-recent'), 'backups');
    const name = snapshotName(2);
    await writeSnapshot(backupDir, name, '{"v":1}');
    const store = new MemoryRemoteStore();
    const lines: LogLine[] = [];
    const agent = agentOver(backupDir, store, lines);
    await agent.start();
    await expect.poll(() => uploadedNames(lines), { timeout: 10_000 }).toEqual([name]);

    // The service goes on writing after a pause longer than the settle window.
    await writeFile(path.join(backupDir, name, 'memories.json'), '["v1", "v2"]');
    await expect
      .poll(() => lines.filter((line) => line.level === 'warn' && line.message.startsWith('conflict:')).map((line) => line.fields.snapshot), { timeout: 10_000 })
      .toEqual([name]);
  });

  it('finds a change to an uploaded snapshot long quiet at the next sweep and warns of the conflict', async () => {
    const backupDir = path.join(await tempDir('watch-scope-conflict'), 'backups');
    const name = snapshotName(1);
    await writeSnapshot(backupDir, name, '{"v":1}');
    const store = new MemoryRemoteStore();
    const lines: LogLine[] = [];
    const agent = agentOver(backupDir, store, lines, 0);
    await agent.start();
    await expect.poll(() => uploadedNames(lines), { timeout: 10_000 }).toEqual([name]);

    // Rewritten in place, the folder itself untouched: nothing inside is watched any more.
    await writeFile(path.join(backupDir, name, 'metadata.json'), '{"v":2}');
    // A snapshot written a moment ago is left to settle: sweep until the change is judged.
    await expect
      .poll(
        async () => {
          await agent.sweep('manual');
          return lines.filter((line) => line.level === 'warn' && line.message.startsWith('conflict:')).map((line) => line.fields.snapshot);
        },
        { timeout: 10_000 },
      )
      .toEqual([name]);
    expect(uploadedNames(lines)).toEqual([name]);
  });
});
