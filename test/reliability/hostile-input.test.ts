// Scenario 6: hostile input. A corpus of bad HTTP requests against an agent with an API token
// (traversal in names, bad bodies, methods, limits, cursors and tokens) and a bucket holding
// hostile keys; a bad value for every configuration variable and stores that refuse memsync;
// links in the backup directory that point outside it; a file memsync cannot read. Every
// answer is a clear 4xx JSON (or the documented refusal), nothing is written outside the
// backup directory, and no secret appears in any log line or answer of the whole file.
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { KNOWN_VARIABLES } from '../../src/config.js';
import { DEFAULT_CHUNK_LOG2, encodeHeader, FORMAT_VERSION } from '../../src/crypto/format.js';
import { ENCRYPTED_MANIFEST_FILE_NAME, MANIFEST_FILE_NAME } from '../../src/snapshot/reserved-names.js';
import { ProcessSampler } from '../helpers/process-stats.js';
import { startAgent, type AgentProcess, type StartOptions } from '../helpers/agent-process.js';
import { apiUrl, START_TIMEOUT_MS, stopCleanly, useSandboxes } from '../helpers/agent-sandbox.js';
import { closeListener, listenOnFreePort, unprivilegedUser } from '../helpers/host.js';
import { memoryFileSet, writeBackup, type BackupFile, type WrittenBackup } from '../helpers/memory-service-sim.js';
import { rawRequest } from '../helpers/raw-http.js';
import { eventually, sha256, type RemoteBucket } from '../helpers/remote-bucket.js';
import { runScenario, type ScenarioFigures } from '../helpers/reliability-figures.js';
import { testServer } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';
import { listTree, treeDifferences } from '../helpers/tree-listing.js';
import { configCorpus, httpCorpus, judgeConfig, runConfigCase, type ConfigCase, type ConfigResult } from './hostile-corpus.js';

const execFileAsync = promisify(execFile);
const server = testServer();
const PREFIX = 'memories/';
const SETTLE_MS = 400;
const UPLOAD_TIMEOUT_MS = 60_000;
/** Bad configurations are refused within seconds; this only bounds a start that hangs. */
const CONFIG_EXIT_TIMEOUT_MS = 45_000;
const CONFIG_CASES_IN_PARALLEL = 4;
const { sandbox, agentEnv, startAndSweep, remoteOf } = useSandboxes(server, { prefix: PREFIX, settleMs: SETTLE_MS, label: 'hostile' });

const API_TOKEN = `tok-${randomBytes(16).toString('hex')}`;
const FAKE = {
  accessKey: `FAKEAK${randomBytes(8).toString('hex').toUpperCase()}`,
  secret: `fakesecret${randomBytes(16).toString('hex')}`,
  token: `faketoken${randomBytes(12).toString('hex')}`,
  url: `fakeurlsecret${randomBytes(12).toString('hex')}`,
  key: `fakekey${randomBytes(12).toString('hex')}`,
  /** Well-formed (64 hex digits), for a case where another variable is the problem. */
  validKey: randomBytes(32).toString('hex'),
  passphrase: `fake passphrase ${randomBytes(12).toString('hex')}`,
};
const INVALID_SECRET_FILE_CONTENT = `not a valid value ${randomBytes(12).toString('hex')}`;
/** Every value that must never appear in output: the real credentials, the token, the fakes. */
const SECRETS: Record<string, string> = {
  'S3 access key': server.accessKeyId,
  'S3 secret key': server.secretAccessKey,
  'API token': API_TOKEN,
  ...Object.fromEntries(Object.entries(FAKE).map(([name, value]) => [`fake ${name}`, value])),
  'secret file content': INVALID_SECRET_FILE_CONTENT,
};

/** Everything every agent of this file wrote, and every HTTP answer it gave: scanned for secrets at the end. */
const agents: AgentProcess[] = [];
const answers: string[] = [];

function tracked(options: StartOptions): AgentProcess {
  const agent = startAgent(options);
  agents.push(agent);
  return agent;
}

async function fetchText(url: string, init: RequestInit = {}): Promise<{ status: number; body: string }> {
  const answer = await fetch(url, { ...init, signal: AbortSignal.timeout(60_000) });
  const body = await answer.text();
  answers.push(`${answer.status} ${body}`);
  return { status: answer.status, body };
}

