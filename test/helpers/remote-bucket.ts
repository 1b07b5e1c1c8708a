// What a test reads of a bucket memsync writes to: listings, objects, open multipart uploads,
// and whether a snapshot is there complete and byte-identical (as an assertion, or as a verdict
// that reliability scenarios count instead of failing on the first one).
import { isBookkeepingName } from '../../src/snapshot/reserved-names.js';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { expect } from 'vitest';
import { buildManifest, CLAIM_FILE_NAME, MANIFEST_FILE_NAME, type Manifest } from '../../src/snapshot/manifest.js';
import type { BackupFile } from './memory-service-sim.js';

export interface RemoteListing {
  key: string;
  etag: string;
  size: number;
  lastModifiedMs: number;
}

/**
 * verified: complete and byte-identical; missing: no object at all; incomplete: objects but no
 * manifest (not claimed complete); partial-as-complete: a manifest whose files are not all there
 * with their sizes; corrupted: complete by its manifest, but some bytes are not the expected ones.
 */
export type SnapshotVerdict = 'verified' | 'missing' | 'incomplete' | 'partial-as-complete' | 'corrupted';

/** What a snapshot should hold: its files, or (to keep long runs small) just their manifest. */
export type ExpectedSnapshot = { kind: 'directory' | 'file'; files: readonly BackupFile[] } | { manifest: Manifest };

export interface SnapshotAudit {
  name: string;
  verdict: SnapshotVerdict;
  problems: string[];
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The manifest memsync writes for these files (what a byte-identical remote copy carries). */
export function manifestFor(name: string, kind: 'directory' | 'file', files: readonly BackupFile[]): Manifest {
  return buildManifest(
    name,
    kind,
    files.map((file) => ({ path: file.name, size: file.bytes.length, sha256: sha256(file.bytes) })),
  );
}

/** Polls `condition` until it holds; throws with `what` after `timeoutMs`. */
export async function eventually(condition: () => Promise<boolean>, timeoutMs: number, what: string, intervalMs = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() >= deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(intervalMs);
  }
}

/** One bucket under one key prefix (memsync's CLOUD_SYNC_PREFIX), read with the test's own client. */
export class RemoteBucket {
  constructor(
    readonly client: S3Client,
    readonly bucket: string,
    readonly prefix: string,
  ) {}

