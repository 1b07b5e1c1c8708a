import { createHash } from 'node:crypto';
import { AppError, asAppError } from '../errors.js';
import { multipartEtag } from '../snapshot/digest.js';
import { checkComposeParts, CopiedPartChecks, MIN_COMPOSE_PART_BYTES } from './compose-parts.js';
import { expectedSource, lowerCaseKeys, openExpectedSource } from './fs-copy.js';
import { isAborted, translateFsError } from './fs-errors.js';
import { checkKey } from './fs-layout.js';
import type { GuardedFile } from './fs-operations.js';
import type { ObjectIdentity } from './fs-sidecar.js';
import { placeObject, TempObject, type StoreRoot } from './fs-write.js';
import type { ComposeOptions, ComposePartSpec } from './store.js';

/**
 * The directory store's composition: the new object is assembled in a temporary file from
 * ranges of the source (read from one open handle, so a source replaced meanwhile cannot splice
 * two versions) and bytes of the local file, each part checked against its planned MD5 (a copied
 * part's once it is known, without holding up the parts after it), then put in place create-only (a key another writer took meanwhile is a conflict, never
 * replaced). The ETag is the multipart ETag of those parts, as S3
 * gives the same composition, and the same limits apply (5 MiB parts but the last), so a plan
 * behaves alike on every store.
 */

const READ_BYTES = 1024 * 1024;

export async function composeObject(where: StoreRoot, targetKey: string, options: ComposeOptions): Promise<void> {
  const what = `compose ${targetKey} from ${options.sourceKey}`;
  checkKey(targetKey);
  checkComposeParts(what, options.parts);
  if (isAborted(options.signal)) throw new AppError('cancelled', `${what}: aborted`);
  const small = options.parts.slice(0, -1).findIndex((part) => partBytes(part) < MIN_COMPOSE_PART_BYTES);
  if (small >= 0) {
    throw new AppError('object_refused', `${what}: part ${small + 1} is smaller than ${MIN_COMPOSE_PART_BYTES} bytes and not the last (EntityTooSmall)`, { retryable: false, details: { code: 'EntityTooSmall' } });
  }
  const expected = await expectedSource(where, options.sourceKey, options.sourceEtag, what);
  // Read from one open handle of the file checked: a source replaced meanwhile cannot splice two versions.
  const source = await openExpectedSource(where, expected, options.sourceKey, what);
  try {
    const temp = await TempObject.create(where, targetKey, what);
    try {
      const md5s: Buffer[] = [];
      const checks = new CopiedPartChecks(what, options.signal);
      for (const [index, part] of options.parts.entries()) {
        if (isAborted(options.signal)) throw new AppError('cancelled', `${what}: aborted`);
        const md5 = await writePart(temp, source, expected.size, part, index + 1, options, what);
        if (part.kind === 'copy') void checks.add(index + 1, part.md5Hex, md5.toString('hex'));
        md5s.push(md5);
        options.onPartDone?.({ index, bytes: partBytes(part), kind: part.kind });
      }
      const failure = await checks.firstFailure();
      if (failure !== undefined) throw failure;
      if (isAborted(options.signal)) throw new AppError('cancelled', `${what}: aborted`);
      const identity = await finish(temp, what);
      await placeObject(temp, identity, { etag: multipartEtag(md5s), metadata: lowerCaseKeys(options.metadata) }, 'create', what);
    } catch (error) {
      await temp.discard();
      throw error;
    }
  } finally {
    await source.close();
  }
}

function partBytes(part: ComposePartSpec): number {
  return part.kind === 'copy' ? part.sourceEnd - part.sourceStart : part.length;
}

/** Appends one part; returns its MD5 (raw), checked against the planned one if it was sent (a copied part's is checked by the caller). */
async function writePart(temp: TempObject, source: GuardedFile, sourceSize: number, part: ComposePartSpec, partNumber: number, options: ComposeOptions, what: string): Promise<Buffer> {
  const md5 = createHash('md5');
  const buffer = Buffer.allocUnsafe(Math.min(READ_BYTES, partBytes(part)));
  if (part.kind === 'copy' && part.sourceEnd > sourceSize) {
    throw new AppError('object_refused', `${what}: part ${partNumber} (copy bytes=${part.sourceStart}-${part.sourceEnd - 1}) is past the source's end (InvalidRange)`, { retryable: false, details: { code: 'InvalidRange' } });
  }
  for (let offset = 0; offset < partBytes(part); offset += buffer.length) {
    const piece = buffer.subarray(0, Math.min(buffer.length, partBytes(part) - offset));
    if (part.kind === 'copy') await readSource(source, piece, part.sourceStart + offset, what);
    else {
      try {
        await options.body.read(piece, part.targetStart + offset);
      } catch (error) {
        throw asAppError(error, 'local_io', `${what}: read part ${partNumber} at ${part.targetStart + offset}`);
      }
    }
    md5.update(piece);
    try {
      await temp.write(piece);
    } catch (error) {
      throw translateFsError(error, what, 'remote_unavailable');
    }
  }
  const actual = md5.digest();
  if (part.kind === 'send' && actual.toString('hex') !== part.md5Hex.toLowerCase()) {
    throw new AppError('integrity', `${what}: part ${partNumber}: BadDigest (the sent bytes are not the planned ones: the file changed)`, { details: { code: 'BadDigest' } });
  }
  return actual;
}

async function readSource(source: GuardedFile, target: Buffer, position: number, what: string): Promise<void> {
  try {
    for (let filled = 0; filled < target.length; ) {
      const bytesRead = await source.read(target, filled, target.length - filled, position + filled);
      if (bytesRead === 0) throw new AppError('conflict', `${what}: the source ended at byte ${position + filled} (it changed)`, { details: { code: 'PreconditionFailed' } });
      filled += bytesRead;
    }
  } catch (error) {
    throw translateFsError(error, what);
  }
}

async function finish(temp: TempObject, what: string): Promise<ObjectIdentity> {
  try {
    return await temp.finish();
  } catch (error) {
    throw translateFsError(error, what, 'remote_unavailable');
  }
}
