// A composed upload of a file digested in full in this process checks the parts it copies on the
// file's plain layout against the part MD5s its digest pass took: only the unaligned pieces at the
// ends of a copied run are read and hashed again. A wrong kept MD5 ends in a whole upload.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import type { FileBody } from '../../src/remote/store.js';
import { partSizeFor } from '../../src/snapshot/digest.js';
import { buildManifest } from '../../src/snapshot/manifest.js';
import { statSnapshot } from '../../src/snapshot/scan.js';
import { emptyHashCache, hashCacheSchema } from '../../src/state/hash-cache.js';
import { PersistedJson } from '../../src/state/persisted.js';
import { SignatureStore } from '../../src/state/signature-store.js';
import type { FileRange, RangeMd5s } from '../../src/upload/delta-part-md5s.js';
import { DeltaTransfer } from '../../src/upload/delta-transfer.js';
import { KeptPartMd5s } from '../../src/upload/kept-part-md5s.js';
import { SnapshotFiles } from '../../src/upload/snapshot-files.js';
import { pseudoRandomBytes } from '../helpers/delta-data.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { tempDir } from '../helpers/tmp.js';

const MIB = 1024 * 1024;
const S1 = 'auto_20250101_000000';
const S2 = 'auto_20250102_000000';
const FILE = 'index.faiss';
const BASE = pseudoRandomBytes(23, 64 * MIB);
// The header rewritten and one record appended, as the memory service's index changes.
const NEXT = Buffer.concat([pseudoRandomBytes(24, 64), BASE.subarray(64), pseudoRandomBytes(25, 1536)]);
const P = partSizeFor(NEXT.length);
const md5Hex = (bytes: Buffer): string => createHash('md5').update(bytes).digest('hex');

/** Local MD5s of copied ranges taken at once from NEXT, each range asked for recorded. */
function recordingMd5s(asked: FileRange[]): RangeMd5s {
  return (_body, ranges) => {
    asked.push(...ranges);
    return ranges.map((range) => Promise.resolve(md5Hex(NEXT.subarray(range.start, range.start + range.length))));
  };
}

const isWholePlainPart = (range: FileRange): boolean => range.start % P === 0 && (range.length === P || range.start + range.length === NEXT.length);

interface Setup {
  store: MemoryRemoteStore;
  delta: DeltaTransfer;
  files: SnapshotFiles;
  backupDir: string;
  logs: LogLine[];
}

