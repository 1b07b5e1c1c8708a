// Scenario 7: two agents, one bucket and prefix, each with its own backup and state directory.
// They write snapshots of the same names: some with the same content, most with different
// content, first one side then the other, and at the very same moment (multipart files
// included). No object is ever overwritten or deleted (a listing is watched throughout, and
// every object's bytes are compared before and after); every clash is reported as a conflict,
// with both checksums, by the side that lost it; identical content counts as already remote.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { AgentProcess } from '../helpers/agent-process.js';
import { apiUrl, stopCleanly, useSandboxes, type Sandbox } from '../helpers/agent-sandbox.js';
import { memoryFileSet, writeBackup, type BackupFile } from '../helpers/memory-service-sim.js';
import { eventually, ObjectLedger, sha256, type RemoteBucket } from '../helpers/remote-bucket.js';
import { runScenario } from '../helpers/reliability-figures.js';
import { testServer } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';

const server = testServer();
const PREFIX = 'memories/';
const SETTLE_MS = 400;
const MIB = 1024 * 1024;
const OUTCOME_TIMEOUT_MS = 90_000;
const LEDGER_POLL_MS = 150;
/** Snapshots written by both sides at the same moment with different content. */
const RACES = 5;
const { sandbox, startAndSweep, remoteOf } = useSandboxes(server, { prefix: PREFIX, settleMs: SETTLE_MS, label: 'two' });

type Side = 'A' | 'B';
type Outcome = 'uploaded' | 'already remote' | 'conflict';

interface Written {
  side: Side;
  name: string;
  files: BackupFile[];
}

interface ConflictEntry {
  snapshot: string;
  localDigest: string;
  remoteDigest: string;
}

interface Status {
  conflicts: ConflictEntry[];
  counters: { snapshotsAlreadyRemote: number; conflicts: number };
}

const at = (hour: number, minute: number): Date => new Date(Date.UTC(2024, 10, 1, hour, minute, 0));
const isProbe = (key: string): boolean => key.includes('.memsync-probe/');

function outcomeOf(agent: AgentProcess, name: string): Outcome | undefined {
  if (agent.find(/^conflict:/, { snapshot: name }).length > 0) return 'conflict';
  if (agent.find('snapshot uploaded', { snapshot: name }).length > 0) return 'uploaded';
  if (agent.find('snapshot already remote', { snapshot: name }).length > 0) return 'already remote';
  return undefined;
}

async function waitOutcome(agent: AgentProcess, name: string): Promise<Outcome> {
  await eventually(async () => outcomeOf(agent, name) !== undefined, OUTCOME_TIMEOUT_MS, `an outcome for ${name} on ${agent.label}\n${agent.tail()}`, 200);
  return outcomeOf(agent, name) as Outcome;
}

/** Every object's ETag, size and SHA-256 of its bytes (probe objects aside). */
async function contentOf(remote: RemoteBucket): Promise<Map<string, string>> {
  const content = new Map<string, string>();
  for (const object of await remote.list(PREFIX)) {
    if (!isProbe(object.key)) content.set(object.key, `${object.etag} ${object.size} ${sha256(await remote.get(object.key))}`);
  }
  return content;
}

