import { randomBytes } from 'node:crypto';
import { AppError, describeError, isAppError } from '../errors.js';
import type { Logger } from '../log.js';
import type { PutOptions, RemoteStore } from './store.js';

/**
 * Whether the server honours If-None-Match: * on PUT, found out once at start. memsync always
 * checks with HEAD before it writes a snapshot's manifest; a server that honours the header
 * also closes the window between that HEAD and the PUT (two agents writing one name). Some
 * servers ignore the header (harmless: the HEAD check stands alone) and a few refuse requests
 * that carry it, which would fail every upload: there memsync stops sending it.
 */
export type ConditionalWrites = 'honoured' | 'ignored' | 'refused';

/** Where the probe writes: not a snapshot name (dot-prefixed), so no listing ever shows it. */
export const PROBE_KEY_PREFIX = '.memsync-probe/';

function probeOptions(bytes: Buffer, ifNoneMatch: boolean): PutOptions {
  return { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch, metadata: {}, signal: undefined, onProgress: undefined };
}

/**
 * Writes a probe object twice with If-None-Match: * and deletes it. Throws (an AppError) only
 * when the store cannot be written at all; the caller then keeps the default, sending the header.
 */
export async function probeConditionalWrites(store: RemoteStore): Promise<ConditionalWrites> {
  const key = `${PROBE_KEY_PREFIX}${randomBytes(8).toString('hex')}`;
  const bytes = Buffer.from('memsync conditional write probe\n');
  try {
    try {
      await store.put(key, () => bytes, probeOptions(bytes, true));
    } catch (error) {
      // Refused with the header, accepted without it: the header is the problem.
      await store.put(key, () => bytes, probeOptions(bytes, false));
      if (isAppError(error, 'conflict')) throw error;
      return 'refused';
    }
    try {
      await store.put(key, () => bytes, probeOptions(bytes, true));
      return 'ignored';
    } catch (error) {
      if (isAppError(error, 'conflict')) return 'honoured';
      throw error;
    }
  } finally {
    await store.delete(key).catch(() => undefined);
  }
}

/** Probes, configures the store accordingly and says in the log which guard is in use. */
export async function configureConditionalWrites(store: RemoteStore, log: Logger): Promise<ConditionalWrites | undefined> {
  let mode: ConditionalWrites;
  try {
    mode = await probeConditionalWrites(store);
  } catch (error) {
    log.warn('could not probe conditional writes; sending If-None-Match and checking with HEAD before each manifest', { error: describeError(error) });
    return undefined;
  }
  store.useConditionalWrites(mode !== 'refused');
  const guard: Record<ConditionalWrites, string> = {
    honoured: 'the server honours If-None-Match: a snapshot name is never overwritten, even by a concurrent writer',
    ignored: 'the server ignores If-None-Match: memsync relies on its HEAD check before each manifest write',
    refused: 'the server refuses If-None-Match: memsync stops sending it and relies on its HEAD check before each manifest write',
  };
  log.info('conditional writes', { mode, guard: guard[mode] });
  return mode;
}

/**
 * Whether the server checks If-Match on PUT (PutOptions.ifMatchEtag): 'honoured' when it refuses
 * a write conditional on an ETag the object does not have and accepts one on the ETag it has;
 * 'ignored' when it writes whatever the ETag; 'refused' when it refuses such writes altogether.
 * Only 'honoured' lets two agents compete for one object safely (see upload/name-claim.ts).
 */
export type ConditionalReplace = 'honoured' | 'ignored' | 'refused';

/** An ETag no probe object has: its MD5 is not this. */
const FOREIGN_ETAG = `"${'0'.repeat(32)}"`;

/** Writes a probe object, replaces it on a wrong and then on its own ETag, and deletes it. Throws when the store cannot be written. */
export async function probeConditionalReplace(store: RemoteStore): Promise<ConditionalReplace> {
  const key = `${PROBE_KEY_PREFIX}${randomBytes(8).toString('hex')}`;
  const bytes = Buffer.from('memsync conditional replace probe\n');
  try {
    let etag: string | undefined;
    await store.put(key, () => bytes, { ...probeOptions(bytes, false), onStored: (stored) => (etag = stored) });
    etag ??= (await store.head(key))?.etag;
    if (etag === undefined) throw new AppError('remote_unavailable', `probe ${key}: written, but the store shows no ETag for it`);
    try {
      await store.put(key, () => bytes, { ...probeOptions(bytes, false), ifMatchEtag: FOREIGN_ETAG });
      return 'ignored';
    } catch (error) {
      if (isAppError(error, 'remote_rejected')) return 'refused';
      if (!isAppError(error, 'conflict')) throw error;
    }
    try {
      await store.put(key, () => bytes, { ...probeOptions(bytes, false), ifMatchEtag: etag });
      return 'honoured';
    } catch (error) {
      if (isAppError(error, 'conflict') || isAppError(error, 'remote_rejected')) return 'refused';
      throw error;
    }
  } finally {
    await store.delete(key).catch(() => undefined);
  }
}

/**
 * probeConditionalReplace, run when first needed and remembered for the store's life (the server
 * does not change its mind); a probe that failed is run again next time.
 */
export class ConditionalReplaceProbe {
  private found: Promise<ConditionalReplace> | undefined;

  constructor(private readonly store: RemoteStore) {}

  mode(): Promise<ConditionalReplace> {
    this.found ??= probeConditionalReplace(this.store).catch((error: unknown) => {
      this.found = undefined;
      throw error;
    });
    return this.found;
  }
}
