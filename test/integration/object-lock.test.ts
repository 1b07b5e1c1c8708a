// Object Lock and least privilege against the real server: every object of a snapshot is written
// locked, the server refuses memsync's own deletes, retention waits for the locks, a bucket
// without Object Lock is refused at start, and credentials that may not delete still back up.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  CreateBucketCommand,
  DeleteBucketPolicyCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  PutBucketPolicyCommand,
  PutObjectCommand,
  PutObjectLockConfigurationCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMemsync, type Memsync } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { isAppError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { listRemoteIndex } from '../../src/remote/remote-index.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import { RetentionRunner } from '../../src/retention/apply.js';
import { PREFIX, useEmbeddedMemsync, waitFor } from '../helpers/embedded-memsync.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { s3ClientFor } from '../helpers/s3-fixture.js';
import { s3Env, testServer } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';

const DAY_MS = 86_400_000;
const MIB = 1024 * 1024;
const MANIFEST = '.memsync-manifest.json';
const CLAIM = '.memsync-claim';
const OLD = 'auto_20250101_000000';
const NEW = 'auto_20250102_000000';
const NEVER_SOON = '0 0 1 1 *';
/** Above the 5 MiB multipart threshold set below and a part: uploaded in parts, with a name claim. */
const LARGE = randomBytes(18 * MIB);

const serverKind = (): string => testServer().kind;
const lockUnsupported = (): boolean => serverKind() === 's3rver';

async function writeSnapshot(backupDir: string, name: string): Promise<void> {
  const dir = path.join(backupDir, name);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'metadata.json'), `{"name":"${name}"}`);
  await writeFile(path.join(dir, 'vectors.bin'), LARGE);
}

async function keysOf(client: S3Client, bucket: string): Promise<{ key: string; versionId: string }[]> {
  const answer = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: PREFIX }));
  return (answer.Versions ?? []).map((v) => ({ key: (v.Key ?? '').slice(PREFIX.length), versionId: v.VersionId ?? '' }));
}

/** Delete markers on a snapshot's own objects (removed claims and probe objects leave theirs). */
async function deleteMarkersOf(client: S3Client, bucket: string, name: string): Promise<string[]> {
  const markers = (await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: `${PREFIX}${name}/` }))).DeleteMarkers ?? [];
  return markers.map((m) => m.Key ?? '').filter((key) => !key.endsWith(`/${CLAIM}`));
}

/** memsync built against `bucket`, uploads triggered by hand, until the manifest of `name` is there. */
async function backUp(memsync: Memsync, client: S3Client, bucket: string, name: string): Promise<void> {
  await memsync.operations?.manualUpload();
  await waitFor(`the manifest of ${name}`, async () => ((await keysOf(client, bucket)).some((k) => k.key === `${name}/${MANIFEST}`) ? true : undefined), 60_000);
}

