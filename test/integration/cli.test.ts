// The memsync command line as real processes (node --import tsx src/main.ts <command>) against
// the real S3 server of the test run. The tests share one bucket and run in order: upload,
// list, status, verify, restore, conflicts, and last the corruption of a remote object.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MANIFEST_FILE_NAME } from '../../src/snapshot/manifest.js';
import { freshAgentState } from '../../src/state/agent-state.js';
import { memoryFileSet, writeBackup, type WrittenBackup } from '../helpers/memory-service-sim.js';
import { createTestBucket, emptyAndDeleteBucket, s3ClientFor } from '../helpers/s3-fixture.js';
import { s3Env, testServer } from '../helpers/s3.js';
import { killRunningCommands, runMemsync, type CommandRun } from '../helpers/memsync-command.js';

const server = testServer();
const PREFIX = 'memories/';
const MIB = 1024 * 1024;
const NAME = 'auto_20261125_020000';
const OLD_CONFLICT = 'old_20200101_000000';


function describeRun(args: string[], run: CommandRun): string {
  return `memsync ${args.join(' ')} -> ${run.code}\n--- stdout:\n${run.stdout}\n--- stderr:\n${run.stderr}`;
}

/** Runs and expects an exit code, showing the output when it differs. */
async function expectRun(args: string[], env: Record<string, string | undefined>, code: number): Promise<CommandRun> {
  const run = await runMemsync(args, env);
  expect(run.code, describeRun(args, run)).toBe(code);
  return run;
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

let client: S3Client;
let bucket: string;
let root: string;
let backupDir: string;
let stateDir: string;
let backup: WrittenBackup;

function env(overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    ...s3Env(server, bucket),
    CLOUD_SYNC_PREFIX: PREFIX,
    CLOUD_SYNC_BACKUP_DIR: backupDir,
    CLOUD_SYNC_STATE_DIR: stateDir,
    CLOUD_SYNC_SETTLE_MS: '300',
    CLOUD_SYNC_MULTIPART_THRESHOLD_MB: '5',
    ...overrides,
  };
}

async function getRemote(key: string): Promise<Buffer> {
  const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from((await answer.Body?.transformToByteArray()) ?? []);
}

async function remoteKeys(): Promise<string[]> {
  const answer = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (answer.Contents ?? []).map((o) => o.Key ?? '').sort();
}

/** Name, size and mtime of every file under `dir`: what "nothing was written" compares. */
async function fingerprint(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const lines: string[] = [];
  for (const entry of entries) {
    const absolute = path.join(entry.parentPath, entry.name);
    const info = await stat(absolute);
    lines.push(`${path.relative(dir, absolute)} ${info.size} ${info.mtimeMs}`);
  }
  return lines.sort();
}

beforeAll(async () => {
  client = s3ClientFor(server);
  bucket = await createTestBucket(server, 'cli');
  root = await mkdtemp(path.join(os.tmpdir(), 'memsync-cli-'));
  backupDir = path.join(root, 'backups');
  stateDir = path.join(root, 'state');
  await mkdir(backupDir);
  await mkdir(stateDir);
  // What an agent using this state directory would have left: its id and a conflict it recorded.
  const state = freshAgentState();
  state.conflicts[OLD_CONFLICT] = { snapshot: OLD_CONFLICT, detectedAtMs: Date.UTC(2020, 0, 2), operation: 'upload', localDigest: 'a'.repeat(64), remoteDigest: 'b'.repeat(64), files: [] };
  await writeFile(path.join(stateDir, 'state.json'), JSON.stringify(state));
  // Above the multipart threshold and one 8 MiB part: the index goes up in parts.
  backup = await writeBackup(backupDir, { prefix: 'auto', time: new Date(Date.UTC(2026, 10, 25, 2)), files: memoryFileSet({ memories: 50, indexBytes: 9 * MIB + 123 }) });
  expect(backup.name).toBe(NAME);
});

afterEach(() => {
  killRunningCommands();
});

