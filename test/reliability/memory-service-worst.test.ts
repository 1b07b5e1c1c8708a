// Scenario 4: the memory service at its worst. Bursts of backups pruned to 10 faster than they
// can be uploaded, same-second rewrites of a snapshot being uploaded, a snapshot deleted while
// it is read, a file that grows again after a pause longer than the settle window. memsync must
// not crash and must not upload anything wrong; what it could not capture is counted and logged.
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { AgentProcess } from '../helpers/agent-process.js';
import { apiUrl, stopCleanly, useSandboxes } from '../helpers/agent-sandbox.js';
import { backupName, memoryFileSet, prune, startHalfWrittenFile, writeBackup, type BackupFile } from '../helpers/memory-service-sim.js';
import { scenarioSeed, seededRandom } from '../helpers/random.js';
import { eventually, type RemoteBucket } from '../helpers/remote-bucket.js';
import { runScenario, type ScenarioFigures } from '../helpers/reliability-figures.js';
import { testServer } from '../helpers/s3.js';

const server = testServer();
const PREFIX = 'memories/';
const SETTLE_MS = 400;
const MIB = 1024 * 1024;
const UPLOAD_TIMEOUT_MS = 120_000;
const { sandbox, startAndSweep, remoteOf } = useSandboxes(server, { prefix: PREFIX, settleMs: SETTLE_MS, label: 'worst' });

function outcomesOf(agent: AgentProcess, name: string): string[] {
  return [
    ...agent.find('snapshot uploaded', { snapshot: name }).map(() => 'uploaded'),
    ...agent.find('snapshot removed before it could be uploaded', { snapshot: name }).map(() => 'removed before upload'),
  ];
}

async function metricValue(api: string, metric: string): Promise<number> {
  const text = await (await fetch(`${api}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${metric} `));
  return Number(line?.split(' ')[1] ?? Number.NaN);
}

async function counters(api: string): Promise<Record<string, number>> {
  return ((await (await fetch(`${api}/sync/status`)).json()) as { counters: Record<string, number> }).counters;
}

/** Waits until the bucket holds a multipart upload (or any object) of `name`: its upload has begun. */
async function uploadBegun(remote: RemoteBucket, name: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await remote.openMultipartUploads()).some((u) => u.key.startsWith(`${PREFIX}${name}/`))) return true;
    if ((await remote.list(`${PREFIX}${name}/`)).length > 0) return true;
    await sleep(15);
  }
  return false;
}

/** Counts a snapshot that must be remote, complete and byte-identical to `files`. */
async function tally(remote: RemoteBucket, name: string, files: readonly BackupFile[], figures: ScenarioFigures): Promise<string | undefined> {
  const audit = await remote.audit(name, { kind: 'directory', files });
  if (audit.verdict === 'verified') figures.add('verifiedRemote');
  else if (audit.verdict === 'corrupted') figures.add('corrupted');
  else if (audit.verdict === 'partial-as-complete') figures.add('partialAsComplete');
  else figures.add('lost');
  return audit.verdict === 'verified' ? undefined : `${name}: ${audit.verdict} ${audit.problems.join('; ')}`;
}

