import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import PQueue from 'p-queue';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent.js';
import { isAppError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { statSnapshot } from '../../src/snapshot/scan.js';
import { agentStateSchema, freshAgentState, type AgentState } from '../../src/state/agent-state.js';
import { emptyHashCache, hashCacheSchema, type HashCacheDocument } from '../../src/state/hash-cache.js';
import { PersistedJson } from '../../src/state/persisted.js';
import { SnapshotUploader } from '../../src/upload/snapshot-uploader.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { tempDir } from '../helpers/tmp.js';
import { rejection } from '../helpers/uploader-harness.js';

const MIB = 1024 * 1024;
const NAME = 'auto_20250101_000000';

async function backupDirWith(files: Record<string, Buffer>): Promise<string> {
  const backupDir = path.join(await tempDir('unrestorable'), 'backups');
  for (const [relative, bytes] of Object.entries(files)) {
    const absolute = path.join(backupDir, NAME, ...relative.split('/'));
    await mkdir(path.dirname(absolute), { recursive: true });
    await writeFile(absolute, bytes);
  }
  return backupDir;
}

function uploaderFor(store: MemoryRemoteStore, backupDir: string): SnapshotUploader {
  return new SnapshotUploader({
    store,
    hashCache: new PersistedJson<HashCacheDocument>(undefined, hashCacheSchema, emptyHashCache, silentLogger),
    fileQueue: new PQueue({ concurrency: 2 }),
    agentId: 'agent-under-test',
    backupDir,
    multipartThresholdBytes: 5 * MIB,
    retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 },
    log: silentLogger,
    now: () => Date.now(),
  });
}

describe('a snapshot holding a file path that could not be restored', () => {
  it.each([
    ['a newline', 'a\nb'],
    ['a tab', 'notes\t1.json'],
    ['a backslash', 'dir\\file.json'],
    ['DEL in a subdirectory', 'sub/x\u007fy'],
    ["memsync's claim name at the top", '.memsync-claim'],
  ])('with %s is refused before anything is written, naming the path', async (_label, badPath) => {
    const store = new MemoryRemoteStore();
    // A large file too: its multipart upload would claim the name first, and nothing may be written at all.
    const backupDir = await backupDirWith({ 'metadata.json': Buffer.from('{}'), 'large.bin': randomBytes(6 * MIB), [badPath]: Buffer.from('x') });
    const stat = await statSnapshot(backupDir, NAME);
    expect(stat.files.map((f) => f.path)).toContain(badPath);

    const error = await rejection(uploaderFor(store, backupDir).upload(stat, new AbortController().signal, () => undefined));

    expect(isAppError(error, 'bad_input')).toBe(true);
    if (!isAppError(error)) return;
    expect(error.retryable).toBe(false);
    expect(error.message).toContain(JSON.stringify(badPath));
    expect(error.message).toContain(NAME);
    expect(error.hint).toMatch(/control characters.*backslash/);
    expect(store.putLog).toEqual([]);
    expect(store.objects.size).toBe(0);
    expect(store.multipartUploads).toEqual([]);
  });

  describe('through the agent', () => {
    const agents: Agent[] = [];
    afterEach(async () => {
      for (const agent of agents.splice(0)) await agent.stop();
    });

    it('fails its upload, is not marked complete and shows as failed in status, with a log line naming the path', async () => {
      const store = new MemoryRemoteStore();
      const backupDir = await backupDirWith({ 'metadata.json': Buffer.from('{}'), 'a\nb': Buffer.from('x') });
      const lines: LogLine[] = [];
      const state = new PersistedJson<AgentState>(undefined, agentStateSchema, freshAgentState, silentLogger);
      const agent = new Agent({
        backupDir,
        settleMs: 0,
        concurrency: 2,
        multipartThresholdBytes: 5 * MIB,
        shutdownTimeoutMs: 1000,
        schedule: '0 0 * * *',
        store,
        state,
        hashCache: new PersistedJson<HashCacheDocument>(undefined, hashCacheSchema, emptyHashCache, silentLogger),
        log: recordingLogger(lines),
        retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 },
      });
      agents.push(agent);

      const report = await agent.syncNow();

      expect(report.failed).toEqual([NAME]);
      expect(report.uploaded).toEqual([]);
      expect(store.objects.size).toBe(0);
      expect((await agent.refreshRemoteIndex()).snapshots.get(NAME)).toBeUndefined();
      const status = agent.status();
      expect(status.lastError).toMatchObject({ snapshot: NAME, kind: 'bad_input' });
      expect(status.lastError?.message).toContain('"a\\nb"');
      expect(status.counters).toMatchObject({ uploadFailures: 1, snapshotsUploaded: 0 });
      expect(status.local.pending).toEqual([NAME]);
      const failed = lines.filter((line) => line.level === 'error' && line.message === 'upload failed');
      expect(failed).toHaveLength(1);
      expect(failed[0]?.fields).toMatchObject({ snapshot: NAME, kind: 'bad_input' });
      // JSON-escaped: the newline is shown as \n, never as a line break in the log.
      expect(String(failed[0]?.fields.error)).toContain('"a\\nb"');
      expect(String(failed[0]?.fields.error)).not.toContain('a\nb');
      expect(String(failed[0]?.fields.hint)).toMatch(/control characters/);
    });
  });
});
