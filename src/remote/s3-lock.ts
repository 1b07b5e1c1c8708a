import { createHash } from 'node:crypto';
import { DeleteObjectCommand, GetBucketVersioningCommand, GetObjectLockConfigurationCommand, HeadObjectCommand, ListObjectVersionsCommand, PutObjectRetentionCommand, type S3Client } from '@aws-sdk/client-s3';
import type { BuildMiddleware, InitializeMiddleware, MetadataBearer } from '@aws-sdk/types';
import { AppError } from '../errors.js';
import { isLockedKey, retainUntil, type ObjectLockSettings } from './object-lock.js';
import { errorCodeOf, httpStatusOf, isNotFound, translateS3BucketError, translateS3Error } from './s3-errors.js';

/**
 * Object Lock at the S3 edge: the lock parameters on every request that creates an object, the
 * Content-MD5 that locked buckets require, the start-up check of the bucket, and deletion of
 * every version of a key (a bucket with Object Lock keeps versions).
 */

/** Requests that create an object; lib-storage's uploads go through the same two. */
const CREATING_COMMANDS = new Set(['PutObjectCommand', 'CreateMultipartUploadCommand', 'CopyObjectCommand']);
/** Where some servers (Ceph RGW 16) drop the lock given with the request: the object is checked once written. */
const UNRELIABLY_LOCKED = new Set(['CopyObjectCommand', 'CompleteMultipartUploadCommand']);
/** Requests with a body that S3 requires Content-MD5 (or a checksum) on in a bucket with Object Lock. */
const BODY_COMMANDS = new Set(['PutObjectCommand', 'UploadPartCommand']);

interface LockableInput {
  Key?: string;
  ObjectLockMode?: string;
  ObjectLockRetainUntilDate?: Date;
}

/**
 * Adds ObjectLockMode and ObjectLockRetainUntilDate to each request that creates a snapshot's
 * object (isLockedKey), whichever path sends it: single PUTs, multipart uploads of files and
 * streams, copies and compositions. One place, so no write path can be missed. The date is taken
 * when the request is built, so a retry gets a fresh one.
 */
export function objectLockParameters(client: S3Client, settings: ObjectLockSettings, prefix: string, now: () => number = Date.now): InitializeMiddleware<object, MetadataBearer> {
  return (next, context) => async (args) => {
    const input = args.input as LockableInput & { Bucket?: string };
    const key = input.Key ?? '';
    const command = context.commandName ?? '';
    if (!isLockedKey(key.startsWith(prefix) ? key.slice(prefix.length) : key)) return next(args);
    if (CREATING_COMMANDS.has(command)) {
      input.ObjectLockMode = settings.mode;
      input.ObjectLockRetainUntilDate = retainUntil(settings, now());
    }
    const result = await next(args);
    if (UNRELIABLY_LOCKED.has(command)) await lockIfUnlocked(client, input.Bucket ?? '', key, (result.output as { VersionId?: string }).VersionId, settings, retainUntil(settings, now()));
    return result;
  };
}

/**
 * Some servers (Ceph RGW 16) ignore the lock headers on CopyObject and CreateMultipartUpload and
 * store the object unlocked: an object shown without a lock is locked afterwards
 * (PutObjectRetention), or the write fails. `versionId` undefined: the current version.
 * A refusal to lock is not retryable: it fails the snapshot, which is then never completed
 * over an object that an attacker with memsync's credentials could delete.
 */
export async function lockIfUnlocked(client: S3Client, bucket: string, key: string, versionId: string | undefined, settings: ObjectLockSettings, until: Date): Promise<void> {
  const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
  if (head.ObjectLockMode !== undefined) return;
  try {
    await client.send(new PutObjectRetentionCommand({ Bucket: bucket, Key: key, VersionId: versionId, Retention: { Mode: settings.mode, RetainUntilDate: until } }));
  } catch (error) {
    if (httpStatusOf(error) !== 403) throw translateS3Error(error, `lock ${key}`);
    throw new AppError('remote_rejected', `s3:PutObjectRetention denied on ${key}: needed to lock an object the server stored without its lock`, { cause: error, details: { code: 'AccessDenied', permission: 's3:PutObjectRetention' } });
  }
}

/**
 * Content-MD5 on every PUT and part whose body is in memory and carries none yet. S3 refuses
 * writes into a bucket with Object Lock (a default retention included) without it, and the SDK
 * adds no checksum of its own here (requestChecksumCalculation WHEN_REQUIRED). memsync sends
 * every single PUT and every part from a buffer (see S3RemoteStore.putSingle), so every write has one.
 */
export const contentMd5OnEveryWrite: BuildMiddleware<object, MetadataBearer> = (next, context) => async (args) => {
  const request = args.request as { headers?: Record<string, string>; body?: unknown };
  if (BODY_COMMANDS.has(context.commandName ?? '') && request.headers !== undefined && !hasHeader(request.headers, 'content-md5')) {
    const body = request.body;
    if (body instanceof Uint8Array || typeof body === 'string') request.headers['content-md5'] = createHash('md5').update(body).digest('base64');
  }
  return next(args);
};

function hasHeader(headers: Record<string, string>, name: string): boolean {
  return Object.keys(headers).some((header) => header.toLowerCase() === name);
}

/**
 * Refuses to start when Object Lock is configured and the bucket has none: every write would
 * be refused (or, on a lenient server, stored unlocked while memsync claims otherwise).
 */