describe(`the memory service at its worst (${server.kind})`, () => {
  it('a burst of 100 backups in a few seconds, pruned to 10: what remains is uploaded, what was pruned first is counted and logged', () =>
    runScenario('4a burst of 100, pruned to 10', async (figures) => {
      const box = await sandbox('burst');
      const remote = remoteOf(box);
      const { agent } = await startAndSweep(box, 'agent');
      const api = await apiUrl(agent);
      const written = new Map<string, BackupFile[]>();
      const pruned = new Set<string>();
      const t0 = Date.UTC(2024, 6, 1, 0, 0, 0);
      const startedMs = Date.now();
      for (let i = 0; i < 100; i += 1) {
        const prefix = i % 7 === 3 ? 'pre_update' : i % 11 === 5 ? 'manual' : 'auto';
        const files = memoryFileSet({ memories: 20 + (i % 30), indexBytes: i % 10 === 0 ? 2 * MIB : 32 * 1024, seed: `burst-${i}` });
        written.set((await writeBackup(box.backupDir, { prefix, time: new Date(t0 + i * 1000), files })).name, files);
        for (const name of (await prune(box.backupDir, 10)).deleted) pruned.add(name);
      }
      figures.add('snapshotsWritten', written.size);
      figures.note(`burst written in ${((Date.now() - startedMs) / 1000).toFixed(1)} s; ${pruned.size} pruned by the service`);
      const remaining = (await readdir(box.backupDir)).filter((name) => written.has(name));
      expect(remaining.length + pruned.size).toBe(100);

      await eventually(async () => remaining.every((name) => agent.find('snapshot uploaded', { snapshot: name }).length > 0), UPLOAD_TIMEOUT_MS, `the ${remaining.length} remaining snapshots uploaded\n${agent.tail()}`, 500);
      await eventually(async () => [...written.keys()].every((name) => outcomesOf(agent, name).length > 0), 60_000, 'an outcome logged for every snapshot', 500);
      await sleep(2 * SETTLE_MS);

      const problems: string[] = [];
      let removedBeforeUpload = 0;
      for (const [name, files] of written) {
        const outcomes = outcomesOf(agent, name);
        expect(outcomes, `outcomes of ${name}`).toHaveLength(1);
        if (outcomes[0] === 'uploaded') {
          const problem = await tally(remote, name, files, figures);
          if (problem !== undefined) problems.push(problem);
        } else {
          removedBeforeUpload += 1;
          // Pruned before it was captured: nothing of it is left behind (no partial copy).
          expect((await remote.list(`${PREFIX}${name}/`)).map((o) => o.key), `objects left of ${name}`).toEqual([]);
        }
      }
      for (const name of remaining) expect(outcomesOf(agent, name), name).toEqual(['uploaded']);
      expect(problems).toEqual([]);
      expect((await counters(api)).prunedBeforeUpload).toBe(removedBeforeUpload);
      expect(await metricValue(api, 'memsync_pruned_before_upload_total')).toBe(removedBeforeUpload);
      expect(await remote.openMultipartUploads()).toEqual([]);
      figures.note(`${100 - removedBeforeUpload} captured, ${removedBeforeUpload} pruned before upload (counted in status, metrics and the log)`);
      expect(agent.logs.filter((e) => e.level === 'error')).toEqual([]);
      await stopCleanly(agent);
    }));

  it('same-second rewrites, also while the first write is being uploaded: what is remote is the final content', () =>
    runScenario('4b same-second rewrites', async (figures) => {
      const seed = scenarioSeed();
      const rng = seededRandom(seed);
      const box = await sandbox('rewrite');
      const remote = remoteOf(box);
      const { agent } = await startAndSweep(box, 'agent');
      const finalFiles = new Map<string, BackupFile[]>();
      const firstFiles = new Map<string, BackupFile[]>();
      let rewrittenDuringUpload = 0;
      for (let k = 0; k < 8; k += 1) {
        const large = k % 2 === 1;
        const time = new Date(Date.UTC(2024, 6, 2, 0, 0, k));
        const sizes = { memories: 30, indexBytes: large ? Math.floor((20 + rng() * 20) * MIB) : 40 * 1024 };
        const first = memoryFileSet({ ...sizes, seed: `first-${seed}-${k}` });
        const second = memoryFileSet({ ...sizes, seed: `second-${seed}-${k}` });
        const { name } = await writeBackup(box.backupDir, { prefix: 'auto', time, files: first, chunkBytes: MIB });
        if (large) {
          if (await uploadBegun(remote, name, 20_000)) rewrittenDuringUpload += 1;
        } else await sleep(rng() * (SETTLE_MS / 2));
        await writeBackup(box.backupDir, { prefix: 'auto', time, files: second, chunkBytes: MIB });
        firstFiles.set(name, first);
        finalFiles.set(name, second);
      }
      figures.add('snapshotsWritten', finalFiles.size);
      figures.note(`${rewrittenDuringUpload} of 4 large snapshots rewritten while their first write was being uploaded; seed ${seed}`);

      const settledOutcome = (name: string): boolean => agent.find('snapshot uploaded', { snapshot: name }).length > 0 || agent.find(/^conflict:/, { snapshot: name }).length > 0;
      await eventually(async () => [...finalFiles.keys()].every(settledOutcome), UPLOAD_TIMEOUT_MS, `every rewritten snapshot uploaded\n${agent.tail()}`, 500);
      await sleep(3 * SETTLE_MS);
      const problems: string[] = [];
      for (const [name, files] of finalFiles) {
        const audit = await remote.audit(name, { kind: 'directory', files });
        if (audit.verdict === 'verified') {
          figures.add('verifiedRemote');
          continue;
        }
        // The first write finished uploading before the rewrite began: a correct copy of what was
        // there, and the rewrite is a conflict that must be reported, never an overwrite.
        const ofFirst = await remote.audit(name, { kind: 'directory', files: firstFiles.get(name) ?? [] });
        if (ofFirst.verdict === 'verified' && agent.find(/^conflict:/, { snapshot: name }).length === 1) {
          figures.note(`${name}: the first write was complete remotely before the rewrite; conflict reported`);
          continue;
        }
        figures.add(audit.verdict === 'corrupted' ? 'corrupted' : audit.verdict === 'partial-as-complete' ? 'partialAsComplete' : 'lost');
        problems.push(`${name}: ${audit.verdict} ${audit.problems.join('; ')}`);
      }
      expect(problems).toEqual([]);
      expect(await remote.openMultipartUploads()).toEqual([]);
      expect(agent.logs.filter((e) => e.level === 'error')).toEqual([]);
      await stopCleanly(agent);
    }));

  it('a snapshot deleted while it is being read and uploaded: no crash, nothing left remotely, counted and logged', () =>
    runScenario('4c deleted while read', async (figures) => {
      const seed = scenarioSeed();
      const rng = seededRandom(seed);
      const box = await sandbox('deleted');
      const remote = remoteOf(box);
      const { agent } = await startAndSweep(box, 'agent');
      const api = await apiUrl(agent);
      const deleted: string[] = [];
      const filesOf = new Map<string, readonly string[]>();
      let deletedMidUpload = 0;
      for (let k = 0; k < 4; k += 1) {
        const files = memoryFileSet({ memories: 50, indexBytes: Math.floor((30 + rng() * 20) * MIB), seed: `deleted-${seed}-${k}` });
        const backup = await writeBackup(box.backupDir, { prefix: 'auto', time: new Date(Date.UTC(2024, 6, 3, 0, k, 0)), files, chunkBytes: MIB });
        if (await uploadBegun(remote, backup.name, 20_000)) deletedMidUpload += 1;
        await sleep(rng() * 300);
        if (agent.find('snapshot uploaded', { snapshot: backup.name }).length > 0) continue; // too late to delete it while read
        await rm(backup.path, { recursive: true, force: true });
        deleted.push(backup.name);
        filesOf.set(backup.name, files.map((file) => file.name));
      }
      // A control snapshot written after them is uploaded normally.
      const control = await writeBackup(box.backupDir, { prefix: 'manual', time: new Date(Date.UTC(2024, 6, 3, 1, 0, 0)), files: memoryFileSet({ memories: 5, indexBytes: 6 * MIB, seed: `control-${seed}` }) });
      figures.add('snapshotsWritten', 5);
      await agent.waitFor('snapshot uploaded', { snapshot: control.name }, UPLOAD_TIMEOUT_MS);
      const problem = await tally(remote, control.name, control.files, figures);
      expect(problem).toBeUndefined();

      // A delete that lands once every file is stored and verified no longer stops the upload (its
      // manifest may already be at the server): such a snapshot is completed, whole, and not counted.
      let completed = 0;
      for (const name of deleted) {
        const outcome = (): string | undefined =>
          agent.find('snapshot removed before it could be uploaded', { snapshot: name }).length > 0 ? 'removed' : agent.find('snapshot uploaded', { snapshot: name }).length > 0 ? 'uploaded' : undefined;
        await eventually(async () => outcome() !== undefined, 30_000, `an outcome for deleted ${name}`);
        if (outcome() === 'uploaded') {
          completed += 1;
          expect(agent.find('snapshot removed before it could be uploaded', { snapshot: name })).toEqual([]);
          const keys = (await remote.list(`${PREFIX}${name}/`)).map((object) => object.key.slice(`${PREFIX}${name}/`.length));
          expect(keys).toEqual(expect.arrayContaining(['.memsync-manifest.json', ...(filesOf.get(name) ?? [])]));
        } else {
          await eventually(async () => (await remote.list(`${PREFIX}${name}/`)).length === 0, 30_000, `no object of deleted ${name} left`);
        }
      }
      await eventually(async () => (await remote.openMultipartUploads()).length === 0, 30_000, 'no multipart upload left open');
      expect((await counters(api)).prunedBeforeUpload).toBe(deleted.length - completed);
      figures.note(`${deleted.length} deleted while being uploaded (${deletedMidUpload} with the upload seen in the bucket), each counted and logged, ${completed} of them deleted during the commit and completed; seed ${seed}`);
      expect(agent.exitResult).toBeUndefined();
      expect((await fetch(`${api}/healthz`)).status).toBe(200);
      await stopCleanly(agent);
    }));

  it('a file that grows again after a pause longer than the settle window: the capture is consistent, and the change is reported', () =>
    runScenario('4d grows after a pause', async (figures) => {
      const box = await sandbox('grows');
      const remote = remoteOf(box);
      const { agent } = await startAndSweep(box, 'agent');
      const api = await apiUrl(agent);
      const time = new Date(Date.UTC(2024, 6, 4, 0, 0, 0));
      const name = backupName('auto', time);
      const small = memoryFileSet({ memories: 20, seed: 'grows' });
      await writeBackup(box.backupDir, { prefix: 'auto', time, files: small });
      const index = Buffer.alloc(3 * MIB, 7);
      const finish = await startHalfWrittenFile(path.join(box.backupDir, name, 'index.faiss'), index.subarray(0, MIB));
      await sleep(SETTLE_MS * 5); // looks complete: memsync captures this state
      await finish(index.subarray(MIB));
      figures.add('snapshotsWritten');
      const before = [...small, { name: 'index.faiss', bytes: index.subarray(0, MIB) }];
      const after = [...small, { name: 'index.faiss', bytes: index }];
      await eventually(
        async () => agent.find(/^conflict:/, { snapshot: name }).length > 0 || (await remote.audit(name, { kind: 'directory', files: after })).verdict === 'verified',
        UPLOAD_TIMEOUT_MS,
        `${name} uploaded in its final state, or the change reported as a conflict\n${agent.tail()}`,
        500,
      );
      if ((await remote.audit(name, { kind: 'directory', files: after })).verdict === 'verified') {
        figures.add('verifiedRemote');
        figures.note('the pause was not seen as completion: the final state was uploaded');
      } else {
        // The remote copy is the state that held still for the settle window, complete and exact.
        expect((await remote.audit(name, { kind: 'directory', files: before })).verdict).toBe('verified');
        const status = (await (await fetch(`${api}/sync/status`)).json()) as { conflicts: { snapshot: string }[] };
        expect(status.conflicts.map((c) => c.snapshot)).toContain(name);
        figures.add('verifiedRemote');
        figures.note('the pre-pause state was captured (complete, byte-identical); the later growth is reported as a conflict in the log and /sync/status, never overwritten');
      }
      expect(agent.exitResult).toBeUndefined();
      expect(agent.logs.filter((e) => e.level === 'error')).toEqual([]);
      await stopCleanly(agent);
    }));
});
