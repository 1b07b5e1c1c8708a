// Scenario 2: the S3 server hangs (SIGSTOP of the fixture's radosgw) while backups keep coming,
// then comes back (SIGCONT). memsync keeps queueing, backs off without flooding its log, says
// the store is unavailable in /sync/status and /readyz, and once the server is back uploads
// everything, newest first. The server is shared by this project's files, which run one at a
// time; it is always resumed in `finally`.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { apiUrl, stopCleanly, useSandboxes } from '../helpers/agent-sandbox.js';
import { memoryFileSet, writeBackup, type BackupFile } from '../helpers/memory-service-sim.js';
import { eventually } from '../helpers/remote-bucket.js';
import { runScenario } from '../helpers/reliability-figures.js';
import { testServer } from '../helpers/s3.js';

const server = testServer();
const PREFIX = 'memories/';
const SETTLE_MS = 400;
const MIB = 1024 * 1024;
/** Past two 30 s idle timeouts (the SDK tries a request twice): hung requests fail and the outage shows. */
const OUTAGE_MS = 100_000;
const { sandbox, startAndSweep, remoteOf } = useSandboxes(server, { prefix: PREFIX, settleMs: SETTLE_MS, label: 'outage' });

interface Status {
  remote: { available: boolean | undefined };
  queueDepth: number;
  local: { pending: string[] };
}

describe(`server outage (${server.kind})`, () => {
  const pid = server.pid;
  it.skipIf(pid === undefined)(`a hung server (SIGSTOP, ${OUTAGE_MS / 1000} s): queued, reported unavailable, no log flood, all uploaded newest first once back`, () =>
    runScenario('2 server outage (SIGSTOP)', async (figures) => {
      const rgw = pid as number;
      const box = await sandbox('outage');
      const remote = remoteOf(box);
      // One file at a time (and so two snapshot slots): the order the backlog drains in is then
      // the queue's own, not the outcome of parallel uploads racing each other.
      const { agent } = await startAndSweep(box, 'agent', { CLOUD_SYNC_CONCURRENCY: '1' });
      const api = await apiUrl(agent);
      const status = async (): Promise<Status> => (await (await fetch(`${api}/sync/status`)).json()) as Status;
      const first = await writeBackup(box.backupDir, { prefix: 'auto', time: new Date(Date.UTC(2024, 9, 1, 0, 0, 0)), files: memoryFileSet({ memories: 10, seed: 'before' }) });
      await agent.waitFor('snapshot uploaded', { snapshot: first.name }, 60_000);
      expect((await fetch(`${api}/readyz`)).status).toBe(200);

      const written = new Map<string, BackupFile[]>([[first.name, first.files]]);
      const outageLogFrom = agent.logs.length;
      let resumed = false;
      process.kill(rgw, 'SIGSTOP');
      const stoppedAtMs = Date.now();
      try {
        for (let k = 0; k < 8; k += 1) {
          const files = memoryFileSet({ memories: 20 + k, indexBytes: k % 2 === 0 ? 6 * MIB : 100 * 1024, seed: `outage-${k}` });
          written.set((await writeBackup(box.backupDir, { prefix: 'auto', time: new Date(Date.UTC(2024, 9, 1, 1 + k, 0, 0)), files })).name, files);
          await sleep(1000);
        }
        await eventually(async () => (await status()).remote.available === false, OUTAGE_MS, `status reports the store unavailable\n${agent.tail()}`, 1000);
        const ready = await fetch(`${api}/readyz`);
        expect(ready.status).toBe(503);
        const during = await status();
        expect(during.local.pending.length + during.queueDepth, JSON.stringify(during)).toBeGreaterThan(0);
        const left = stoppedAtMs + OUTAGE_MS - Date.now();
        if (left > 0) await sleep(left);
        const outageLines = agent.logs.slice(outageLogFrom);
        const loud = outageLines.filter((e) => e.level === 'error' || e.level === 'warn');
        const minutes = (Date.now() - stoppedAtMs) / 60_000;
        figures.note(`outage ${(OUTAGE_MS / 1000).toFixed(0)} s: ${loud.length} warn/error lines (${(loud.length / minutes).toFixed(1)}/min), "remote store unavailable" logged ${agent.find('remote store unavailable').length}x`);
        expect(agent.find('remote store unavailable').length, 'transition logged once').toBe(1);
        // Bounded by what happened, not by time: a line per failed snapshot attempt, per retried request at most.
        expect(loud.length / minutes, `warn/error lines per minute during the outage\n${loud.map((e) => e.message).join('\n')}`).toBeLessThan(60);
        process.kill(rgw, 'SIGCONT');
        resumed = true;
      } finally {
        if (!resumed) process.kill(rgw, 'SIGCONT');
      }
      const resumedAtMs = Date.now();
      figures.add('snapshotsWritten', written.size);
      await eventually(async () => [...written.keys()].every((name) => agent.find('snapshot uploaded', { snapshot: name }).length > 0), 240_000, `all uploaded after the outage\n${agent.tail()}`, 1000);
      figures.note(`everything uploaded ${((Date.now() - resumedAtMs) / 1000).toFixed(0)} s after the server came back`);
      await agent.waitFor('remote store reachable again', {}, 30_000);
      expect((await fetch(`${api}/readyz`)).status).toBe(200);
      expect((await status()).remote.available).toBe(true);

      // The first two written took the two snapshot slots when the server was already frozen and
      // finish whenever their requests do; the backlog behind them must drain newest first.
      const afterOutage = agent.logs.slice(outageLogFrom).filter((e) => e.message === 'snapshot uploaded').map((e) => String(e.snapshot));
      const inSlots = [...written.keys()].slice(1, 3);
      const backlog = afterOutage.filter((name) => !inSlots.includes(name));
      figures.note(`upload order once back: ${afterOutage.map((n) => n.slice(-6)).join(' ')} (holding the 2 slots when frozen: ${inSlots.map((n) => n.slice(-6)).join(' ')})`);
      expect(backlog, 'the backlog uploaded newest first once back').toEqual([...backlog].sort().reverse());
      for (const [name, files] of written) {
        const audit = await remote.audit(name, { kind: 'directory', files });
        figures.add(audit.verdict === 'verified' ? 'verifiedRemote' : audit.verdict === 'corrupted' ? 'corrupted' : 'lost');
        expect(audit.verdict, `${name}: ${audit.problems.join('; ')}`).toBe('verified');
      }
      await stopCleanly(agent);
    }));
});