describe.skipIf(lockUnsupported())('Object Lock', () => {
  let client: S3Client;
  let bucket: string;
  let backupDir: string;
  let env: Record<string, string>;
  const started: Memsync[] = [];

  beforeAll(async () => {
    const server = testServer();
    client = s3ClientFor(server);
    // Compliance-locked objects outlive the test: the bucket stays on the throw-away test server.
    bucket = `memsync-lock-${randomBytes(4).toString('hex')}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
    const root = await tempDir('memsync-object-lock');
    backupDir = path.join(root, 'backups');
    await mkdir(backupDir);
    env = {
      ...s3Env(server, bucket),
      CLOUD_SYNC_PREFIX: PREFIX,
      CLOUD_SYNC_BACKUP_DIR: backupDir,
      CLOUD_SYNC_STATE_DIR: path.join(root, 'state'),
      CLOUD_SYNC_SETTLE_MS: '200',
      CLOUD_SYNC_SCHEDULE: NEVER_SOON,
      CLOUD_SYNC_MULTIPART_THRESHOLD_MB: '5',
      CLOUD_SYNC_OBJECT_LOCK_MODE: 'compliance',
      CLOUD_SYNC_OBJECT_LOCK_DAYS: '1',
    };
  });
  afterAll(async () => {
    for (const memsync of started) await memsync.stop();
    client.destroy();
  });

  it('writes every object of a snapshot locked, which memsync itself cannot delete, and retention waits for the locks', async () => {
    const memsync = await buildMemsync(loadConfig(env), silentLogger);
    started.push(memsync);
    await memsync.start({ listen: false });
    const before = Date.now();
    await writeSnapshot(backupDir, OLD);
    await backUp(memsync, client, bucket, OLD);
    // The second snapshot's large file is the same: a server-side copy (CopyObject) this time.
    await writeSnapshot(backupDir, NEW);
    await backUp(memsync, client, bucket, NEW);

    const versions = await keysOf(client, bucket);
    const objects = versions.filter((v) => !v.key.startsWith('.'));
    expect(objects.map((v) => v.key)).toEqual(expect.arrayContaining([`${OLD}/${MANIFEST}`, `${OLD}/vectors.bin`, `${OLD}/metadata.json`, `${NEW}/vectors.bin`, `${NEW}/${MANIFEST}`]));
    // Claims are never locked, and a released one is being removed for good meanwhile.
    for (const { key, versionId } of objects.filter((v) => !v.key.endsWith(`/${CLAIM}`))) {
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${PREFIX}${key}`, VersionId: versionId }));
      expect(head.ObjectLockMode, key).toBe('COMPLIANCE');
      const until = head.ObjectLockRetainUntilDate?.getTime() ?? 0;
      expect(until, key).toBeGreaterThan(before + DAY_MS - 60_000);
      expect(until, key).toBeLessThan(Date.now() + DAY_MS + 60_000);
    }

    // memsync's own credentials: the server refuses to delete a locked version.
    const manifest = versions.find((v) => v.key === `${OLD}/${MANIFEST}`);
    await expect(client.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${PREFIX}${OLD}/${MANIFEST}`, VersionId: manifest?.versionId }))).rejects.toMatchObject({ name: 'AccessDenied' });

    const config = loadConfig({ ...env, CLOUD_SYNC_RETENTION: 'last=1' });
    const store = new S3RemoteStore({ ...config.s3, partsInFlight: 2 });
    try {
      const purge = store.purge(`${OLD}/${MANIFEST}`);
      await expect(purge).rejects.toSatisfy((error: unknown) => isAppError(error, 'remote_rejected') && error.details?.code === 'ObjectLocked');

      // Retention by the lock's days: the snapshot waits, and no request touches it.
      const lines: LogLine[] = [];
      const settings = { policy: { last: 1 }, dryRun: false, objectLockDays: 1 };
      const now = Date.now();
      const waiting = new RetentionRunner(settings, { store, log: recordingLogger(lines), now: () => now });
      const report = await waiting.run(await listRemoteIndex(store, Date.now), new Map());
      expect(report.deleted).toEqual([]);
      expect(report.waitingForLocks.map((w) => w.snapshot)).toEqual([OLD]);
      expect(report.waitingForLocks[0]?.untilMs).toBeGreaterThan(now + DAY_MS - 120_000);
      expect(waiting.status().waitingForLocks).toEqual([{ snapshot: OLD, until: expect.any(String) }]);

      // A clock past the lock's days while the server's lock still holds (a lock set longer than
      // memsync thinks, or a bucket default): the refusal is a wait, not an error, and nothing is hidden.
      const later = new RetentionRunner(settings, { store, log: recordingLogger(lines), now: () => now + 2 * DAY_MS });
      const refused = await later.run(await listRemoteIndex(store, Date.now), new Map());
      expect(refused.deleted).toEqual([]);
      expect(refused.wouldDelete).toEqual([]);
      expect(later.status().lastError).toBeNull();
      expect(refused.waitingForLocks).toEqual([{ snapshot: OLD, untilMs: expect.any(Number) }]);
      expect(lines.filter((line) => line.level === 'warn' || line.level === 'error')).toEqual([]);
      expect(await deleteMarkersOf(client, bucket, OLD)).toEqual([]);
      const after = (await keysOf(client, bucket)).map((v) => v.key);
      expect(after).toContain(`${OLD}/${MANIFEST}`);
      expect(after).toContain(`${OLD}/vectors.bin`);
    } finally {
      store.close();
    }
  });

  it('locks an object an earlier attempt left unlocked before it completes the snapshot', async () => {
    const name = 'auto_20250103_000000';
    await writeSnapshot(backupDir, name);
    // What a failed attempt leaves when the server dropped the lock and locking afterwards failed:
    // the right bytes, unlocked. The next attempt finds it identical and keeps it.
    const body = Buffer.from(`{"name":"${name}"}`);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${PREFIX}${name}/metadata.json`, Body: body, ContentMD5: createHash('md5').update(body).digest('base64') }));
    expect((await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${PREFIX}${name}/metadata.json` }))).ObjectLockMode).toBeUndefined();

    const memsync = await buildMemsync(loadConfig(env), silentLogger);
    started.push(memsync);
    await memsync.start({ listen: false });
    await backUp(memsync, client, bucket, name);
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${PREFIX}${name}/metadata.json` }));
    expect(head.ObjectLockMode).toBe('COMPLIANCE');
    expect(head.ObjectLockRetainUntilDate?.getTime() ?? 0).toBeGreaterThan(Date.now() + DAY_MS - 120_000);
  });

  it('leaves no version of a released name claim behind in the versioned bucket', async () => {
    const name = 'auto_20250104_000000';
    await writeSnapshot(backupDir, name);
    const memsync = await buildMemsync(loadConfig(env), silentLogger);
    started.push(memsync);
    await memsync.start({ listen: false });
    await backUp(memsync, client, bucket, name);
    // The snapshot's large file went in parts, under a claim: released after the manifest, and gone for good.
    const claimVersions = async (): Promise<number> => {
      const claim = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: `${PREFIX}${name}/${CLAIM}` }));
      return (claim.Versions ?? []).length + (claim.DeleteMarkers ?? []).length;
    };
    await waitFor('no version or delete marker of the claim', async () => ((await claimVersions()) === 0 ? true : undefined), 20_000);
  });
});

