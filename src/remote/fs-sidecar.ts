import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { errnoOf, isLinkRefused, isMissing } from './fs-errors.js';
import { sidecarName, temporaryName } from './fs-layout.js';
import type { GuardedFs } from './fs-operations.js';

/**
 * An object's ETag and metadata in the directory store. A file has neither, so each object has a
 * small sidecar dot-file beside it, written by the store after the object's bytes are in place:
 * the ETag S3 would give the same write (the MD5 of the bytes, or the MD5 of the parts' MD5s for
 * a write in parts, computed while writing), so the uploader's checks mean what they mean
 * against S3. A sidecar names the file it describes (inode, size, modification time in ns):
 * after a crash between placing an object and its sidecar, or when another tool changed or
 * replaced the file, the sidecar no longer matches and the store answers from the bytes
 * themselves: their MD5, and no metadata.
 */

export interface ObjectIdentity {
  ino: string;
  size: number;
  mtimeNs: string;
}

export interface ObjectRecord {
  /** Unquoted, lower case. */
  etag: string;
  /** Lower-case keys. */
  metadata: Record<string, string>;
}

export interface FsObjectInfo extends ObjectRecord {
  size: number;
  lastModifiedMs: number;
  /** Which file this describes, to tell later whether it is still the same one. */
  identity: ObjectIdentity;
}

const SIDECAR_FORMAT = 'memsync-fs-object';
/** Far above what memsync's metadata takes; a bigger file is not a sidecar memsync wrote. */
const MAX_SIDECAR_BYTES = 64 * 1024;
const HASH_READ_BYTES = 1024 * 1024;
/** An object replaced while it is described is described again, this often. */
const DESCRIBE_ATTEMPTS = 3;

const sidecarSchema = z.object({
  format: z.literal(SIDECAR_FORMAT),
  version: z.literal(1),
  identity: z.object({ ino: z.string(), size: z.number().int().nonnegative(), mtimeNs: z.string() }),
  etag: z.string().regex(/^[0-9a-f]{32}(-\d+)?$/),
  metadata: z.record(z.string(), z.string()),
});

export function identityOf(stat: BigIntStats): ObjectIdentity {
  return { ino: stat.ino.toString(), size: Number(stat.size), mtimeNs: stat.mtimeNs.toString() };
}

export function sameIdentity(a: ObjectIdentity, b: ObjectIdentity): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs;
}

export function serializeSidecar(identity: ObjectIdentity, record: ObjectRecord): Buffer {
  return Buffer.from(JSON.stringify({ format: SIDECAR_FORMAT, version: 1, identity, etag: record.etag, metadata: record.metadata }));
}

/** The record a sidecar holds for the file with `identity`; undefined when it is absent, foreign or about another file. */
async function readSidecar(io: GuardedFs, sidecarPath: string, identity: ObjectIdentity): Promise<ObjectRecord | undefined> {
  let bytes: Buffer;
  try {
    const handle = await io.openForReading(sidecarPath);
    try {
      // Anything but a regular file (a FIFO, a device) is no sidecar of the store's.
      if (!(await handle.stat()).isFile()) return undefined;
      const buffer = Buffer.alloc(MAX_SIDECAR_BYTES + 1);
      const bytesRead = await handle.read(buffer, 0, buffer.length, 0);
      if (bytesRead > MAX_SIDECAR_BYTES) return undefined;
      bytes = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (error) {
    // ELOOP: a link where the sidecar should be is not the store's; the bytes answer instead.
    if (isMissing(error) || isLinkRefused(error)) return undefined;
    throw error;
  }
  let parsed;
  try {
    parsed = sidecarSchema.safeParse(JSON.parse(bytes.toString('utf8')));
  } catch {
    return undefined;
  }
  if (!parsed.success || !sameIdentity(parsed.data.identity, identity)) return undefined;
  return { etag: parsed.data.etag, metadata: parsed.data.metadata };
}

/**
 * What the directory store says of the file `name` in `dirPath` (a directory keyDirectory found):
 * undefined when there is none, or when it is anything but a regular file (a link is no object).
 * Fs errors are thrown as they are.
 */
export async function describeObject(io: GuardedFs, dirPath: string, name: string): Promise<FsObjectInfo | undefined> {
  const objectPath = path.join(dirPath, name);
  for (let attempt = 1; ; attempt += 1) {
    let stat: BigIntStats;
    try {
      stat = await io.lstat(objectPath);
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    if (!stat.isFile()) return undefined;
    const identity = identityOf(stat);
    const sidecarPath = path.join(dirPath, sidecarName(name));
    const record = (await readSidecar(io, sidecarPath, identity)) ?? (await recordFromBytes(io, objectPath, sidecarPath, identity));
    if (record !== 'replaced') return { ...record, size: identity.size, lastModifiedMs: Number(stat.mtimeMs), identity };
    // Replaced while it was being read: the object there now is described instead.
    if (attempt >= DESCRIBE_ATTEMPTS) throw new AppError('remote_unavailable', `${objectPath} kept being replaced while it was read`);
  }
}

/**
 * The record of a file without a valid sidecar: the MD5 of its bytes, no metadata; 'replaced' when
 * the path names another file (or none) by the time it is opened. Kept as its sidecar only where there is
 * none at all, and never over one: a writer placing its own sidecar at the same moment must win,
 * or the object's metadata (its writer's id) would be lost.
 */
async function recordFromBytes(io: GuardedFs, objectPath: string, sidecarPath: string, identity: ObjectIdentity): Promise<ObjectRecord | 'replaced'> {
  const md5 = createHash('md5');
  let handle;
  try {
    handle = await io.openForReading(objectPath);
  } catch (error) {
    // Gone, or a link put in its place, since the lstat.
    if (isMissing(error) || isLinkRefused(error)) return 'replaced';
    throw error;
  }
  try {
    // The file opened must be the one looked at: the path may name another by now.
    if (!sameIdentity(identityOf(await handle.stat()), identity)) return 'replaced';
    const buffer = Buffer.allocUnsafe(HASH_READ_BYTES);
    for (let position = 0; ; ) {
      const bytesRead = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      md5.update(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
  } finally {
    await handle.close();
  }
  const record: ObjectRecord = { etag: md5.digest('hex'), metadata: {} };
  const current = await io.lstat(objectPath).catch(() => undefined);
  // Changed while it was read: the next look hashes it again.
  if (current === undefined || !sameIdentity(identityOf(current), identity)) return record;
  const temp = path.join(path.dirname(sidecarPath), temporaryName(path.basename(sidecarPath)));
  try {
    const file = await io.create(temp);
    try {
      await file.writeAll(serializeSidecar(identity, record), 0);
    } finally {
      await file.close();
    }
    await io.link(temp, sidecarPath);
  } catch (error) {
    // EEXIST: someone placed a sidecar meanwhile. Anything else: only a cache was not written.
    if (errnoOf(error) !== 'EEXIST') return record;
  } finally {
    await io.unlink(temp).catch(() => undefined);
  }
  return record;
}