export async function checkObjectLockEnabled(client: S3Client, bucket: string, settings: ObjectLockSettings): Promise<void> {
  const variable = `CLOUD_SYNC_OBJECT_LOCK_MODE=${settings.mode.toLowerCase()}`;
  let enabled: string | undefined;
  try {
    enabled = (await client.send(new GetObjectLockConfigurationCommand({ Bucket: bucket }))).ObjectLockConfiguration?.ObjectLockEnabled;
  } catch (error) {
    if (errorCodeOf(error) !== 'ObjectLockConfigurationNotFoundError') {
      if (httpStatusOf(error) === 403) {
        throw new AppError('remote_rejected', `s3:GetBucketObjectLockConfiguration denied on bucket ${bucket}: needed to check Object Lock (${variable})`, {
          cause: error,
          hint: 'allow s3:GetBucketObjectLockConfiguration on the bucket in memsync\'s policy',
        });
      }
      throw translateS3BucketError(error, `read the Object Lock configuration of bucket ${bucket}`);
    }
  }
  if (enabled !== 'Enabled') {
    throw new AppError('config', `${variable}: bucket ${bucket} does not have Object Lock enabled, so its objects cannot be locked`, {
      hint: 'use a bucket created with Object Lock enabled (it cannot be switched on for most existing buckets), or unset CLOUD_SYNC_OBJECT_LOCK_MODE and CLOUD_SYNC_OBJECT_LOCK_DAYS',
    });
  }
}

/** Versioning on or suspended: deleted and overwritten objects' data stays as versions. Object Lock implies it. */
export async function bucketKeepsVersions(client: S3Client, bucket: string): Promise<boolean> {
  try {
    const status = (await client.send(new GetBucketVersioningCommand({ Bucket: bucket }))).Status;
    return status === 'Enabled' || status === 'Suspended';
  } catch (error) {
    if (httpStatusOf(error) === 403) {
      throw new AppError('remote_rejected', `s3:GetBucketVersioning denied on bucket ${bucket}: needed by retention to delete objects for good in a versioned bucket`, {
        cause: error,
        details: { code: 'AccessDenied', permission: 's3:GetBucketVersioning' },
      });
    }
    throw translateS3BucketError(error, `read the versioning of bucket ${bucket}`);
  }
}

/** How a purge went: every version removed, or only the current one (versions could not be listed). */
export type PurgeOutcome = 'every-version' | 'current-only';

/**
 * Deletes `fullKey` for good. In a versioned bucket (every bucket with Object Lock is one) a
 * DELETE without a version only adds a delete marker: the data stays, hidden, and billed. So
 * each version and delete marker is deleted by its id. A version under an unexpired lock makes
 * it fail with details.code 'ObjectLocked' and details.lockedUntilMs when the server says.
 * Credentials that may not list versions get a plain DELETE ('current-only').
 */
export async function purgeS3Key(client: S3Client, bucket: string, fullKey: string): Promise<PurgeOutcome> {
  let versions: string[];
  try {
    versions = await versionIdsOf(client, bucket, fullKey);
  } catch (error) {
    if (httpStatusOf(error) !== 403) throw translateS3Error(error, `list versions of ${fullKey}`);
    await deleteVersion(client, bucket, fullKey, undefined);
    return 'current-only';
  }
  for (const versionId of versions) await deleteVersion(client, bucket, fullKey, versionId);
  return 'every-version';
}

async function versionIdsOf(client: S3Client, bucket: string, fullKey: string): Promise<string[]> {
  const ids: string[] = [];
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  for (let page = 0; page < 1000; page += 1) {
    const answer = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: fullKey, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker }));
    for (const entry of [...(answer.Versions ?? []), ...(answer.DeleteMarkers ?? [])]) {
      // The prefix also matches longer keys; an unversioned bucket names its one version "null".
      if (entry.Key === fullKey && entry.VersionId !== undefined) ids.push(entry.VersionId);
    }
    if (answer.IsTruncated !== true) break;
    keyMarker = answer.NextKeyMarker;
    versionIdMarker = answer.NextVersionIdMarker;
  }
  return ids;
}

async function deleteVersion(client: S3Client, bucket: string, fullKey: string, versionId: string | undefined): Promise<void> {
  try {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: fullKey, VersionId: versionId }));
  } catch (error) {
    if (isNotFound(error)) return;
    if (httpStatusOf(error) !== 403) throw translateS3Error(error, `delete ${fullKey}`);
    const lockedUntilMs = versionId === undefined ? undefined : await lockedUntil(client, bucket, fullKey, versionId);
    if (lockedUntilMs !== undefined) {
      const until = lockedUntilMs === null ? 'under a legal hold' : `under Object Lock until ${new Date(lockedUntilMs).toISOString()}`;
      throw new AppError('remote_rejected', `delete ${fullKey}: ${until}`, { cause: error, retryable: false, details: { code: 'ObjectLocked', lockedUntilMs } });
    }
    const permission = versionId === undefined ? 's3:DeleteObject' : 's3:DeleteObjectVersion';
    throw new AppError('remote_rejected', `${permission} denied on ${fullKey}`, {
      cause: error,
      hint: `allow ${permission} on the objects under the prefix in memsync's policy (needed by CLOUD_SYNC_RETENTION)`,
      details: { code: 'AccessDenied', permission },
    });
  }
}

/** The version's retain-until when it still holds, null for a legal hold (no date), else undefined. */
async function lockedUntil(client: S3Client, bucket: string, fullKey: string, versionId: string): Promise<number | null | undefined> {
  try {
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: fullKey, VersionId: versionId }));
    if (head.ObjectLockLegalHoldStatus === 'ON') return null;
    const until = head.ObjectLockRetainUntilDate?.getTime();
    return until !== undefined && until > Date.now() ? until : undefined;
  } catch {
    return undefined;
  }
}
