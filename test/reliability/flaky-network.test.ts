// Scenario 3: a flaky network between memsync and the server (test/helpers/fault-proxy.ts):
// resets mid-body, stalls, slow bytes, truncated answers, injected 500/503, black holes and
// flipped bytes in either direction. Uploads and restores end correct or fail cleanly and are
// retried; nothing corrupt is ever accepted as a success. Checks read the bucket directly.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startAgent } from '../helpers/agent-process.js';
import { apiUrl, START_TIMEOUT_MS, stopCleanly, useSandboxes } from '../helpers/agent-sandbox.js';
import { FAULTS, FaultProxy, type Fault } from '../helpers/fault-proxy.js';
import { memoryFileSet, writeBackup, type BackupFile } from '../helpers/memory-service-sim.js';
import { scenarioSeed, seededRandom } from '../helpers/random.js';
import { eventually, sha256 } from '../helpers/remote-bucket.js';
import { runScenario } from '../helpers/reliability-figures.js';
import { testServer } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';

const server = testServer();
const PREFIX = 'memories/';
const SETTLE_MS = 400;
const MIB = 1024 * 1024;
/** Share of connections that get a fault. */
const FAULT_RATE = 0.3;
const { sandbox, agentEnv, remoteOf } = useSandboxes(server, { prefix: PREFIX, settleMs: SETTLE_MS, label: 'flaky' });

/** Each costs memsync's idle timeout (30 s) before the retry: a few prove the point. */
const MAX_BLACK_HOLES = 2;

function faultChooser(random: () => number): (n: number) => Fault {
  const faults = FAULTS.filter((f) => f !== 'none');
  let blackHoles = 0;
  return () => {
    if (random() >= FAULT_RATE) return 'none';
    const fault = faults[Math.floor(random() * faults.length)] ?? 'none';
    if (fault !== 'black-hole') return fault;
    blackHoles += 1;
    return blackHoles <= MAX_BLACK_HOLES ? fault : 'stall';
  };
}

async function localSnapshot(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) files.set(path.relative(dir, path.join(entry.parentPath, entry.name)), sha256(await readFile(path.join(entry.parentPath, entry.name))));
  }
  return files;
}

describe(`a flaky network (${server.kind})`, () => {
  it('uploads and restores through a fault-injecting proxy end correct or fail cleanly, and are retried', () =>
    runScenario('3 flaky network (fault proxy)', async (figures) => {
      const seed = scenarioSeed();
      const rng = seededRandom(seed);
      const endpoint = new URL(server.endpoint);
      const proxy = await FaultProxy.start({ target: { host: endpoint.hostname, port: Number(endpoint.port) }, choose: faultChooser(rng), random: rng, stallMs: 4000 });
      try {
        const box = await sandbox('flaky');
        const remote = remoteOf(box);
        // Quick snapshot-level retries: the scenario is about correctness, not about waiting.
        const env = agentEnv(box, { CLOUD_SYNC_ENDPOINT: proxy.url });
        const agent = startAgent({ env, label: 'agent behind the proxy' });
        await agent.waitFor('watching for backups', {}, START_TIMEOUT_MS);

        const written = new Map<string, BackupFile[]>();
        for (let k = 0; k < 8; k += 1) {
          const large = k % 3 === 0;
          const files = memoryFileSet({ memories: 30 + k, indexBytes: large ? Math.floor((10 + rng() * 10) * MIB) : 200 * 1024 + k, seed: `flaky-${seed}-${k}` });
          written.set((await writeBackup(box.backupDir, { prefix: 'auto', time: new Date(Date.UTC(2024, 7, 1, k, 0, 0)), files, chunkBytes: MIB })).name, files);
        }
        figures.add('snapshotsWritten', written.size);
        await eventually(async () => [...written.keys()].every((name) => agent.find('snapshot uploaded', { snapshot: name }).length > 0), 300_000, `all uploaded through the proxy\n${agent.tail()}`, 1000);
        // Every success is true: checked with a client that does not go through the proxy.
        const problems: string[] = [];
        for (const [name, files] of written) {
          const audit = await remote.audit(name, { kind: 'directory', files });
          if (audit.verdict === 'verified') figures.add('verifiedRemote');
          else {
            figures.add(audit.verdict === 'corrupted' ? 'corrupted' : audit.verdict === 'partial-as-complete' ? 'partialAsComplete' : 'lost');
            problems.push(`${name}: ${audit.verdict} ${audit.problems.join('; ')}`);
          }
        }
        expect(problems).toEqual([]);
        const retries = agent.find('retrying').length;
        const failures = agent.find(/^upload failed/).length;
        figures.note(`uploads: faults applied/chosen ${proxy.summary()}; ${retries} request retries, ${failures} failed snapshot attempts retried later; seed ${seed}`);
        await stopCleanly(agent);

        // Restores through the same proxy into an empty directory, by a second agent.
        const restoreDir = await tempDir('memsync-restore');
        const restorer = startAgent({ env: { ...env, CLOUD_SYNC_BACKUP_DIR: restoreDir, CLOUD_SYNC_STATE_DIR: await tempDir('memsync-state') }, label: 'restoring agent' });
        const api = await apiUrl(restorer);
        const answers: Record<string, number> = {};
        for (const [name, files] of written) {
          let done = false;
          for (let attempt = 0; attempt < 6 && !done; attempt += 1) {
            // The agent restores the newest snapshot by itself at start (its directory was empty):
            // that one may be in place before its restore is asked for.
            const presentBefore = (await readdir(restoreDir)).includes(name);
            const answer = await fetch(`${api}/sync/download?confirm=true&name=${name}`, { method: 'POST', headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(180_000) });
            answers[answer.status] = (answers[answer.status] ?? 0) + 1;
            const body = (await answer.json()) as { error?: string; message?: string };
            const entries = (await readdir(restoreDir)).filter((e) => !e.startsWith('.'));
            if (answer.status === 200) {
              done = true;
              const local = await localSnapshot(path.join(restoreDir, name));
              expect(local, `${name} restored`).toEqual(new Map(files.map((f) => [f.name, sha256(f.bytes)])));
            } else {
              // A clean failure: JSON error, nothing new under the real name, and a snapshot already
              // there left as it was.
              expect(typeof body.error, JSON.stringify(body)).toBe('string');
              if (presentBefore) expect(await localSnapshot(path.join(restoreDir, name)), `${name} after a failed restore over it`).toEqual(new Map(files.map((f) => [f.name, sha256(f.bytes)])));
              else expect(entries, `after a failed restore of ${name}`).not.toContain(name);
            }
          }
          expect(done, `${name} restored within 6 requests`).toBe(true);
        }
        figures.note(`restores: answers ${JSON.stringify(answers)}; faults so far ${proxy.summary()}`);
        await stopCleanly(restorer);
      } finally {
        await proxy.stop();
      }
    }));
});
