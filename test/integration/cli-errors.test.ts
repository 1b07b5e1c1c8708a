// What an operator reads when the command line cannot do its job: real processes against the
// real S3 server of the test run, with wrong credentials, a missing bucket, an endpoint nobody
// listens on, and a backup directory that is a file. Every message says what happened, to
// what, and what to do, says each thing once, and comes with the documented exit code.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestBucket, emptyAndDeleteBucket } from '../helpers/s3-fixture.js';
import { s3Env, testServer } from '../helpers/s3.js';
import { killRunningCommands, runMemsync, type CommandRun } from '../helpers/memsync-command.js';

const server = testServer();
const NAME = 'auto_20261125_020000';
/** Nothing listens there: connections are refused at once. */
const DEAD_ENDPOINT = 'http://127.0.0.1:9';


/** Runs, expects the exit code, and checks what every message must be; the output is shown on failure. */
async function expectRun(args: string[], env: Record<string, string | undefined>, code: number): Promise<CommandRun> {
  const run = await runMemsync(args, env);
  const shown = `memsync ${args.join(' ')} -> ${run.code}\n--- stdout:\n${run.stdout}\n--- stderr:\n${run.stderr}`;
  expect(run.code, shown).toBe(code);
  const text = `${run.stdout}\n${run.stderr}`;
  // A code is never its own message ("UnknownError: UnknownError", "ENOTDIR: ENOTDIR").
  expect(text, shown).not.toMatch(/\b([A-Z][A-Za-z]+): \1\b/);
  expect(text, shown).not.toContain('UnknownError');
  // A hint is a sentence, not the tail of one.
  expect(text, shown).not.toMatch(/hint(?:=|: )[(\s]/);
  return run;
}

let bucket: string;
let root: string;
let backupDir: string;
let stateDir: string;

function env(overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return { ...s3Env(server, bucket), CLOUD_SYNC_BACKUP_DIR: backupDir, CLOUD_SYNC_STATE_DIR: stateDir, CLOUD_SYNC_SETTLE_MS: '300', ...overrides };
}

beforeAll(async () => {
  bucket = await createTestBucket(server, 'cli-errors');
  root = await mkdtemp(path.join(os.tmpdir(), 'memsync-cli-errors-'));
  backupDir = path.join(root, 'backups');
  stateDir = path.join(root, 'state');
});

afterEach(() => {
  killRunningCommands();
});

afterAll(async () => {
  if (bucket !== undefined) await emptyAndDeleteBucket(server, bucket).catch((error: unknown) => console.error(`[cli-errors] cannot delete bucket ${bucket}: ${String(error)}`));
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

describe(`memsync command line errors (${server.kind})`, () => {
  it('wrong credentials: every command says the store REFUSED them, names the store and what to check, and exits 3', async () => {
    const wrong = env({ CLOUD_SYNC_SECRET_KEY: 'not-the-secret-key' });
    for (const args of [['snapshots'], ['upload'], ['download', NAME, '--yes'], ['verify']]) {
      const run = await expectRun(args, wrong, 3);
      expect(run.stderr, args.join(' ')).toMatch(/^memsync: REFUSED: .*\(HTTP 403\)$/m);
      expect(run.stderr, args.join(' ')).toContain(`store: s3://${bucket}/memories/ at ${server.endpoint}`);
      expect(run.stderr, args.join(' ')).toMatch(/^ {2}hint: check CLOUD_SYNC_ACCESS_KEY \/ CLOUD_SYNC_SECRET_KEY/m);
      expect(run.stderr, args.join(' ')).not.toMatch(/unavailable|UNREACHABLE|unreachable/);
    }
    const status = await expectRun(['status'], wrong, 3);
    expect(status.stdout).toMatch(new RegExp(`^store +s3://${bucket}/memories/ at ${server.endpoint}: REFUSED: `, 'm'));
    expect(status.stdout).toMatch(/^hint +check CLOUD_SYNC_ACCESS_KEY/m);
    expect(status.stdout).not.toMatch(/UNREACHABLE|unavailable/);
    const json = await expectRun(['status', '--json'], wrong, 3);
    expect(JSON.parse(json.stdout)).toMatchObject({ remote: { reachable: false, state: 'refused', hint: expect.stringMatching(/^check CLOUD_SYNC_ACCESS_KEY/) } });
  });

  it('a missing bucket: REFUSED, naming the bucket, with what to do; exit 3', async () => {
    const missing = `${bucket}-missing`;
    const run = await expectRun(['snapshots'], env({ CLOUD_SYNC_BUCKET: missing }), 3);
    expect(run.stderr).toMatch(/^memsync: REFUSED: .*NoSuchBucket/m);
    expect(run.stderr).toContain(`store: s3://${missing}/memories/`);
    expect(run.stderr).toMatch(/^ {2}hint: create the bucket or fix CLOUD_SYNC_BUCKET/m);
    const status = await expectRun(['status'], env({ CLOUD_SYNC_BUCKET: missing }), 3);
    expect(status.stdout).toMatch(/^store +.*: REFUSED: .*does not exist/m);
  });

  it('an endpoint nobody listens on: UNREACHABLE, the cause said once, what to check; exit 4', async () => {
    const run = await expectRun(['snapshots'], env({ CLOUD_SYNC_ENDPOINT: DEAD_ENDPOINT }), 4);
    expect(run.stderr).toMatch(/^memsync: UNREACHABLE: /m);
    expect(run.stderr.split('connect ECONNREFUSED 127.0.0.1:9').length - 1, run.stderr).toBe(1);
    expect(run.stderr).toContain(`store: s3://${bucket}/memories/ at ${DEAD_ENDPOINT}`);
    expect(run.stderr).toMatch(/^ {2}hint: check CLOUD_SYNC_ENDPOINT/m);
    const status = await expectRun(['status', '--json'], env({ CLOUD_SYNC_ENDPOINT: DEAD_ENDPOINT }), 4);
    expect(JSON.parse(status.stdout)).toMatchObject({ remote: { reachable: false, state: 'unreachable' } });
  });

  it('a backup directory that is a file: named, with what to do, before anything is read or written; exit 2', async () => {
    const file = path.join(root, 'not-a-directory');
    await writeFile(file, 'a file where the backups should be\n');
    for (const args of [['status'], ['upload'], ['download', NAME, '--yes'], ['restore', NAME]]) {
      const run = await expectRun(args, env({ CLOUD_SYNC_BACKUP_DIR: file }), 2);
      expect(run.stderr, args.join(' ')).toContain(`memsync: CLOUD_SYNC_BACKUP_DIR=${file} is a file, not a directory`);
      expect(run.stderr, args.join(' ')).toMatch(/^ {2}hint: point CLOUD_SYNC_BACKUP_DIR at a directory/m);
      expect(run.stderr, args.join(' ')).not.toMatch(/^memsync: E[A-Z]+:/m);
    }
    // A path under that file: the same message, not a bare ENOTDIR.
    const under = path.join(file, 'backups');
    const run = await expectRun(['download', NAME, '--yes'], env({ CLOUD_SYNC_BACKUP_DIR: under }), 2);
    expect(run.stderr).toContain(`memsync: CLOUD_SYNC_BACKUP_DIR=${under} cannot be a directory: ${file} is a file`);
  });

  it('the agent refused at start logs a hint that is a sentence, and says REFUSED on stderr; exit 3', async () => {
    const run = await expectRun(['serve'], env({ CLOUD_SYNC_SECRET_KEY: 'not-the-secret-key', LOG_FORMAT: 'json', CLOUD_SYNC_PORT: '0' }), 3);
    const lines = run.stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>);
    const cannotStart = lines.find((line) => line.message === 'cannot start');
    expect(cannotStart, run.stdout).toBeDefined();
    expect(cannotStart?.hint).toMatch(/^check CLOUD_SYNC_ACCESS_KEY/);
    expect(run.stdout).not.toContain('remote store unavailable');
    expect(run.stderr).toMatch(new RegExp(`^memsync: REFUSED: .*${bucket}.*HTTP 403\\)?\\n {2}hint: check CLOUD_SYNC_ACCESS_KEY`, 'm'));
  });
});
