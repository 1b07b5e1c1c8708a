// Scenario 5: restores that go wrong. The agent is killed mid-restore; the disk fills up
// mid-restore (a 20 MiB tmpfs); a remote object is altered after upload. In every case no
// partial or wrong snapshot appears under a real name in the backup directory, and the error
// names the file.
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { MANIFEST_FILE_NAME } from '../../src/snapshot/manifest.js';
import { startAgent, type AgentProcess } from '../helpers/agent-process.js';
import { apiUrl, START_TIMEOUT_MS, stopCleanly, useSandboxes, type Sandbox } from '../helpers/agent-sandbox.js';
import { memoryFileSet, writeBackup, type BackupFile, type WrittenBackup } from '../helpers/memory-service-sim.js';
import { scenarioSeed, seededRandom } from '../helpers/random.js';
import { sha256 } from '../helpers/remote-bucket.js';
import { runScenario, type ScenarioFigures } from '../helpers/reliability-figures.js';
import { testServer } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const server = testServer();
const PREFIX = 'memories/';
const SETTLE_MS = 400;
const MIB = 1024 * 1024;
const { sandbox, agentEnv, startAndSweep, remoteOf } = useSandboxes(server, { prefix: PREFIX, settleMs: SETTLE_MS, label: 'restore' });

/** Uploads `files` as one snapshot through a real agent; returns what was written. */
async function seedRemote(box: Sandbox, files: BackupFile[], time: Date): Promise<WrittenBackup> {
  const { agent } = await startAndSweep(box, 'seeding agent');
  const backup = await writeBackup(box.backupDir, { prefix: 'auto', time, files, chunkBytes: MIB });
  await agent.waitFor('snapshot uploaded', { snapshot: backup.name }, 120_000);
  await stopCleanly(agent);
  return backup;
}

/** The entries of a backup directory that are not memsync's hidden staging directories. */
async function visibleEntries(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((entry) => !entry.startsWith('.'));
}

async function localFiles(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) files.set(path.relative(dir, path.join(entry.parentPath, entry.name)), sha256(await readFile(path.join(entry.parentPath, entry.name))));
  }
  return files;
}

function expectedFiles(files: readonly BackupFile[]): Map<string, string> {
  return new Map(files.map((f) => [f.name, sha256(f.bytes)]));
}

/** A restoring agent: empty backup directory, its own state, same bucket. */
function restoringAgent(box: Sandbox, backupDir: string, stateDir: string, label: string): AgentProcess {
  return startAgent({ env: agentEnv(box, { CLOUD_SYNC_BACKUP_DIR: backupDir, CLOUD_SYNC_STATE_DIR: stateDir }), label });
}

function tallyLocal(ok: boolean, figures: ScenarioFigures): void {
  figures.add(ok ? 'verifiedRemote' : 'corrupted');
}