async function tallyRemote(remote: RemoteBucket, name: string, files: readonly BackupFile[], figures: ScenarioFigures): Promise<string | undefined> {
  const audit = await remote.audit(name, { kind: 'directory', files });
  figures.add(audit.verdict === 'verified' ? 'verifiedRemote' : audit.verdict === 'corrupted' ? 'corrupted' : audit.verdict === 'partial-as-complete' ? 'partialAsComplete' : 'lost');
  return audit.verdict === 'verified' ? undefined : `${name}: ${audit.verdict} ${audit.problems.join('; ')}`;
}

/** Keys a hostile bucket may hold: each names a path outside the snapshot once joined to it. */
async function seedHostileBucket(remote: RemoteBucket, escape: string): Promise<string[]> {
  const ok = Buffer.from('ok');
  await remote.put(`${PREFIX}evil_20240101_000000/../../${escape}-1.txt`, ok);
  await remote.put(`${PREFIX}evil_20240101_000001/sub/..\\..\\${escape}-2.txt`, ok);
  await remote.put(`${PREFIX}evil_20240101_000002//tmp/${escape}-3.txt`, ok);
  // A manifest that names a file outside the snapshot, next to a harmless object.
  await remote.put(`${PREFIX}evil_20240101_000003/ok.txt`, ok);
  const manifest = { format: 'memsync-manifest', version: 1, snapshot: 'evil_20240101_000003', kind: 'directory', files: [{ path: `../../${escape}-4.txt`, size: 2, sha256: sha256(ok) }] };
  await remote.put(`${PREFIX}evil_20240101_000003/${MANIFEST_FILE_NAME}`, Buffer.from(JSON.stringify(manifest)));
  await remote.put(`${PREFIX}../${escape}-5/x.txt`, ok);
  return ['evil_20240101_000000', 'evil_20240101_000001', 'evil_20240101_000002', 'evil_20240101_000003'];
}