afterAll(async () => {
  client?.destroy();
  if (bucket !== undefined) await emptyAndDeleteBucket(server, bucket).catch((error: unknown) => console.error(`[cli] cannot delete bucket ${bucket}: ${String(error)}`));
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

describe(`memsync command line (${server.kind})`, () => {
  it('upload sends a snapshot still settling, verified, manifest last; snapshots lists it', async () => {
    const upload = await expectRun(['upload'], env(), 0);
    expect(upload.stdout).toMatch(new RegExp(`^uploaded +${NAME}$`, 'm'));
    expect(upload.stdout).toMatch(/1 uploaded, 0 already remote, 0 conflicts, 0 failed/);
    // No claim on the name: index.faiss went up in parts under one, removed once the manifest was written.
    expect(await remoteKeys()).toEqual([...backup.files.map((f) => `${PREFIX}${NAME}/${f.name}`), `${PREFIX}${NAME}/${MANIFEST_FILE_NAME}`].sort());
    for (const file of backup.files) expect(sha256(await getRemote(`${PREFIX}${NAME}/${file.name}`)), file.name).toBe(sha256(file.bytes));

    const json = await expectRun(['snapshots', '--json'], env(), 0);
    const list = JSON.parse(json.stdout) as { snapshots: { name: string; time: string; files: number; bytes: number; complete: boolean; encrypted: boolean }[]; total: number };
    expect(list.total).toBe(1);
    expect(list.snapshots).toEqual([{ name: NAME, time: '2026-11-25T02:00:00.000Z', files: 3, bytes: backup.files.reduce((n, f) => n + f.bytes.length, 0), complete: true, encrypted: false }]);

    const text = await expectRun(['snapshots', '--limit', '5'], env(), 0);
    expect(text.stdout).toMatch(/^NAME +TIME \(UTC\) +FILES +SIZE +STATE$/m);
    expect(text.stdout).toMatch(new RegExp(`^${NAME} +2026-11-25T02:00:00Z +3 +9\\.\\d MiB +complete$`, 'm'));

    const again = await expectRun(['upload', NAME], env(), 0);
    expect(again.stdout).toMatch(new RegExp(`^already remote +${NAME}$`, 'm'));
  });

  it('upload reports as uploaded the fresh snapshots it uploaded, even those the agent settled and sent while the command waited', async () => {
    const freshDir = await mkdtemp(path.join(os.tmpdir(), 'memsync-cli-fresh-'));
    const freshState = await mkdtemp(path.join(os.tmpdir(), 'memsync-cli-fresh-state-'));
    try {
      const count = 30;
      for (let i = 0; i < count; i += 1) {
        await writeBackup(freshDir, { prefix: 'fresh', time: new Date(Date.UTC(2026, 10, 26, 0, 0, i)), files: memoryFileSet({ memories: 3, indexBytes: 4096 }) });
      }
      const run = await expectRun(['upload'], env({ CLOUD_SYNC_BACKUP_DIR: freshDir, CLOUD_SYNC_STATE_DIR: freshState, CLOUD_SYNC_PREFIX: 'fresh/' }), 0);
      expect(run.stdout).toMatch(new RegExp(`${count} uploaded, 0 already remote, 0 conflicts, 0 failed`));
    } finally {
      await rm(freshDir, { recursive: true, force: true });
      await rm(freshState, { recursive: true, force: true });
    }
  });

  it('upload NAME knows what the bucket holds: an unchanged large file is copied server-side, not sent again', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'memsync-cli-named-'));
    const stateDir = await mkdtemp(path.join(os.tmpdir(), 'memsync-cli-named-state-'));
    try {
      const files = memoryFileSet({ memories: 3, indexBytes: 6 * 1024 * 1024 });
      const first = await writeBackup(dir, { prefix: 'named', time: new Date(Date.UTC(2026, 10, 27, 0, 0, 0)), files });
      const second = await writeBackup(dir, { prefix: 'named', time: new Date(Date.UTC(2026, 10, 27, 0, 1, 0)), files });
      const settings = env({ CLOUD_SYNC_BACKUP_DIR: dir, CLOUD_SYNC_STATE_DIR: stateDir, CLOUD_SYNC_PREFIX: 'named/' });
      await expectRun(['upload', first.name], settings, 0);
      const run = await expectRun(['upload', second.name], settings, 0);
      const copied = Number(/copied server-side (\d+)/.exec(run.stdout)?.[1] ?? Number.NaN);
      expect(copied, run.stdout).toBeGreaterThanOrEqual(6 * 1024 * 1024);
    } finally {
      await rm(dir, { recursive: true, force: true });
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it('across upload commands, a file composed from its previous version is copied whole when the next backup holds it unchanged', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'memsync-cli-delta-'));
    const stateDir = await mkdtemp(path.join(os.tmpdir(), 'memsync-cli-delta-state-'));
    try {
      const big = Buffer.alloc(20 * 1024 * 1024);
      for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2_654_435_761) >>> 0, i);
      const grown = Buffer.concat([big, Buffer.from('one more record')]);
      const settings = env({ CLOUD_SYNC_BACKUP_DIR: dir, CLOUD_SYNC_STATE_DIR: stateDir, CLOUD_SYNC_PREFIX: 'delta/' });
      const runs: string[] = [];
      // The memory service prunes its folder: each command sees only the newest backup here.
      let previous: string | undefined;
      for (const [minute, bytes] of [big, grown, grown].entries()) {
        if (previous !== undefined) await rm(path.join(dir, previous), { recursive: true });
        const backup = await writeBackup(dir, { prefix: 'delta', time: new Date(Date.UTC(2026, 10, 28, 0, minute, 0)), files: [{ name: 'metadata.json', bytes }] });
        runs.push((await expectRun(['upload'], settings, 0)).stdout);
        previous = backup.name;
      }
      const figures = (stdout: string) => /bytes sent (\d+), copied server-side (\d+), composed from earlier versions (\d+)/.exec(stdout)?.slice(1).map(Number);
      expect(figures(runs[1] ?? '')?.[2], runs[1]).toBeGreaterThan(10 * 1024 * 1024);
      expect(figures(runs[2] ?? ''), runs[2]).toEqual([0, grown.length, 0]);
    } finally {
      await rm(dir, { recursive: true, force: true });
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it('status shows the snapshot in sync and the conflicts the agent recorded, and writes no state', async () => {
    const before = await fingerprint(stateDir);
    const run = await expectRun(['status', '--json'], env(), 0);
    const report = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(report).toMatchObject({
      remote: { reachable: true, count: 1, complete: 1, latest: { name: NAME } },
      local: { count: 1, latest: { name: NAME }, settling: [] },
      inSync: [NAME],
      pending: [],
      onlyRemote: [],
      newerRemote: [],
      conflicts: [{ snapshot: OLD_CONFLICT, operation: 'upload' }],
      agent: { stateFound: true, lastSuccess: null },
    });
    const text = await expectRun(['status'], env(), 0);
    expect(text.stdout).toMatch(/^in sync +1$/m);
    expect(text.stdout).toMatch(/^pending +0$/m);
    expect(text.stdout).toMatch(new RegExp(`^conflicts +1 recorded by the agent: ${OLD_CONFLICT}$`, 'm'));
    // Neither status nor the upload before it touched the agent's files (no hash-cache.json either).
    expect(await fingerprint(stateDir)).toEqual(before);
    expect(before).toHaveLength(1);
  });

  it('verify re-reads every object and finds the snapshot ok', async () => {
    const run = await expectRun(['verify'], env(), 0);
    expect(run.stdout).toMatch(new RegExp(`^ok +${NAME} +3 files, 9\\.\\d MiB, checked by SHA-256$`, 'm'));
    expect(run.stdout).toMatch(/^1 checked: 1 ok, 0 unverified, 0 failed/m);
    const json = await expectRun(['verify', NAME, '--json'], env(), 0);
    expect(JSON.parse(json.stdout)).toMatchObject({ snapshots: [{ snapshot: NAME, status: 'ok', manifest: true, files: 3, verification: 'sha256', failures: [] }], summary: { snapshots: 1, ok: 1, failed: 0 } });
  });

  it('restore without --yes says what it would do, writes nothing and exits 2', async () => {
    const target = path.join(root, 'not-yet');
    const run = await expectRun(['restore', NAME], env({ CLOUD_SYNC_BACKUP_DIR: target, CLOUD_SYNC_STATE_DIR: path.join(root, 'not-yet-state') }), 2);
    expect(run.stdout).toMatch(new RegExp(`^would download ${NAME}: 3 files, 9\\.\\d MiB, complete`, 'm'));
    expect(run.stdout).toContain('left there for you to apply (MEMORY_SERVICE_URL is not set)');
    expect(run.stderr).toMatch(/nothing was written; repeat with --yes/);
    expect(existsSync(target)).toBe(false);
    expect(existsSync(path.join(root, 'not-yet-state'))).toBe(false);

    const latest = await expectRun(['download'], env({ CLOUD_SYNC_BACKUP_DIR: target }), 2);
    expect(latest.stdout).toMatch(new RegExp(`^would download ${NAME} \\(the latest remote snapshot by time\\)`, 'm'));
    expect(existsSync(target)).toBe(false);
  });

  it('restore into an empty backup directory gives byte-identical files; again, nothing is written', async () => {
    const target = path.join(root, 'new-machine');
    await mkdir(target);
    const run = await expectRun(['restore', NAME, '--yes'], env({ CLOUD_SYNC_BACKUP_DIR: target }), 0);
    expect(run.stdout).toMatch(new RegExp(`^downloaded ${NAME} into .*: 3 files, 9\\.\\d MiB; every file matches the SHA-256 in the manifest$`, 'm'));
    expect(await readdir(target)).toEqual([NAME]);
    for (const file of backup.files) expect((await readFile(path.join(target, NAME, file.name))).equals(file.bytes), file.name).toBe(true);

    const before = await fingerprint(target);
    const again = await expectRun(['download', NAME, '--yes'], env({ CLOUD_SYNC_BACKUP_DIR: target }), 0);
    expect(again.stdout).toMatch(/already in .* with the same content; nothing was written/);
    expect(await fingerprint(target)).toEqual(before);
  });

  it('different content under the same name is a conflict both ways: exit 5, nothing overwritten', async () => {
    const other = path.join(root, 'other-machine');
    await mkdir(other);
    await writeBackup(other, { prefix: 'auto', time: new Date(Date.UTC(2026, 10, 25, 2)), files: memoryFileSet({ memories: 7 }) });
    const remoteBefore = await getRemote(`${PREFIX}${NAME}/metadata.json`);

    const upload = await expectRun(['upload'], env({ CLOUD_SYNC_BACKUP_DIR: other }), 5);
    expect(upload.stdout).toMatch(new RegExp(`^CONFLICT +${NAME}: the bucket holds different content under this name; nothing was overwritten$`, 'm'));
    expect(upload.stdout).toMatch(/differing files: .*metadata\.json/);
    expect((await getRemote(`${PREFIX}${NAME}/metadata.json`)).equals(remoteBefore)).toBe(true);

    const localBefore = await fingerprint(other);
    const restore = await expectRun(['restore', NAME, '--yes'], env({ CLOUD_SYNC_BACKUP_DIR: other }), 5);
    expect(restore.stderr).toMatch(new RegExp(`local snapshot ${NAME} differs from the remote one; nothing was overwritten`));
    expect(restore.stderr).toMatch(/hint: move the local snapshot aside first/);
    expect(await fingerprint(other)).toEqual(localBefore);
  });

  it('verify fails naming the file when a remote object is corrupted, and exits 6', async () => {
    const key = `${PREFIX}${NAME}/metadata.json`;
    const original = await getRemote(key);
    const corrupted = Buffer.from(original);
    corrupted[10] = (corrupted[10] ?? 0) ^ 0x01;
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: corrupted }));

    const run = await expectRun(['verify'], env(), 6);
    expect(run.stdout).toMatch(new RegExp(`^FAILED +${NAME} +1 of 3 files failed$`, 'm'));
    expect(run.stdout).toMatch(new RegExp(`^ +metadata\\.json: SHA-256 ${sha256(corrupted)} does not match the manifest's ${sha256(original)}$`, 'm'));
    expect(run.stdout).toMatch(/0 ok, 0 unverified, 1 failed/);

    const json = await expectRun(['verify', NAME, '--json'], env(), 6);
    expect(JSON.parse(json.stdout)).toMatchObject({ snapshots: [{ status: 'failed', failures: [{ path: 'metadata.json' }] }], summary: { failed: 1 } });
  });

  it('bad configuration exits 2 naming the variable, as the agent does', async () => {
    const run = await expectRun(['status'], env({ CLOUD_SYNC_SETTLE_MS: 'soon' }), 2);
    expect(run.stderr).toMatch(/^memsync: invalid configuration \(1 problem\):\n {2}CLOUD_SYNC_SETTLE_MS="soon": expected a whole number of milliseconds between 100 and 3600000\n/m);
    expect(run.stdout).toBe('');
    const disabled = await expectRun(['snapshots'], env({ CLOUD_SYNC_ENABLED: undefined }), 2);
    expect(disabled.stderr).toMatch(/cloud sync is disabled \(CLOUD_SYNC_ENABLED is not true\)/);
  });

  it('a store that refuses the credentials exits 3; one that does not answer exits 4', async () => {
    const refused = await expectRun(['snapshots'], env({ CLOUD_SYNC_SECRET_KEY: 'wrong-secret-key' }), 3);
    // (The AWS SDK may print its own Node version notice on stderr first.)
    expect(refused.stderr).toMatch(/^memsync: REFUSED: list memories\/: .*\n {2}store: .*\n {2}hint: check CLOUD_SYNC_ACCESS_KEY/m);
    const down = await expectRun(['status', '--json'], env({ CLOUD_SYNC_ENDPOINT: 'http://127.0.0.1:9' }), 4);
    expect(JSON.parse(down.stdout)).toMatchObject({ remote: { reachable: false }, inSync: null, local: { count: 1 } });
  });

  it('unknown commands and flags exit 2 with usage; --help exits 0', async () => {
    const unknown = await expectRun(['frobnicate'], env(), 2);
    expect(unknown.stderr).toMatch(/^memsync: unknown command "frobnicate"\n\nUsage: memsync \[command\]/m);
    const flag = await expectRun(['verify', '--fast'], env(), 2);
    expect(flag.stderr).toMatch(/^memsync: verify: unknown option --fast\n\nUsage: memsync verify/m);
    const help = await expectRun(['upload', '--help'], {}, 0);
    expect(help.stdout).toMatch(/^Usage: memsync upload \[NAME\]/);
  });
});