describe(`restore faults (${server.kind})`, () => {
  it('SIGKILL during restores: never a partial snapshot under its name; the next start cleans up and restores it whole', () =>
    runScenario('5a kill during restore', async (figures) => {
      const seed = scenarioSeed();
      const rng = seededRandom(seed);
      const box = await sandbox('kill');
      const files = memoryFileSet({ memories: 200, indexBytes: 150 * MIB, seed: `restore-${seed}` });
      const backup = await seedRemote(box, files, new Date(Date.UTC(2024, 8, 1, 0, 0, 0)));
      figures.add('snapshotsWritten');
      const restoreDir = await tempDir('memsync-restore');
      const stateDir = await tempDir('memsync-state');
      let killedMidRestore = 0;
      for (let k = 0; k < 4; k += 1) {
        // An empty backup directory: the start downloads the latest snapshot on its own.
        const agent = restoringAgent(box, restoreDir, stateDir, `restoring agent ${k + 1}`);
        if (k > 0) figures.add('restartsSurvived');
        const deadline = Date.now() + START_TIMEOUT_MS;
        while (Date.now() < deadline && !(await readdir(restoreDir)).some((e) => e.startsWith('.memsync-staging-'))) await sleep(10);
        await sleep(rng() * 400);
        const staged = (await readdir(restoreDir)).some((e) => e.startsWith('.memsync-staging-'));
        await agent.kill();
        const visible = await visibleEntries(restoreDir);
        if (visible.length === 0) {
          if (staged) killedMidRestore += 1;
        } else {
          // Done before the kill: then it is whole.
          expect(visible).toEqual([backup.name]);
          expect(await localFiles(path.join(restoreDir, backup.name))).toEqual(expectedFiles(files));
          break;
        }
      }
      figures.note(`${killedMidRestore} kills with a restore in its staging directory, nothing under the real name each time; seed ${seed}`);
      const agent = restoringAgent(box, restoreDir, stateDir, 'final restoring agent');
      figures.add('restartsSurvived');
      await agent.waitFor('snapshot restored', { snapshot: backup.name }, 120_000).catch(async (error: unknown) => {
        if ((await visibleEntries(restoreDir)).length === 0) throw error; // restored by a killed run instead
        return undefined;
      });
      const sorted = (m: Map<string, string>): string => JSON.stringify([...m].sort(([a], [b]) => a.localeCompare(b)));
      const ok = sorted(await localFiles(path.join(restoreDir, backup.name))) === sorted(expectedFiles(files));
      tallyLocal(ok, figures);
      expect(ok, 'restored snapshot byte-identical').toBe(true);
      expect((await readdir(restoreDir)).filter((e) => e.startsWith('.memsync-staging-')), 'staging leftovers').toEqual([]);
      await stopCleanly(agent);
    }));

  it('a full disk during a restore: a clean failure that names the file, no partial snapshot, space given back', () =>
    runScenario('5b disk full during restore', async (figures) => {
      const box = await sandbox('enospc');
      const files = memoryFileSet({ memories: 50, indexBytes: 30 * MIB, seed: 'enospc' });
      const backup = await seedRemote(box, files, new Date(Date.UTC(2024, 8, 2, 0, 0, 0)));
      figures.add('snapshotsWritten');
      const mountPoint = await tempDir('memsync-tmpfs');
      try {
        await run('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', mountPoint]);
      } catch (error) {
        figures.skip(`cannot mount a 20 MiB tmpfs (${String(error).split('\n')[0]})`);
        return;
      }
      try {
        const backupDir = path.join(mountPoint, 'backups');
        await mkdir(backupDir);
        const agent = restoringAgent(box, backupDir, await tempDir('memsync-state'), 'agent on a full disk');
        const api = await apiUrl(agent);
        await agent.waitFor('automatic download at start failed', {}, 120_000).catch(() => undefined);
        const answer = await fetch(`${api}/sync/download?confirm=true&name=${backup.name}`, { method: 'POST', headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(120_000) });
        const body = (await answer.json()) as { error: string; message: string };
        expect(answer.status, JSON.stringify(body)).toBe(500);
        expect(body.error).toBe('local_io');
        const logged = agent.find('request failed', { kind: 'local_io' }).map((e) => String(e.error));
        expect(logged.some((line) => line.includes('index.faiss') && line.includes('ENOSPC')), logged.join('\n')).toBe(true);
        expect(await readdir(backupDir), 'backup directory after the failed restore').toEqual([]);
        const df = (await run('df', ['--output=used', '-B1', mountPoint])).stdout.split('\n')[1]?.trim();
        expect(Number(df), 'bytes used on the tmpfs after the failed restore').toBeLessThan(MIB);
        expect(agent.exitResult).toBeUndefined();
        // The remote copy is untouched and still verifies.
        expect((await remoteOf(box).audit(backup.name, { kind: 'directory', files })).verdict).toBe('verified');
        figures.add('verifiedRemote');
        figures.note(`ENOSPC answered ${answer.status} ${body.error}; the log names the file; nothing left on the full disk`);
        await stopCleanly(agent);
      } finally {
        await run('umount', [mountPoint]).catch((error: unknown) => console.error(`[restore-faults] umount ${mountPoint}: ${String(error)}`));
      }
    }));

  it('a remote object altered after upload: the restore refuses it, names the file, and writes nothing', () =>
    runScenario('5c altered remote object', async (figures) => {
      const box = await sandbox('altered');
      const remote = remoteOf(box);
      const sameSize = memoryFileSet({ memories: 40, indexBytes: 6 * MIB, seed: 'altered-same-size' });
      const otherSize = memoryFileSet({ memories: 41, indexBytes: 64 * 1024, seed: 'altered-other-size' });
      const a = await seedRemote(box, sameSize, new Date(Date.UTC(2024, 8, 3, 0, 0, 0)));
      const b = await seedRemote(box, otherSize, new Date(Date.UTC(2024, 8, 3, 1, 0, 0)));
      figures.add('snapshotsWritten', 2);
      // Same size, one byte different (bit rot, a tampering hand); and a truncated copy.
      const index = Buffer.from(sameSize.find((f) => f.name === 'index.faiss')?.bytes ?? Buffer.alloc(0));
      index[index.length >> 1] = (index[index.length >> 1] ?? 0) ^ 0xff;
      await remote.put(`${PREFIX}${a.name}/index.faiss`, index);
      const metadata = otherSize.find((f) => f.name === 'metadata.json')?.bytes ?? Buffer.alloc(0);
      await remote.put(`${PREFIX}${b.name}/metadata.json`, metadata.subarray(0, metadata.length - 10));
      expect((await remote.list(`${PREFIX}${a.name}/${MANIFEST_FILE_NAME}`)).length).toBe(1);

      const restoreDir = await tempDir('memsync-restore');
      const { agent } = await startAndSweep({ ...box, backupDir: restoreDir, stateDir: await tempDir('memsync-state') }, 'restoring agent');
      const api = await apiUrl(agent);
      for (const [name, file, status] of [[a.name, 'index.faiss', 502], [b.name, 'metadata.json', 502]] as const) {
        const answer = await fetch(`${api}/sync/download?confirm=true&name=${name}`, { method: 'POST', headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(120_000) });
        const body = (await answer.json()) as { error: string; message: string };
        expect(answer.status, JSON.stringify(body)).toBe(status);
        expect(body.error).toBe('integrity');
        const logged = agent.find('request failed', { kind: 'integrity' }).map((e) => String(e.error));
        expect(logged.some((line) => line.includes(`${name}/${file}`)), `the log names ${name}/${file}:\n${logged.join('\n')}`).toBe(true);
        expect(await visibleEntries(restoreDir)).not.toContain(name);
      }
      expect(await readdir(restoreDir), 'nothing written, staging included').toEqual([]);
      figures.note('2 remote objects altered on purpose after upload (one byte flipped; truncated): both restores refused (HTTP 502 integrity), the file named in the log, nothing written locally');
      await stopCleanly(agent);
    }));
});