describe(`hostile input (${server.kind})`, () => {
  it('hostile HTTP requests and a hostile bucket: a clear JSON answer each, nothing written outside the backup directory', () =>
    runScenario('6a hostile HTTP requests', async (figures) => {
      const box = await sandbox('http');
      const remote = remoteOf(box);
      const escape = `memsync-escape-${randomBytes(4).toString('hex')}`;
      // Traversal from the backup directory reaches data/ and the root: both are watched.
      const root = await tempDir('memsync-hostile');
      const backupDir = path.join(root, 'data', 'backups');
      const stateDir = path.join(root, 'state');
      await mkdir(backupDir, { recursive: true });
      await mkdir(path.join(root, 'outside'));
      await writeFile(path.join(root, 'outside', 'canary.txt'), 'must stay as it is');
      const secrets = await tempDir('memsync-secrets');
      const secretFile = async (name: string, value: string): Promise<string> => {
        await writeFile(path.join(secrets, name), `${value}\n`, { mode: 0o600 });
        return path.join(secrets, name);
      };
      const written = [
        await writeBackup(backupDir, { prefix: 'auto', time: new Date(Date.UTC(2024, 9, 1, 0, 0, 0)), files: memoryFileSet({ memories: 10, seed: 'hostile-1' }) }),
        await writeBackup(backupDir, { prefix: 'manual', time: new Date(Date.UTC(2024, 9, 1, 1, 0, 0)), files: memoryFileSet({ memories: 12, indexBytes: 64 * 1024, seed: 'hostile-2' }) }),
      ];
      figures.add('snapshotsWritten', written.length);
      const hostileNames = await seedHostileBucket(remote, escape);

      const agent = tracked({
        env: agentEnv(box, {
          CLOUD_SYNC_BACKUP_DIR: backupDir,
          CLOUD_SYNC_STATE_DIR: stateDir,
          CLOUD_SYNC_ACCESS_KEY: undefined,
          CLOUD_SYNC_SECRET_KEY: undefined,
          CLOUD_SYNC_ACCESS_KEY_FILE: await secretFile('access-key', server.accessKeyId),
          CLOUD_SYNC_SECRET_KEY_FILE: await secretFile('secret-key', server.secretAccessKey),
          CLOUD_SYNC_API_TOKEN_FILE: await secretFile('api-token', API_TOKEN),
        }),
        label: 'agent with an API token',
      });
      const port = Number(new URL(await apiUrl(agent)).port);
      for (const backup of written) await agent.waitFor('snapshot uploaded', { snapshot: backup.name }, UPLOAD_TIMEOUT_MS);
      const before = await listTree(root, [stateDir]);

      const problems: string[] = [];
      const statuses: Record<number, number> = {};
      const corpus = httpCorpus(API_TOKEN, escape);
      for (const c of corpus) {
        let answer;
        try {
          answer = await rawRequest(port, c.request);
        } catch (error) {
          problems.push(`${c.label}: ${String(error)}`);
          continue;
        }
        answers.push(answer.raw);
        statuses[answer.status] = (statuses[answer.status] ?? 0) + 1;
        const body = answer.json as { error?: unknown; message?: unknown } | undefined;
        if (answer.status !== c.status) problems.push(`${c.label}: HTTP ${answer.status}, expected ${c.status}: ${answer.body.slice(0, 200)}`);
        else if (!(answer.headers['content-type'] ?? '').startsWith('application/json') || typeof body?.error !== 'string' || typeof body.message !== 'string') {
          problems.push(`${c.label}: not a JSON error with "error" and "message": ${answer.raw.slice(0, 300)}`);
        } else if (c.error !== undefined && body.error !== c.error) problems.push(`${c.label}: error ${String(body.error)}, expected ${c.error}`);
      }
      // A bucket with hostile keys: refused as an integrity failure (the documented 502), nothing written.
      for (const name of hostileNames) {
        for (const requestPath of [`/sync/download?confirm=true&name=${name}`, `/sync/restore/${name}?confirm=true`]) {
          const answer = await rawRequest(port, { method: 'POST', path: requestPath, headers: { authorization: `Bearer ${API_TOKEN}` } }, 60_000);
          answers.push(answer.raw);
          statuses[answer.status] = (statuses[answer.status] ?? 0) + 1;
          const body = answer.json as { error?: unknown } | undefined;
          if (answer.status !== 502 || body?.error !== 'integrity') problems.push(`${requestPath}: HTTP ${answer.status} ${answer.body.slice(0, 200)}, expected 502 integrity`);
        }
      }
      figures.note(`${corpus.length} hostile requests and ${hostileNames.length * 2} downloads of hostile-bucket snapshots; answers by status ${JSON.stringify(statuses)}`);
      expect(problems).toEqual([]);

      const after = await listTree(root, [stateDir]);
      expect(treeDifferences(before, after), 'changes under the backup directory, its parent and grandparent').toEqual([]);
      expect((await readdir(os.tmpdir())).filter((entry) => entry.includes(escape)), `entries named ${escape} in ${os.tmpdir()}`).toEqual([]);
      expect((await readdir(backupDir)).sort()).toEqual(written.map((b) => b.name).sort());
      // The only failures logged as such are the refusals of the hostile bucket.
      expect(agent.find('request failed').filter((entry) => entry.kind !== 'integrity').map((entry) => JSON.stringify(entry))).toEqual([]);
      expect((await fetchText(`${await apiUrl(agent)}/healthz`)).status).toBe(200);
      expect((await fetchText(`${await apiUrl(agent)}/sync/status`, { headers: { authorization: `Bearer ${API_TOKEN}` } })).status).toBe(200);
      const lost: string[] = [];
      for (const backup of written) {
        const problem = await tallyRemote(remote, backup.name, backup.files, figures);
        if (problem !== undefined) lost.push(problem);
      }
      expect(lost).toEqual([]);
      await stopCleanly(agent);
    }));

  it('a bad value for every configuration variable, and stores that refuse or cannot be reached: a clear exit or report naming the variable', () =>
    runScenario('6b bad configuration', async (figures) => {
      const box = await sandbox('config');
      const backupDir = await tempDir('memsync-config-backups');
      const scratch = await tempDir('memsync-config-files');
      const regularFile = path.join(scratch, 'a-file');
      const invalidSecretFile = path.join(scratch, 'invalid-secret');
      await writeFile(regularFile, 'not a directory');
      await writeFile(invalidSecretFile, `${INVALID_SECRET_FILE_CONTENT}\n`, { mode: 0o600 });
      const busy = await listenOnFreePort();
      let problems: string[];
      try {
        const cases = configCorpus({
          missingFile: path.join(scratch, 'no-such-file'),
          regularFile,
          insideBackupDir: path.join(backupDir, 'state'),
          busyPort: busy.port,
          invalidSecretFile,
          fake: FAKE,
        });
        const covered = new Set(cases.flatMap((c) => [c.variable, ...(c.alsoNames ?? []), ...Object.keys(c.env)]));
        expect(KNOWN_VARIABLES.filter((variable) => variable !== 'NODE_ENV' && !covered.has(variable)), 'variables without a bad-value case').toEqual([]);

        const base = agentEnv(box, { CLOUD_SYNC_BACKUP_DIR: backupDir });
        const results: ConfigResult[] = new Array<ConfigResult>(cases.length);
        let next = 0;
        const worker = async (): Promise<void> => {
          for (let i = next++; i < cases.length; i = next++) {
            const env = { ...base, CLOUD_SYNC_STATE_DIR: await tempDir(`memsync-config-state-${i}`) };
            results[i] = await runConfigCase(tracked, env, cases[i] as ConfigCase, CONFIG_EXIT_TIMEOUT_MS);
          }
        };
        await Promise.all(Array.from({ length: CONFIG_CASES_IN_PARALLEL }, worker));
        problems = cases.flatMap((c, i) => judgeConfig(c, results[i] as ConfigResult) ?? []);
        const exits = results.reduce<Record<string, number>>((counts, r) => ({ ...counts, [String(r.code ?? r.outcome)]: (counts[String(r.code ?? r.outcome)] ?? 0) + 1 }), {});
        figures.note(`${cases.length} bad configurations (every variable of src/config.ts): exits ${JSON.stringify(exits)}, ${cases.length - problems.length} with the expected code and a message naming the variable`);
      } finally {
        await closeListener(busy.server);
      }

      // An unreachable store is not fatal: memsync keeps watching, says so in its log, /readyz and status.
      const closed = await listenOnFreePort();
      await closeListener(closed.server);
      const endpoint = `http://127.0.0.1:${closed.port}`;
      const agent = tracked({ env: agentEnv(box, { CLOUD_SYNC_ENDPOINT: endpoint, CLOUD_SYNC_BACKUP_DIR: await tempDir('memsync-unreachable'), CLOUD_SYNC_STATE_DIR: await tempDir('memsync-state') }), label: 'agent with an unreachable store' });
      const api = await apiUrl(agent);
      const unreachable = await agent.waitFor('remote store unreachable at start; will retry', {}, START_TIMEOUT_MS);
      expect(unreachable.level).toBe('error');
      expect(String(unreachable.location)).toContain(endpoint);
      expect(String(unreachable.error)).toContain('ECONNREFUSED');
      const ready = await fetchText(`${api}/readyz`);
      expect(ready.status).toBe(503);
      expect(JSON.parse(ready.body)).toMatchObject({ ready: false, checks: { config: true, remote: false } });
      const status = JSON.parse((await fetchText(`${api}/sync/status`)).body) as { remote: { available: boolean; lastFailure?: { message: string } } };
      expect(status.remote.available).toBe(false);
      expect(status.remote.lastFailure?.message).toContain('ECONNREFUSED');
      figures.note(`unreachable endpoint: keeps running; log "${unreachable.message}" with ${endpoint}; /readyz 503; status remote.available=false`);
      await stopCleanly(agent);
      expect(problems, 'bad configurations not refused clearly').toEqual([]);
    }));

  it('links in the backup directory that point outside it are never followed: the target bytes are never uploaded', () =>
    runScenario('6c symlinks out of the backup dir', async (figures) => {
      const box = await sandbox('links');
      const remote = remoteOf(box);
      const outside = await tempDir('memsync-outside');
      const marker = Buffer.from(`OUTSIDE-${randomBytes(16).toString('hex')}`);
      await writeFile(path.join(outside, 'secret.bin'), Buffer.concat([marker, randomBytes(4096), marker]));
      await mkdir(path.join(outside, 'snapdir'));
      await writeFile(path.join(outside, 'snapdir', 'metadata.json'), marker);
      const outsideBefore = await listTree(outside);
      const at = (minute: number): Date => new Date(Date.UTC(2024, 2, 1, 0, minute, 0));

      // Before the start (the start sweep finds them) and while the agent runs (the watcher does).
      const withLinkedFile = await writeBackup(box.backupDir, { prefix: 'auto', time: at(0), files: memoryFileSet({ memories: 8, seed: 'links-a' }) });
      await symlink(path.join(outside, 'secret.bin'), path.join(withLinkedFile.path, 'index.faiss'));
      await symlink(path.join(outside, 'snapdir'), path.join(withLinkedFile.path, 'extra'));
      const linkedDirs = ['auto_20240301_000100', 'auto_20240301_000400'];
      const linkedFiles = ['dump_20240301_000200.tar', 'dump_20240301_000500.tar'];
      await symlink(path.join(outside, 'snapdir'), path.join(box.backupDir, linkedDirs[0] as string));
      await symlink(path.join(outside, 'secret.bin'), path.join(box.backupDir, linkedFiles[0] as string));
      const { agent } = await startAndSweep(box, 'agent');
      agents.push(agent);
      const api = await apiUrl(agent);
      await symlink(path.join(outside, 'snapdir'), path.join(box.backupDir, linkedDirs[1] as string));
      await symlink(path.join(outside, 'secret.bin'), path.join(box.backupDir, linkedFiles[1] as string));
      const laterWithLink = await writeBackup(box.backupDir, { prefix: 'auto', time: at(3), files: memoryFileSet({ memories: 9, seed: 'links-d' }) });
      await symlink(path.join(outside, 'secret.bin'), path.join(laterWithLink.path, 'index.faiss'));
      const control = await writeBackup(box.backupDir, { prefix: 'auto', time: at(6), files: memoryFileSet({ memories: 5, indexBytes: 32 * 1024, seed: 'links-g' }) });
      const real = [withLinkedFile, laterWithLink, control];
      figures.add('snapshotsWritten', real.length);
      for (const backup of real) await agent.waitFor('snapshot uploaded', { snapshot: backup.name }, UPLOAD_TIMEOUT_MS);
      const skippedEntries = (): string[] => agent.find('skipping entry in backup directory').map((entry) => String(entry.entry));
      await eventually(async () => [...linkedDirs, ...linkedFiles].every((name) => skippedEntries().includes(name)), 30_000, `every linked entry reported as skipped\n${agent.tail()}`, 200);
      await sleep(3 * SETTLE_MS);

      expect(await remote.snapshotNames()).toEqual(real.map((b) => b.name).sort());
      const carrying: string[] = [];
      for (const object of await remote.list(PREFIX)) if ((await remote.get(object.key)).includes(marker)) carrying.push(object.key);
      expect(carrying, 'objects holding bytes from outside the backup directory').toEqual([]);
      const problems: string[] = [];
      for (const backup of real) {
        const problem = await tallyRemote(remote, backup.name, backup.files, figures);
        if (problem !== undefined) problems.push(problem);
      }
      expect(problems, 'snapshots with links are uploaded without them').toEqual([]);
      // A link is not a pruned backup: nothing counted lost, nothing reported removed.
      expect(agent.find('snapshot removed before it could be uploaded').map((entry) => entry.snapshot)).toEqual([]);
      const counters = (JSON.parse((await fetchText(`${api}/sync/status`)).body) as { counters: { prunedBeforeUpload: number } }).counters;
      expect(counters.prunedBeforeUpload).toBe(0);
      // A file left out of a backup is said in the log, with the snapshot's name (checked last, so the rest runs).
      const unsaid: string[] = [];
      for (const [backup, entries] of [[withLinkedFile, ['index.faiss', 'extra']], [laterWithLink, ['index.faiss']]] as const) {
        const said = agent.logs.some((entry) => entry.level === 'warn' && entry.snapshot === backup.name && entries.every((e) => JSON.stringify(entry).includes(e)));
        if (!said) unsaid.push(`no warning with snapshot=${backup.name} naming ${entries.join(', ')}, left out of its upload`);
      }

      // A restore onto a name that is locally a link to a directory outside: refused, nothing written through it.
      await remote.put(`${PREFIX}${linkedDirs[1]}/metadata.json`, Buffer.from('{"restored":"through a link"}'));
      const restore = await fetchText(`${api}/sync/download?confirm=true&name=${linkedDirs[1]}`, { method: 'POST', headers: { 'content-type': 'application/json' } });
      expect(restore.status, restore.body).toBeGreaterThanOrEqual(400);
      expect(restore.status, restore.body).toBeLessThan(500);
      expect(treeDifferences(outsideBefore, await listTree(outside)), 'changes outside the backup directory').toEqual([]);
      figures.note(`${linkedDirs.length} linked snapshot directories and ${linkedFiles.length} linked single-file snapshots skipped with a warning; 2 snapshots with linked files uploaded without them (${2 - unsaid.length} of 2 with a warning naming the links); no byte from outside in the bucket; a restore onto a linked name answered ${restore.status}`);
      expect(unsaid).toEqual([]);
      await stopCleanly(agent);
    }));

  it('an unreadable file fails its own snapshot with a clear error; the other snapshots still upload', async () => {
    const user = await unprivilegedUser();
    await runScenario('6d unreadable file', async (figures) => {
      if (typeof user === 'string') {
        figures.skip(user);
        return;
      }
      const box = await sandbox('unreadable');
      const remote = remoteOf(box);
      for (const dir of [box.backupDir, box.stateDir]) await chown(dir, user.uid, user.gid);
      const at = (minute: number): Date => new Date(Date.UTC(2024, 3, 1, 0, minute, 0));
      const write = async (minute: number, seed: string, unreadable: boolean) => {
        const backup = await writeBackup(box.backupDir, { prefix: 'auto', time: at(minute), files: memoryFileSet({ memories: 10, indexBytes: 16 * 1024, seed }) });
        if (unreadable) await chmod(path.join(backup.path, 'index.faiss'), 0o000);
        return backup;
      };
      // The start sweep finds the first three; the watcher the last two.
      const unreadableAtStart = await write(0, 'unreadable-1', true);
      const readableAtStart = [await write(1, 'readable-1', false), await write(2, 'readable-2', false)];
      const agent = tracked({ env: agentEnv(box), label: `agent as uid ${user.uid}`, runAs: user });
      const api = await apiUrl(agent);
      const unreadableLater = await write(3, 'unreadable-2', true);
      const readableLater = await write(4, 'readable-3', false);
      const all = [unreadableAtStart, ...readableAtStart, unreadableLater, readableLater];
      figures.add('snapshotsWritten', all.length);
      const uploaded = (name: string): boolean => agent.find('snapshot uploaded', { snapshot: name }).length > 0;
      const within = (condition: () => boolean, timeoutMs: number): Promise<boolean> =>
        eventually(async () => condition(), timeoutMs, 'condition', 250).then(
          () => true,
          () => false,
        );
      // Every check runs, whatever the others find: the findings are asserted together at the end.
      const findings: string[] = [];
      const readable = [...readableAtStart, readableLater];
      await within(() => readable.every((b) => uploaded(b.name)), 30_000);
      const notUploaded = readable.filter((b) => !uploaded(b.name)).map((b) => b.name);
      if (notUploaded.length > 0) findings.push(`readable snapshots not uploaded next to unreadable ones: ${notUploaded.join(', ')}`);
      for (const entry of agent.find('sweep failed')) findings.push(`one unreadable snapshot failed a whole sweep: ${JSON.stringify(entry)}`);
      const unreadable = [unreadableAtStart, unreadableLater];
      const errorsOf = (name: string) => agent.logs.filter((e) => e.level === 'error' && e.snapshot === name);
      for (const backup of unreadable) {
        const said = (): boolean => errorsOf(backup.name).some((e) => JSON.stringify(e).includes('index.faiss') && JSON.stringify(e).includes('EACCES'));
        if (!(await within(said, 15_000))) findings.push(`no error line with snapshot=${backup.name} naming index.faiss and EACCES`);
        const objects = await remote.list(`${PREFIX}${backup.name}/`);
        if (objects.length > 0) findings.push(`objects of unreadable ${backup.name} in the bucket: ${objects.map((o) => o.key).join(', ')}`);
      }
      // Failing again and again is one error line, not one per retry.
      await sleep(8_000);
      for (const backup of unreadable) if (errorsOf(backup.name).length > 1) findings.push(`${errorsOf(backup.name).length} error lines about ${backup.name}`);
      const status = JSON.parse((await fetchText(`${api}/sync/status`)).body) as { counters: { uploadFailures: number } };
      if (status.counters.uploadFailures === 0) findings.push('status counts no upload failure');

      // Readable again: the retries pick them up.
      for (const backup of unreadable) await chmod(path.join(backup.path, 'index.faiss'), 0o644);
      await within(() => unreadable.every((b) => uploaded(b.name)), 75_000);
      for (const backup of unreadable) if (!uploaded(backup.name)) findings.push(`${backup.name} not uploaded once readable again`);
      await stopCleanly(agent);

      // A file of a snapshot already remote becomes unreadable while memsync is stopped, and a new
      // backup arrives: the start sweep must still upload the new one.
      await chmod(path.join((readableAtStart[0] as WrittenBackup).path, 'index.faiss'), 0o000);
      const whileStopped = await write(5, 'readable-4', false);
      all.push(whileStopped);
      figures.add('snapshotsWritten');
      const restarted = tracked({ env: agentEnv(box), label: `agent as uid ${user.uid} (restarted)`, runAs: user });
      figures.add('restartsSurvived');
      const restartedUploaded = await within(() => restarted.find('snapshot uploaded', { snapshot: whileStopped.name }).length > 0, 30_000);
      if (!restartedUploaded) findings.push(`${whileStopped.name}, written while memsync was stopped, not uploaded at start next to an unreadable file of a snapshot already remote`);
      for (const entry of restarted.find('sweep failed')) findings.push(`after the restart, one unreadable file failed a whole sweep: ${JSON.stringify(entry)}`);
      for (const backup of all) {
        const problem = await tallyRemote(remote, backup.name, backup.files, figures);
        if (problem !== undefined) findings.push(problem);
      }
      figures.note(
        `agent run as uid ${user.uid}; 2 snapshots with a chmod 000 file, 3 readable ones, then a restart with a file of an uploaded snapshot unreadable and a new backup; ${findings.length === 0 ? 'each unreadable one failed alone with an error naming the file, the others uploaded meanwhile, both uploaded once readable; the new backup uploaded at the restart' : `${findings.length} findings`}`,
      );
      expect(findings, restarted.tail(60)).toEqual([]);
      await stopCleanly(restarted);
    });
  });

  it('a planted bucket and a backup directory that changes under memsync: each bad snapshot fails alone, memory stays bounded', () =>
    runScenario('6e hostile bucket and backup files', async (figures) => {
      const box = await sandbox('planted');
      const remote = remoteOf(box);
      const escape = `memsync-escape-${randomBytes(4).toString('hex')}`;
      // Encrypted objects whose headers ask for scrypt far beyond memsync's own (2^20 and 2^18,
      // distinct salts), a manifest padded far beyond any real one, and a key that names a
      // snapshot "x" through dot segments, uploaded last so it is the newest by upload time.
      const planted = ['planted_20990101_000000', 'planted_20990101_000001'];
      const costs = [{ log2N: 20, r: 16, p: 4 }, { log2N: 18, r: 8, p: 1 }];
      for (const [i, name] of planted.entries()) {
        const header = encodeHeader({ version: FORMAT_VERSION, chunkLog2: DEFAULT_CHUNK_LOG2, kdf: { kind: 'scrypt', ...(costs[i] as { log2N: number; r: number; p: number }), salt: randomBytes(16) }, keyCheck: randomBytes(16), objectId: randomBytes(32) });
        await remote.put(`${PREFIX}${name}/metadata.json`, Buffer.concat([header, randomBytes(64)]));
        await remote.put(`${PREFIX}${name}/${ENCRYPTED_MANIFEST_FILE_NAME}`, Buffer.concat([header, randomBytes(64)]));
      }
      const padded = 'huge_20990101_000002';
      const paddedManifest = Buffer.alloc(24 * 1024 * 1024, 0x20);
      Buffer.from(JSON.stringify({ format: 'memsync-manifest', version: 1, snapshot: padded, kind: 'directory', files: [{ path: 'metadata.json', size: 2, sha256: sha256(Buffer.from('ok')) }] })).copy(paddedManifest);
      await remote.put(`${PREFIX}${padded}/metadata.json`, Buffer.from('ok'));
      await remote.put(`${PREFIX}${padded}/${MANIFEST_FILE_NAME}`, paddedManifest);
      await remote.put(`${PREFIX}x/../../${escape}`, Buffer.from('evil'));

      const agent = tracked({
        env: agentEnv(box, { CLOUD_SYNC_API_TOKEN: API_TOKEN, CLOUD_SYNC_ENCRYPTION_PASSPHRASE: FAKE.passphrase }),
        label: 'encrypting agent over a planted bucket',
      });
      const pid = agent.pid;
      if (pid === undefined) throw new Error('the agent process has no pid');
      const sampler = new ProcessSampler(pid, 100);
      sampler.start();
      const findings: string[] = [];
      try {
        const api = await apiUrl(agent);
        const auth = { authorization: `Bearer ${API_TOKEN}` };
        // The automatic download at start (the backup directory is empty) must pick neither "x" nor fail the agent.
        await eventually(async () => agent.logs.some((e) => /download/i.test(String(e.message)) && e.level !== 'debug'), 30_000, `a start-up download attempt\n${agent.tail()}`, 200);
        for (const entry of agent.logs) if (JSON.stringify(entry).includes('"snapshot":"x"')) findings.push(`the planted "x" was acted on: ${JSON.stringify(entry)}`);
        // Four restores at once, as an attacker would ask: each refused, none takes the agent's memory.
        const targets = [...planted, padded, ...planted];
        const answersOf = await Promise.all(
          targets.map((name) => rawRequest(Number(new URL(api).port), { method: 'POST', path: `/sync/restore/${name}?confirm=true`, headers: auth }, 120_000)),
        );
        for (const [i, answer] of answersOf.entries()) {
          answers.push(answer.raw);
          if (answer.status !== 502 || (answer.json as { error?: unknown } | undefined)?.error !== 'integrity') findings.push(`restore ${targets[i]}: HTTP ${answer.status} ${answer.body.slice(0, 200)}, expected 502 integrity`);
        }
        const latest = JSON.parse((await fetchText(`${api}/sync/status`, { headers: auth })).body) as { remoteSnapshots: { latest?: { name: string } } };
        if (latest.remoteSnapshots.latest?.name === 'x') findings.push('status names the planted "x" as the latest remote snapshot');

        const at = (minute: number): Date => new Date(Date.UTC(2024, 5, 1, 0, minute, 0));
        const files = (seed: string): BackupFile[] => memoryFileSet({ memories: 6, indexBytes: 8 * 1024, seed });
        const good = await writeBackup(box.backupDir, { prefix: 'auto', time: at(0), files: files('planted-good') });
        const unrestorable = await writeBackup(box.backupDir, { prefix: 'auto', time: at(1), files: [...files('planted-newline'), { name: 'a\nb', bytes: Buffer.from('x') }] });
        const deep = Array.from({ length: 4 }, (_, i) => `${String(i)}${'d'.repeat(249)}`).join('/');
        const longKey = await writeBackup(box.backupDir, { prefix: 'auto', time: at(2), files: [...files('planted-long'), { name: `${deep}/f`, bytes: Buffer.from('y') }] });
        const fifo = await writeBackup(box.backupDir, { prefix: 'auto', time: at(3), files: files('planted-fifo') });
        // Swapped in while the snapshot settles: a reader that opens it blocks until a writer comes.
        await rm(path.join(fifo.path, 'index.faiss'));
        await execFileAsync('mkfifo', [path.join(fifo.path, 'index.faiss')]);
        const after = await writeBackup(box.backupDir, { prefix: 'auto', time: at(4), files: files('planted-after') });
        for (const backup of [good, after]) {
          try {
            await agent.waitFor('snapshot uploaded', { snapshot: backup.name }, UPLOAD_TIMEOUT_MS);
          } catch {
            findings.push(`${backup.name} not uploaded next to the hostile snapshots`);
          }
        }
        for (const backup of [unrestorable, longKey]) {
          const said = await eventually(async () => agent.logs.some((e) => e.level === 'error' && e.snapshot === backup.name), 30_000, backup.name, 200).then(
            () => true,
            () => false,
          );
          if (!said) findings.push(`no error line for ${backup.name}`);
          const manifests = (await remote.list(`${PREFIX}${backup.name}/`)).filter((o) => o.key.endsWith(ENCRYPTED_MANIFEST_FILE_NAME) || o.key.endsWith(MANIFEST_FILE_NAME));
          if (manifests.length > 0) findings.push(`${backup.name} was marked complete`);
        }
        const status = JSON.parse((await fetchText(`${api}/sync/status`, { headers: auth })).body) as { remote: { available?: boolean } };
        if (status.remote.available !== true) findings.push(`a refused key counted as an outage: remote.available=${String(status.remote.available)}`);
        if ((await fetchText(`${api}/healthz`)).status !== 200) findings.push('/healthz does not answer');
        if ((await remote.list(`${PREFIX}${fifo.name}/`)).some((o) => o.key.endsWith('index.faiss'))) findings.push('bytes were uploaded for the FIFO');
        await stopCleanly(agent);
      } finally {
        await sampler.stop();
      }
      const peak = sampler.summary()?.maxRssBytes ?? 0;
      figures.note(
        `2 planted encrypted snapshots asking for scrypt N=2^20/r=16 and N=2^18, a manifest padded to 24 MiB, a key "x/../../…", 4 concurrent restores of them; snapshots with a newline in a file name, a key over 1,024 bytes and a FIFO swapped in: ${findings.length === 0 ? 'each refused alone, the others uploaded' : `${findings.length} findings`}; agent peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`,
      );
      expect(findings, agent.tail(60)).toEqual([]);
      // One derivation at memsync's own cost (128 MiB) at a time, manifests bounded: far below the gigabytes planted objects once took.
      expect(peak, 'agent peak RSS').toBeLessThan(700 * 2 ** 20);
    }));

  it('no secret appears in any log line or HTTP answer of this file', () =>
    runScenario('6f no secret in output', async (figures) => {
      const texts = [...agents.map((agent) => agent.output()), ...answers];
      expect(agents.length, 'agents whose output is scanned').toBeGreaterThan(0);
      const found = Object.entries(SECRETS).flatMap(([what, secret]) => {
        const hits = texts.filter((text) => text.includes(secret)).length;
        return hits > 0 ? [`${what} in ${hits} output(s)`] : [];
      });
      const lines = texts.reduce((sum, text) => sum + text.split('\n').length, 0);
      figures.note(`${lines} lines of output of ${agents.length} agent processes and ${answers.length} HTTP answers scanned for ${Object.keys(SECRETS).length} secrets: ${found.length === 0 ? 'none found' : found.join(', ')}`);
      expect(found).toEqual([]);
    }));
});