/** Watches the bucket's listing until stopped; a failed listing is counted, not fatal. */
function watchBucket(remote: RemoteBucket, ledger: ObjectLedger): { stop: () => Promise<number> } {
  let running = true;
  let failures = 0;
  const loop = (async () => {
    while (running) {
      try {
        ledger.observe(await remote.list(PREFIX));
      } catch {
        failures += 1;
      }
      await sleep(LEDGER_POLL_MS);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      ledger.observe(await remote.list(PREFIX));
      return failures;
    },
  };
}

async function statusOf(api: string): Promise<Status> {
  return (await (await fetch(`${api}/sync/status`, { signal: AbortSignal.timeout(30_000) })).json()) as Status;
}

describe(`two agents on one prefix (${server.kind})`, () => {
  it('same names, different and identical content, one after the other and at the same moment: nothing overwritten, conflicts reported by the side that lost', () =>
    runScenario('7 two agents, one prefix', async (figures) => {
      const boxA = await sandbox('shared');
      const boxB: Sandbox = { bucket: boxA.bucket, backupDir: await tempDir('memsync-backups-b'), stateDir: await tempDir('memsync-state-b') };
      const remote = remoteOf(boxA);
      const dirs: Record<Side, string> = { A: boxA.backupDir, B: boxB.backupDir };
      const written: Written[] = [];
      const write = async (side: Side, time: Date, files: BackupFile[]): Promise<string> => {
        const backup = await writeBackup(dirs[side], { prefix: 'auto', time, files, chunkBytes: MIB });
        written.push({ side, name: backup.name, files });
        return backup.name;
      };
      const set = (seed: string, indexBytes = 64 * 1024): BackupFile[] => memoryFileSet({ memories: 15, indexBytes, seed });

      // Before either starts: the same content on both sides, one snapshot each, and a clash A will win.
      const sameAtStart = set('same-at-start');
      const same0 = await write('A', at(1, 0), sameAtStart);
      await write('B', at(1, 0), sameAtStart);
      const aOnly = await write('A', at(1, 1), set('a-only'));
      const bOnly = await write('B', at(1, 2), set('b-only'));
      const clashAtStart = await write('A', at(1, 3), set('clash-at-start-A'));
      await write('B', at(1, 3), set('clash-at-start-B'));

      const ledger = new ObjectLedger(isProbe);
      const watch = watchBucket(remote, ledger);
      const { agent: a } = await startAndSweep(boxA, 'agent A');
      for (const name of [same0, aOnly, clashAtStart]) expect(await waitOutcome(a, name), name).toBe('uploaded');
      const { agent: b, sweep: sweepB } = await startAndSweep(boxB, 'agent B');
      const apiA = await apiUrl(a);
      const apiB = await apiUrl(b);
      expect(Number(sweepB.inSync), 'B\'s start sweep finds the identical snapshot in sync').toBeGreaterThanOrEqual(1);
      expect(await waitOutcome(b, bOnly)).toBe('uploaded');
      expect(await waitOutcome(b, clashAtStart)).toBe('conflict');
      const before = await contentOf(remote);

      // Both running: one side first, the other once it is remote.
      const expectOutcomes = async (first: AgentProcess, second: AgentProcess, firstSide: Side, time: Date, seed: string, sameContent: boolean): Promise<string> => {
        const files = set(`${seed}-${firstSide}`);
        const name = await write(firstSide, time, files);
        expect(await waitOutcome(first, name), `${name} on ${first.label}`).toBe('uploaded');
        await write(firstSide === 'A' ? 'B' : 'A', time, sameContent ? files : set(`${seed}-other`));
        expect(await waitOutcome(second, name), `${name} on ${second.label}`).toBe(sameContent ? 'already remote' : 'conflict');
        return name;
      };
      const clashA = await expectOutcomes(a, b, 'A', at(2, 0), 'clash-a-first', false);
      const clashB = await expectOutcomes(b, a, 'B', at(2, 1), 'clash-b-first', false);
      const sameLater = await expectOutcomes(a, b, 'A', at(2, 2), 'same-later', true);

      // At the same moment: different content (multipart files in all but one), then identical content.
      const races: string[] = [];
      for (let k = 0; k < RACES; k += 1) {
        const indexBytes = k < RACES - 1 ? 12 * MIB : 64 * 1024;
        const [name] = await Promise.all([write('A', at(3, k), set(`race-${k}-A`, indexBytes)), write('B', at(3, k), set(`race-${k}-B`, indexBytes))]);
        races.push(name);
      }
      const sameRaceFiles = set('same-race', 12 * MIB);
      const [sameRace] = await Promise.all([write('A', at(3, 10), sameRaceFiles), write('B', at(3, 10), sameRaceFiles)]);
      // A side whose attempt failed on the other's object settles on a conflict at its retry (about 5 s later).
      const outcomes = new Map<string, Record<Side, Outcome>>();
      for (const name of [...races, sameRace]) outcomes.set(name, { A: await waitOutcome(a, name), B: await waitOutcome(b, name) });

      // Sync now on both: nothing changes remotely, conflicts are answered as such.
      const syncA = (await (await fetch(`${apiA}/sync/upload`, { method: 'POST', headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(120_000) })).json()) as { skipped: string[]; conflicts: string[] };
      const syncB = (await (await fetch(`${apiB}/sync/upload`, { method: 'POST', headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(120_000) })).json()) as { skipped: string[]; conflicts: string[] };
      expect(syncB.skipped, 'identical snapshots count as already remote on B').toEqual(expect.arrayContaining([same0, sameLater, sameRace]));
      expect(syncA.skipped).toEqual(expect.arrayContaining([same0, sameLater, sameRace]));
      expect(syncB.conflicts).toEqual(expect.arrayContaining([clashAtStart, clashA]));
      expect(syncA.conflicts).toEqual(expect.arrayContaining([clashB]));

      // B restarts: its conflicts are remembered, and it writes nothing.
      await stopCleanly(b);
      const { agent: b2 } = await startAndSweep(boxB, 'agent B (restarted)');
      figures.add('restartsSurvived');
      const apiB2 = await apiUrl(b2);
      await sleep(3 * SETTLE_MS);
      const failures = await watch.stop();

      // Nothing overwritten or deleted, at any moment, and every object of before is byte-identical after.
      const problems: string[] = [
        ...ledger.overwritten.map((what) => `overwritten: ${what}`),
        ...[...ledger.deleted].map((key) => `deleted: ${key}`),
        ...ledger.recreated.map((key) => `deleted and written again with other content: ${key}`),
      ];
      const after = await contentOf(remote);
      for (const [key, content] of before) if (after.get(key) !== content) problems.push(`changed since both agents ran: ${key}: ${content} -> ${after.get(key) ?? 'gone'}`);

      // Who holds each name remotely, and whether each side reports the clash it lost.
      const statusA = await statusOf(apiA);
      const statusB = await statusOf(apiB2);
      const conflictsOf: Record<Side, Map<string, ConflictEntry>> = {
        A: new Map(statusA.conflicts.map((c) => [c.snapshot, c])),
        B: new Map(statusB.conflicts.map((c) => [c.snapshot, c])),
      };
      const agents: Record<Side, AgentProcess[]> = { A: [a], B: [b, b2] };
      let verified = 0;
      let conflictsKept = 0;
      for (const name of [...new Set(written.map((w) => w.name))]) {
        const versions = written.filter((w) => w.name === name);
        const holders: Side[] = [];
        for (const version of versions) if ((await remote.audit(name, { kind: 'directory', files: version.files })).verdict === 'verified') holders.push(version.side);
        const audit = await remote.audit(name);
        if (audit.verdict === 'corrupted' || audit.verdict === 'partial-as-complete') {
          figures.add(audit.verdict === 'corrupted' ? 'corrupted' : 'partialAsComplete');
          problems.push(`${name}: ${audit.verdict} remotely: ${audit.problems.join('; ')}`);
        } else if (audit.verdict === 'verified' && holders.length === 0) {
          figures.add('corrupted');
          problems.push(`${name}: complete remotely, but with the content of neither side`);
        }
        for (const version of versions) {
          const conflict = conflictsOf[version.side].get(name);
          if (holders.includes(version.side)) {
            verified += 1;
            figures.add('verifiedRemote');
            if (conflict !== undefined) problems.push(`${name}: ${version.side} holds it remotely but reports a conflict`);
            continue;
          }
          if (conflict === undefined) {
            figures.add('lost');
            problems.push(`${name}: ${version.side}'s content is not remote and ${version.side} reports no conflict`);
            continue;
          }
          conflictsKept += 1;
          if (conflict.localDigest === '' || conflict.remoteDigest === '' || conflict.localDigest === conflict.remoteDigest) problems.push(`${name}: ${version.side}'s conflict lacks both checksums: ${JSON.stringify(conflict)}`);
          const warned = agents[version.side].some((agent) => agent.find(/^conflict:/, { snapshot: name }).some((e) => e.level === 'warn' && typeof e.localSha256 === 'string' && typeof e.remoteSha256 === 'string'));
          if (!warned) problems.push(`${name}: no conflict warning with both checksums in ${version.side}'s log`);
        }
      }
      figures.add('snapshotsWritten', written.length);
      const raceSummary = races.map((name) => `${name.slice(-6)}: A ${outcomes.get(name)?.A}, B ${outcomes.get(name)?.B}`).join('; ');
      figures.note(`${written.length} local snapshots under ${new Set(written.map((w) => w.name)).size} names: ${verified} remote byte-identical, ${conflictsKept} kept locally as conflicts (A ${conflictsOf.A.size}, B ${conflictsOf.B.size}); ${ledger.overwritten.length} overwritten, ${ledger.deleted.size} deleted of ${ledger.firstSeen.size} objects watched (${failures} failed listings)`);
      figures.note(`simultaneous different content: ${raceSummary}; simultaneous identical content: A ${outcomes.get(sameRace)?.A}, B ${outcomes.get(sameRace)?.B}; objects written again with the same bytes: ${ledger.rewritten.length}`);
      expect(problems).toEqual([]);

      // Identical content is never sent twice, and never a conflict.
      expect(b.find('snapshot uploaded', { snapshot: same0 }), 'B uploaded the identical snapshot again').toEqual([]);
      expect(b.find('snapshot uploaded', { snapshot: sameLater })).toEqual([]);
      expect(statusB.counters.snapshotsAlreadyRemote, 'B counts identical snapshots as already remote').toBeGreaterThanOrEqual(1);
      for (const side of ['A', 'B'] as const) for (const name of [same0, sameLater, sameRace]) expect(conflictsOf[side].has(name), `${side} reports ${name} as a conflict`).toBe(false);
      expect(b2.find('snapshot uploaded'), 'the restarted B uploads nothing').toEqual([]);
      expect([...conflictsOf.B.keys()]).toEqual(expect.arrayContaining([clashAtStart, clashA]));
      expect([...conflictsOf.A.keys()]).toEqual(expect.arrayContaining([clashB]));
      expect(await remote.openMultipartUploads()).toEqual([]);
      await stopCleanly(a);
      await stopCleanly(b2);
    }));
});