  async list(keyPrefix = ''): Promise<RemoteListing[]> {
    const objects: RemoteListing[] = [];
    let token: string | undefined;
    for (let page = 0; page < 100; page += 1) {
      const answer = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: keyPrefix, ContinuationToken: token }));
      for (const item of answer.Contents ?? []) {
        // The claim memsync puts on a name before a multipart upload is bookkeeping, not snapshot content.
        if ((item.Key ?? '').endsWith(`/${CLAIM_FILE_NAME}`)) continue;
        objects.push({ key: item.Key ?? '', etag: (item.ETag ?? '').replace(/"/g, ''), size: item.Size ?? 0, lastModifiedMs: item.LastModified?.getTime() ?? 0 });
      }
      token = answer.IsTruncated === true ? answer.NextContinuationToken : undefined;
      if (token === undefined) return objects;
    }
    throw new Error(`listing ${this.bucket}/${keyPrefix} did not end within 100 pages`);
  }

  async get(key: string): Promise<Buffer> {
    const answer = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    return Buffer.from((await answer.Body?.transformToByteArray()) ?? []);
  }

  async put(key: string, bytes: Buffer): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bytes }));
  }

  async openMultipartUploads(): Promise<{ key: string; uploadId: string; initiatedMs: number }[]> {
    const answer = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket }));
    return (answer.Uploads ?? []).map((u) => ({ key: u.Key ?? '', uploadId: u.UploadId ?? '', initiatedMs: u.Initiated?.getTime() ?? 0 }));
  }

  /** Names of the snapshots under the prefix (complete or not). */
  async snapshotNames(): Promise<string[]> {
    const names = new Set<string>();
    for (const object of await this.list(this.prefix)) names.add(object.key.slice(this.prefix.length).split('/')[0] ?? '');
    return [...names].filter((name) => name !== '').sort();
  }

  /**
   * The snapshot is complete remotely and byte-identical: exactly its files plus the manifest
   * under `{prefix}{name}/` (and memsync's signature bundle when it has large files), every file
   * equal to `files`, the manifest's sizes and SHA-256s right.
   */
  async expectSnapshot(name: string, kind: 'directory' | 'file', files: readonly BackupFile[]): Promise<void> {
    const base = `${this.prefix}${name}/`;
    const listed = await this.list(base);
    const expectedKeys = [...files.map((f) => `${base}${f.name}`), `${base}${MANIFEST_FILE_NAME}`].sort();
    expect(listed.map((o) => o.key).filter((key) => !isBookkeepingName(key.slice(base.length))).sort(), `keys under ${base}`).toEqual(expectedKeys);
    for (const file of files) {
      const remote = await this.get(`${base}${file.name}`);
      expect(remote.length, `${name}/${file.name} size`).toBe(file.bytes.length);
      expect(sha256(remote), `${name}/${file.name} content`).toBe(sha256(file.bytes));
    }
    const manifestBytes = await this.get(`${base}${MANIFEST_FILE_NAME}`);
    const manifest = JSON.parse(manifestBytes.toString('utf8')) as Manifest;
    expect(manifest).toEqual(manifestFor(name, kind, files));
    expect(manifest.files.map((f) => f.path)).toEqual([...files.map((f) => f.name)].sort());
    // Written last: no file object is newer than the manifest (LastModified has 1 s resolution).
    const manifestTime = listed.find((o) => o.key.endsWith(MANIFEST_FILE_NAME))?.lastModifiedMs ?? 0;
    for (const object of listed) expect(object.lastModifiedMs, `${object.key} LastModified`).toBeLessThanOrEqual(manifestTime);
  }

  /**
   * The verdict on one snapshot, never throwing on what it finds. With `expected`, complete
   * also means byte-identical to those files; without, consistent with its own manifest.
   */
  async audit(name: string, expected?: ExpectedSnapshot, options: { readContent?: boolean } = {}): Promise<SnapshotAudit> {
    const base = `${this.prefix}${name}/`;
    const listed = await this.list(base);
    if (listed.length === 0) return { name, verdict: 'missing', problems: [] };
    const manifestObject = listed.find((o) => o.key === `${base}${MANIFEST_FILE_NAME}`);
    if (manifestObject === undefined) return { name, verdict: 'incomplete', problems: [`${listed.length} objects, no manifest`] };
    let manifest: Manifest;
    try {
      manifest = JSON.parse((await this.get(manifestObject.key)).toString('utf8')) as Manifest;
    } catch (error) {
      return { name, verdict: 'corrupted', problems: [`manifest unreadable: ${String(error)}`] };
    }
    const objects = new Map(listed.filter((o) => o !== manifestObject && !isBookkeepingName(o.key.slice(base.length))).map((o) => [o.key.slice(base.length), o]));
    const partial: string[] = [];
    for (const file of manifest.files ?? []) {
      const object = objects.get(file.path);
      if (object === undefined) partial.push(`${file.path} listed in the manifest, not in the bucket`);
      else if (object.size !== file.size) partial.push(`${file.path}: ${object.size} bytes, manifest says ${file.size}`);
    }
    if (partial.length > 0) return { name, verdict: 'partial-as-complete', problems: partial };
    const problems: string[] = [];
    const inManifest = new Set((manifest.files ?? []).map((f) => f.path));
    for (const extra of [...objects.keys()].filter((key) => !inManifest.has(key))) problems.push(`${extra} in the bucket, not in the manifest`);
    for (const file of options.readContent === false ? [] : (manifest.files ?? [])) {
      const actual = sha256(await this.get(`${base}${file.path}`));
      if (actual !== file.sha256) problems.push(`${file.path}: SHA-256 ${actual}, manifest says ${file.sha256}`);
    }
    if (expected !== undefined) {
      const wanted = 'manifest' in expected ? expected.manifest : manifestFor(name, expected.kind, expected.files);
      if (JSON.stringify(manifest) !== JSON.stringify(wanted)) problems.push('manifest differs from the expected content');
    }
    return { name, verdict: problems.length > 0 ? 'corrupted' : 'verified', problems };
  }
}

export interface ObjectVersion {
  etag: string;
  size: number;
  lastModifiedMs: number;
}

/**
 * Every object a bucket listing ever showed, as first seen. An object listed later with another
 * ETag or size was overwritten, one with only a later modification time written again with the
 * same bytes; one no longer listed was deleted.
 */
export class ObjectLedger {
  readonly firstSeen = new Map<string, ObjectVersion>();
  readonly overwritten: string[] = [];
  /** Written again with the same ETag and size (a later modification time): the bytes did not change. */
  readonly rewritten: string[] = [];
  /** Keys deleted and later written again with other content (by whoever wrote them). */
  readonly recreated: string[] = [];
  readonly deleted = new Set<string>();

  constructor(private readonly ignore: (key: string) => boolean = () => false) {}

  observe(listing: readonly RemoteListing[]): void {
    const present = new Set<string>();
    for (const object of listing) {
      if (this.ignore(object.key)) continue;
      present.add(object.key);
      const seen = this.firstSeen.get(object.key);
      const now = { etag: object.etag, size: object.size, lastModifiedMs: object.lastModifiedMs };
      if (seen === undefined || this.deleted.has(object.key)) {
        // Deleted and written again is a new object, not an overwrite of the old one.
        if (seen !== undefined && (seen.etag !== now.etag || seen.size !== now.size)) this.recreated.push(object.key);
        this.firstSeen.set(object.key, now);
        this.deleted.delete(object.key);
        continue;
      }
      if (seen.etag !== now.etag || seen.size !== now.size) {
        this.overwritten.push(`${object.key}: ${seen.etag} (${seen.size} B) -> ${now.etag} (${now.size} B)`);
        this.firstSeen.set(object.key, now);
      } else if (seen.lastModifiedMs !== now.lastModifiedMs) {
        this.rewritten.push(`${object.key}: written again at ${new Date(now.lastModifiedMs).toISOString()} (first ${new Date(seen.lastModifiedMs).toISOString()})`);
        this.firstSeen.set(object.key, now);
      }
    }
    for (const key of this.firstSeen.keys()) if (!present.has(key)) this.deleted.add(key);
  }
}