describe.skipIf(lockUnsupported())('Object Lock at start', () => {
  const world = useEmbeddedMemsync('object-lock-start');

  it('refuses a bucket without Object Lock, naming the variable', async () => {
    const start = world.start({ CLOUD_SYNC_OBJECT_LOCK_MODE: 'governance', CLOUD_SYNC_OBJECT_LOCK_DAYS: '7' });
    await expect(start).rejects.toSatisfy((error: unknown) => isAppError(error, 'config') && error.message.includes('CLOUD_SYNC_OBJECT_LOCK_MODE') && error.message.includes(world.bucket));
  });
});

describe.skipIf(lockUnsupported())('a bucket whose default retention the operator set', () => {
  it('takes complete snapshots without memsync\'s lock variables, every object locked by the bucket', async () => {
    const server = testServer();
    const client = s3ClientFor(server);
    const bucket = `memsync-default-lock-${randomBytes(4).toString('hex')}`;
    const started: Memsync[] = [];
    try {
      await client.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
      await client.send(new PutObjectLockConfigurationCommand({ Bucket: bucket, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 1 } } } }));
      const root = await tempDir('memsync-default-lock');
      const backupDir = path.join(root, 'backups');
      await mkdir(backupDir);
      const memsync = await buildMemsync(
        loadConfig({ ...s3Env(server, bucket), CLOUD_SYNC_PREFIX: PREFIX, CLOUD_SYNC_BACKUP_DIR: backupDir, CLOUD_SYNC_STATE_DIR: path.join(root, 'state'), CLOUD_SYNC_SETTLE_MS: '200', CLOUD_SYNC_SCHEDULE: NEVER_SOON, CLOUD_SYNC_MULTIPART_THRESHOLD_MB: '5' }),
        silentLogger,
      );
      started.push(memsync);
      await memsync.start({ listen: false });
      // A small file in one PUT and a large one in parts: the bucket refuses either without a Content-MD5.
      await writeSnapshot(backupDir, OLD);
      await backUp(memsync, client, bucket, OLD);
      for (const file of ['metadata.json', 'vectors.bin', MANIFEST]) {
        const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${PREFIX}${OLD}/${file}` }));
        expect(head.ObjectLockMode, file).toBe('GOVERNANCE');
      }
      expect(memsync.agent?.status().lastError ?? null).toBeNull();
    } finally {
      for (const memsync of started) await memsync.stop();
      client.destroy();
    }
  });
});

// The test user's id is "test" on the harness's Ceph RGW (rgw-start.sh); a bucket policy's explicit deny binds the owner too.
describe.skipIf(serverKind() !== 'ceph-rgw')('credentials without s3:DeleteObject', () => {
  const world = useEmbeddedMemsync('no-delete');

  it('uploads a snapshot completely, says once which cleanup was denied and why, and keeps running', async () => {
    const denyDelete = { Effect: 'Deny', Principal: { AWS: ['arn:aws:iam:::user/test'] }, Action: ['s3:DeleteObject'], Resource: [`arn:aws:s3:::${world.bucket}/*`] };
    await world.client.send(new PutBucketPolicyCommand({ Bucket: world.bucket, Policy: JSON.stringify({ Version: '2012-10-17', Statement: [denyDelete] }) }));
    world.onCleanup(async () => void (await world.client.send(new DeleteBucketPolicyCommand({ Bucket: world.bucket }))));
    const lines: LogLine[] = [];
    const config = loadConfig({ ...s3Env(testServer(), world.bucket), CLOUD_SYNC_PREFIX: PREFIX, CLOUD_SYNC_BACKUP_DIR: world.backupDir, CLOUD_SYNC_STATE_DIR: world.stateDir, CLOUD_SYNC_SETTLE_MS: '200', CLOUD_SYNC_SCHEDULE: NEVER_SOON, CLOUD_SYNC_MULTIPART_THRESHOLD_MB: '5' });
    const memsync = await buildMemsync(config, recordingLogger(lines));
    try {
      await memsync.start({ listen: false });
      await writeSnapshot(world.backupDir, OLD);
      await memsync.operations?.manualUpload();
      await waitFor('the upload to succeed', async () => {
        const status = (await memsync.server.inject({ url: '/sync/status' })).json() as { lastSuccess?: { snapshot: string } };
        return status.lastSuccess?.snapshot === OLD ? true : undefined;
      }, 60_000);
      const keys = await world.keys();
      expect(keys).toEqual(expect.arrayContaining([`${OLD}/${MANIFEST}`, `${OLD}/vectors.bin`, `${OLD}/metadata.json`]));
      // The claim could not be removed: it stays and lapses after its lease.
      expect(keys).toContain(`${OLD}/${CLAIM}`);
      const denied = lines.filter((line) => line.level === 'warn' && JSON.stringify(line.fields).includes(`s3:DeleteObject denied on ${PREFIX}${OLD}/${CLAIM}`));
      expect(denied).toHaveLength(1);
      expect(denied[0]?.message).toMatch(/claim/);
      expect(lines.filter((line) => line.level === 'error')).toEqual([]);
      // Still running: the next upload goes through too.
      await writeSnapshot(world.backupDir, NEW);
      await memsync.operations?.manualUpload();
      await waitFor('the second upload', async () => ((await world.keys()).includes(`${NEW}/${MANIFEST}`) ? true : undefined), 60_000);
    } finally {
      await memsync.stop();
    }
  });
});
