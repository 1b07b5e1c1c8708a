// Scenario 1: the agent is SIGKILLed at random points while it uploads large (multipart) and
// small snapshots, and restarted each time. In the end every snapshot is remote, complete and
// byte-identical; at no point does a manifest claim files the bucket does not hold; and the
// multipart uploads the killed processes left open are aborted by a later sweep.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { startAgent, type AgentProcess } from '../helpers/agent-process.js';
import { apiUrl, START_TIMEOUT_MS, stopCleanly, useSandboxes } from '../helpers/agent-sandbox.js';
import { memoryFileSet, writeBackup, type BackupFile } from '../helpers/memory-service-sim.js';
import { scenarioSeed, seededRandom } from '../helpers/random.js';
import { eventually, type RemoteBucket } from '../helpers/remote-bucket.js';
import { runScenario, type ScenarioFigures } from '../helpers/reliability-figures.js';
import { skipUnless, testServer } from '../helpers/s3.js';

const server = testServer();
const PREFIX = 'memories/';
const SETTLE_MS = 400;
const MIB = 1024 * 1024;
const KILLS = Math.max(20, Number(process.env.RELIABILITY_KILLS ?? 22));
/** The smallest threshold memsync accepts; the final sweep waits for it to pass. */
const STALE_MINUTES = 1;
const { sandbox, agentEnv, remoteOf } = useSandboxes(server, { prefix: PREFIX, settleMs: SETTLE_MS, label: 'crash' });

type KillPoint = 'random' | 'multipart open' | 'files without manifest';

/** Waits (bounded) until the bucket shows the state a kill point is about; false if it never did. */
async function reach(point: KillPoint, remote: RemoteBucket, agent: AgentProcess, rng: () => number): Promise<boolean> {
  if (point === 'random') {
    await sleep(rng() * 2500);
    return false;
  }
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && agent.exitResult === undefined) {
    if (point === 'multipart open' && (await remote.openMultipartUploads()).length > 0) {
      await sleep(rng() * 400);
      return true;
    }
    if (point === 'files without manifest') {
      for (const name of await remote.snapshotNames()) {
        if ((await remote.audit(name, undefined, { readContent: false })).verdict === 'incomplete') return true;
      }
    }
    await sleep(20);
  }
  return false;
}

/** Every remote snapshot whose manifest names files the bucket does not hold (by key and size). */
async function partialsListedComplete(remote: RemoteBucket): Promise<string[]> {
  const found: string[] = [];
  for (const name of await remote.snapshotNames()) {
    const audit = await remote.audit(name, undefined, { readContent: false });
    if (audit.verdict === 'partial-as-complete') found.push(`${name}: ${audit.problems.join('; ')}`);
  }
  return found;
}

async function finalAudit(remote: RemoteBucket, written: Map<string, BackupFile[]>, figures: ScenarioFigures): Promise<string[]> {
  const problems: string[] = [];
  for (const [name, files] of written) {
    const audit = await remote.audit(name, { kind: 'directory', files });
    if (audit.verdict === 'verified') figures.add('verifiedRemote');
    else if (audit.verdict === 'corrupted') figures.add('corrupted');
    else if (audit.verdict === 'partial-as-complete') figures.add('partialAsComplete');
    else figures.add('lost');
    if (audit.verdict !== 'verified') problems.push(`${name}: ${audit.verdict} ${audit.problems.join('; ')}`);
  }
  return problems;
}

const noMultipart = skipUnless('listMultipartUploads') ?? skipUnless('abortMultipart');