async function setup(options: { asked: FileRange[]; kept?: KeptPartMd5s }): Promise<Setup> {
  const logs: LogLine[] = [];
  const log = recordingLogger(logs);
  const root = await tempDir('delta-kept-md5s');
  const backupDir = path.join(root, 'backups');
  for (const [name, bytes] of [[S1, BASE], [S2, NEXT]] as const) {
    await mkdir(path.join(backupDir, name), { recursive: true });
    await writeFile(path.join(backupDir, name, FILE), bytes);
  }
  const store = new MemoryRemoteStore();
  await store.put(`${S1}/${FILE}`, () => BASE, { sizeBytes: BASE.length, md5Hex: undefined, partSizeBytes: P, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
  const baseSha256 = createHash('sha256').update(BASE).digest('hex');
  const delta = new DeltaTransfer({
    store,
    signatures: new SignatureStore(path.join(root, 'signatures'), log),
    minFileBytes: 16 * MIB,
    knownSnapshots: async () => [{ name: S1, timeMs: 1, manifest: buildManifest(S1, 'directory', [{ path: FILE, size: BASE.length, sha256: baseSha256 }]) }],
    agentId: 'kept-md5s-agent',
    retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 },
    log,
    copiedPartMd5s: recordingMd5s(options.asked),
    ...(options.kept === undefined ? {} : { keptPartMd5s: options.kept }),
  });
  const hashCache = new PersistedJson(undefined, hashCacheSchema, emptyHashCache, log);
  const files = new SnapshotFiles({ backupDir, hashCache, multipartThresholdBytes: 16 * MIB, log, localFileDeadlineMs: undefined, refuseHardlinks: undefined, delta });
  return { store, delta, files, backupDir, logs };
}

const nextBody: FileBody = { kind: 'file', read: async (target, position) => void NEXT.copy(target, 0, position, position + target.length) };

/** Digests both snapshots as an upload does (in full: nothing cached), then composes S2's file. */
async function digestAndCompose(s: Setup, afterDigest: () => void = () => undefined): Promise<Awaited<ReturnType<DeltaTransfer['compose']>>> {
  const base = await statSnapshot(s.backupDir, S1);
  await s.files.digest(base, base.files[0]!);
  const next = await statSnapshot(s.backupDir, S2);
  const digest = await s.files.digest(next, next.files[0]!);
  afterDigest();
  return s.delta.compose(S2, `${S2}/${FILE}`, { path: FILE, digest, body: nextBody }, new AbortController().signal, recordingLogger(s.logs));
}

describe('a composed upload reuses the part MD5s of its digest pass', () => {
  it('reads no whole plain part of the copied run again; the object is byte-identical and its ETag the predicted one', async () => {
    const asked: FileRange[] = [];
    const s = await setup({ asked });
    const result = await digestAndCompose(s);

    expect(result, JSON.stringify(s.logs.filter((line) => line.level !== 'debug'))).toBeDefined();
    const stored = s.store.objects.get(`${S2}/${FILE}`);
    expect(stored?.bytes.equals(NEXT)).toBe(true);
    expect(result?.etag).toBe(stored?.etag);
    // Only the pieces at the ends of the copied run were read: none of them a whole plain part.
    expect(asked.filter(isWholePlainPart)).toEqual([]);
    expect(asked.length).toBeLessThanOrEqual(2);
    const askedBytes = asked.reduce((sum, range) => sum + range.length, 0);
    expect(askedBytes).toBeLessThan(3 * P);
    // Every other copied byte is in a plain part whose kept MD5 was used.
    const composed = s.logs.find((line) => line.message === 'file composed from its previous version');
    const reused = Number(composed?.fields.partMd5sReused);
    expect(reused).toBeGreaterThanOrEqual(5);
    expect(askedBytes + reused * P).toBe(result?.bytesDelta);
    expect(await s.store.listMultipartUploads('')).toEqual([]);
  });

  it('without them (a digest from the cache, of another process): every copied range is read, as before', async () => {
    const asked: FileRange[] = [];
    const s = await setup({ asked });
    // The new version's signature is kept, but not its part MD5s.
    const stat = await statSnapshot(s.backupDir, S1);
    await s.files.digest(stat, stat.files[0]!);
    const next = await statSnapshot(s.backupDir, S2);
    const digest = await new SnapshotFiles(filesOptionsWithoutDelta(s)).digest(next, next.files[0]!);
    const result = await s.delta.compose(S2, `${S2}/${FILE}`, { path: FILE, digest, body: nextBody }, new AbortController().signal, recordingLogger(s.logs));

    expect(result).toBeDefined();
    expect(s.store.objects.get(`${S2}/${FILE}`)?.bytes.equals(NEXT)).toBe(true);
    expect(asked.reduce((sum, range) => sum + range.length, 0)).toBe(result?.bytesDelta);
    expect(s.logs.find((line) => line.message === 'file composed from its previous version')?.fields.partMd5sReused).toBe(0);
  });

  it('a wrong kept MD5: the copied part does not verify (integrity), the file is left to be sent whole; nothing stored, no open upload', async () => {
    const asked: FileRange[] = [];
    const kept = new KeptPartMd5s();
    const s = await setup({ asked, kept });
    const planted = createHash('md5').update('not plain part 3').digest();
    const result = await digestAndCompose(s, () => {
      const sha256 = createHash('sha256').update(NEXT).digest('hex');
      const right = kept.get(sha256, NEXT.length);
      if (right === undefined) throw new Error('the digest pass kept no part MD5s');
      const md5s = right.md5s.map((md5, index) => (index === 3 ? planted : md5));
      kept.keep(sha256, NEXT.length, { partSizeBytes: right.partSizeBytes, md5s });
    });

    expect(result).toBeUndefined();
    const warning = s.logs.find((line) => line.level === 'warn' && line.message.startsWith('delta upload not possible'));
    expect(warning?.fields.reason).toBe('a copied range differs from the local file');
    // Plain part 3 is the composition's fourth part (after the sent header and the merged piece).
    expect(String(warning?.fields.error)).toContain(`part 4 has MD5 ${md5Hex(NEXT.subarray(3 * P, 4 * P))}, expected ${planted.toString('hex')}`);
    expect(s.store.objects.has(`${S2}/${FILE}`)).toBe(false);
    expect(await s.store.listMultipartUploads('')).toEqual([]);
  });
});

describe('KeptPartMd5s', () => {
  const md5s = (count: number): Buffer[] => Array.from({ length: count }, (_, i) => createHash('md5').update(String(i)).digest());

  it('keeps the most recent files only', () => {
    const kept = new KeptPartMd5s(2);
    for (const sha256 of ['a', 'b', 'c']) kept.keep(sha256, 16, { partSizeBytes: 8, md5s: md5s(2) });
    expect(kept.get('a', 16)).toBeUndefined();
    expect(kept.get('b', 16)?.md5s).toHaveLength(2);
    expect(kept.get('c', 16)?.md5s).toHaveLength(2);
    expect(kept.get('c', 17)).toBeUndefined();
  });

  it('refuses a list that does not cover the file part for part', () => {
    const kept = new KeptPartMd5s();
    kept.keep('a', 17, { partSizeBytes: 8, md5s: md5s(2) });
    kept.keep('b', 16, { partSizeBytes: 8, md5s: md5s(2) });
    expect(kept.get('a', 17)).toBeUndefined();
    expect(kept.get('b', 16)).toBeDefined();
  });
});

function filesOptionsWithoutDelta(s: Setup): ConstructorParameters<typeof SnapshotFiles>[0] {
  const log = recordingLogger(s.logs);
  return { backupDir: s.backupDir, hashCache: new PersistedJson(undefined, hashCacheSchema, emptyHashCache, log), multipartThresholdBytes: 16 * MIB, log, localFileDeadlineMs: undefined, refuseHardlinks: undefined, delta: undefined };
}