describe(`crash mid-upload (${server.kind})`, () => {
  it(`survives ${KILLS} SIGKILLs during large and small uploads: everything ends remote, complete and byte-identical`, () =>
    runScenario('1 crash mid-upload (SIGKILL)', async (figures) => {
      if (noMultipart !== null) figures.note(`stale multipart cleanup not checked: ${noMultipart}`);
      const seed = scenarioSeed();
      const rng = seededRandom(seed);
      figures.note(`seed ${seed} (RELIABILITY_SEED=${seed} replays the schedule)`);
      const box = await sandbox('crash');
      const remote = remoteOf(box);
      const env = agentEnv(box, { CLOUD_SYNC_STALE_MULTIPART_MINUTES: String(STALE_MINUTES) });
      const written = new Map<string, BackupFile[]>();
      const t0 = Date.UTC(2024, 5, 1, 0, 0, 0);
      const killsAt: Record<KillPoint, { tried: number; reached: number }> = {
        random: { tried: 0, reached: 0 },
        'multipart open': { tried: 0, reached: 0 },
        'files without manifest': { tried: 0, reached: 0 },
      };
      let lastKillMs = 0;

      for (let round = 0; round < KILLS; round += 1) {
        const large = round % 2 === 0;
        const files = memoryFileSet({ memories: 40 + round, indexBytes: large ? Math.floor((24 + rng() * 24) * MIB) : 48 * 1024 + round, seed: `crash-${seed}-${round}` });
        const backupOptions = { prefix: large ? 'auto' : 'pre_update', time: new Date(t0 + round * 60_000), files, chunkBytes: MIB };
        // Half the snapshots exist before the agent starts (its start sweep finds them), half appear while it runs.
        const before = rng() < 0.5;
        if (before) written.set((await writeBackup(box.backupDir, backupOptions)).name, files);
        const agent = startAgent({ env, label: `run ${round + 1}` });
        await agent.waitFor('watching for backups', {}, START_TIMEOUT_MS);
        if (round > 0) figures.add('restartsSurvived');
        if (!before) written.set((await writeBackup(box.backupDir, backupOptions)).name, files);
        // Large snapshots take turns at the three kill points, so every run covers each of them.
        const point: KillPoint = large ? (['multipart open', 'files without manifest', 'random'] as const)[(round / 2) % 3] ?? 'random' : rng() < 0.5 ? 'random' : 'files without manifest';
        killsAt[point].tried += 1;
        if (await reach(point, remote, agent, rng)) killsAt[point].reached += 1;
        expect(agent.exitResult, `${agent.label} exited on its own\n${agent.tail()}`).toBeUndefined();
        const exit = await agent.kill();
        expect(exit?.signal, `${agent.label} killed`).toBe('SIGKILL');
        lastKillMs = Date.now();
        const partial = await partialsListedComplete(remote);
        figures.add('partialAsComplete', partial.length);
        expect(partial, `after kill ${round + 1} (${point})`).toEqual([]);
      }
      figures.add('snapshotsWritten', written.size);
      figures.note(`kills: ${killsAt.random.tried} at a random time, ${Object.entries(killsAt).filter(([p]) => p !== 'random').map(([p, n]) => `${n.reached}/${n.tried} with ${p}`).join(', ')}`);

      // The last restart: everything uploads, and once the stale threshold has passed, a sweep
      // (POST /sync/upload runs one) aborts what the killed processes left open.
      const leftOpen = noMultipart === null ? (await remote.openMultipartUploads()).length : 0;
      figures.note(`multipart uploads left open by killed runs: ${leftOpen}`);
      const final = startAgent({ env, label: 'final run' });
      await final.waitFor('sweep finished', { reason: 'start' }, START_TIMEOUT_MS);
      figures.add('restartsSurvived');
      const api = await apiUrl(final);
      await eventually(
        async () => {
          for (const name of written.keys()) if ((await remote.audit(name, undefined, { readContent: false })).verdict !== 'verified') return false;
          return true;
        },
        240_000,
        `all ${written.size} snapshots complete remotely\n${final.tail()}`,
        1000,
      );
      const waitMs = lastKillMs + STALE_MINUTES * 60_000 + 3000 - Date.now();
      if (waitMs > 0) await sleep(waitMs);
      const sync = await fetch(`${api}/sync/upload`, { method: 'POST', headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(120_000) });
      expect(sync.status, await sync.clone().text()).toBe(200);
      const open = noMultipart === null ? await remote.openMultipartUploads() : [];
      figures.add('orphanedMultipart', open.length);
      expect(open, `multipart uploads still open after a sweep past the stale threshold\n${final.tail()}`).toEqual([]);
      // Aborted by the start sweep (already stale then) or the one above; each logged once.
      if (noMultipart === null) expect(final.find('aborted stale multipart upload').length).toBe(leftOpen);

      const problems = await finalAudit(remote, written, figures);
      expect(problems).toEqual([]);
      // What the API lists as complete is complete.
      const listed = (await (await fetch(`${api}/sync/snapshots?limit=1000`)).json()) as { snapshots: { name: string; complete: boolean }[] };
      expect(listed.snapshots.filter((s) => s.complete).map((s) => s.name).sort()).toEqual([...written.keys()].sort());
      expect(final.find(/^conflict:/)).toEqual([]);
      await stopCleanly(final);
    }));
});
