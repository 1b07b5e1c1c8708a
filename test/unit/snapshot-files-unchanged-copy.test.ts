// A new snapshot's copy of a large file that an earlier snapshot holds unchanged: its SHA-256 alone
// is read, and when it equals a cached digest of the same path and size, that digest is reused (no
// MD5s, no chunking). Anything else gets the full digest pass, as a file never seen before.
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChunkGuide } from '../../src/delta/chunk-guide.js';
import { chunkBuffer, type Chunk } from '../../src/delta/chunker.js';
import { CHUNKER_VERSION, DEFAULT_CHUNKER_PARAMS } from '../../src/delta/chunker-params.js';
import { isAppError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { digestFile, sha256OfFile, type FileDigest } from '../../src/snapshot/digest.js';
import { statSnapshot, type FileStat, type SnapshotStat } from '../../src/snapshot/scan.js';
import { emptyHashCache, hashCacheSchema, type HashCacheDocument } from '../../src/state/hash-cache.js';
import { PersistedJson } from '../../src/state/persisted.js';
import { SnapshotFiles, type SnapshotFilesOptions } from '../../src/upload/snapshot-files.js';
import { pseudoRandomBytes } from '../helpers/delta-data.js';
import { tempDir } from '../helpers/tmp.js';
import { rejection, writeSnapshotFiles } from '../helpers/uploader-harness.js';

const MIB = 1024 * 1024;
const THRESHOLD = 16 * MIB;
const S1 = 'auto_20250101_000000';
const S2 = 'auto_20250102_000000';
const FILE = 'index/index.faiss';
/** Large enough for the SHA-256-only check (32 MiB on) and for a multipart upload at THRESHOLD. */
const BASE = pseudoRandomBytes(11, 40 * MIB);

/** The digest passes SnapshotFiles runs, counted. */
function countingPasses(): { counts: { full: number; sha256: number }; passes: NonNullable<SnapshotFilesOptions['passes']> } {
  const counts = { full: 0, sha256: 0 };
  return {
    counts,
    passes: {
      full: (...args) => {
        counts.full += 1;
        return digestFile(...args);
      },
      sha256: (...args) => {
        counts.sha256 += 1;
        return sha256OfFile(...args);
      },
    },
  };
}

/**
 * Delta uploads as SnapshotFiles sees them: which sizes are chunked, the signatures kept (by
 * SHA-256, with their chunks), and the earlier versions each guide was asked for.
 */
function fakeDelta(): { kept: string[]; chunksKept: Map<string, Chunk[]>; guidesAskedFor: string[][]; delta: NonNullable<SnapshotFilesOptions['delta']> } {
  const kept: string[] = [];
  const chunksKept = new Map<string, Chunk[]>();
  const guidesAskedFor: string[][] = [];
  return {
    kept,
    chunksKept,
    guidesAskedFor,
    delta: {
      considers: (sizeBytes) => sizeBytes >= THRESHOLD,
      keep: async (chunks, digest) => {
        kept.push(digest.sha256);
        chunksKept.set(digest.sha256, [...chunks]);
      },
      keeps: async (digest) => kept.includes(digest.sha256),
      guideFor: async (versions) => {
        guidesAskedFor.push(versions.map((version) => version.sha256));
        const [newest] = versions;
        const chunks = newest === undefined ? undefined : chunksKept.get(newest.sha256);
        if (newest === undefined || chunks === undefined) return undefined;
        return ChunkGuide.from({ chunkerVersion: CHUNKER_VERSION, params: DEFAULT_CHUNKER_PARAMS, size: newest.size, sha256: newest.sha256, chunks }, DEFAULT_CHUNKER_PARAMS);
      },
    },
  };
}

interface Setup {
  backupDir: string;
  hashCache: PersistedJson<HashCacheDocument>;
  counts: { full: number; sha256: number };
  kept: string[];
  chunksKept: Map<string, Chunk[]>;
  guidesAskedFor: string[][];
  files: SnapshotFiles;
  /** Writes snapshot `name` holding FILE with `bytes`, and digests it. */
  digestSnapshot(name: string, bytes: Buffer, files?: SnapshotFiles): Promise<{ stat: SnapshotStat; file: FileStat; digest: FileDigest }>;
  /** Another SnapshotFiles over the same directory and cache. */
  filesWith(options: Partial<SnapshotFilesOptions>): SnapshotFiles;
}

async function setup(): Promise<Setup> {
  const backupDir = await tempDir('snapshot-files-unchanged');
  const hashCache = new PersistedJson<HashCacheDocument>(undefined, hashCacheSchema, emptyHashCache, silentLogger);
  const { counts, passes } = countingPasses();
  const { kept, chunksKept, guidesAskedFor, delta } = fakeDelta();
  const base: SnapshotFilesOptions = { backupDir, hashCache, multipartThresholdBytes: THRESHOLD, log: silentLogger, localFileDeadlineMs: undefined, refuseHardlinks: undefined, delta, passes };
  const filesWith = (options: Partial<SnapshotFilesOptions>): SnapshotFiles => new SnapshotFiles({ ...base, ...options });
  const files = filesWith({});
  const digestSnapshot = async (name: string, bytes: Buffer, using = files): Promise<{ stat: SnapshotStat; file: FileStat; digest: FileDigest }> => {
    await writeSnapshotFiles(backupDir, name, { [FILE]: bytes });
    const stat = await statSnapshot(backupDir, name);
    const file = stat.files.find((entry) => entry.path === FILE) as FileStat;
    return { stat, file, digest: await using.digest(stat, file) };
  };
  return { backupDir, hashCache, counts, kept, chunksKept, guidesAskedFor, files, digestSnapshot, filesWith };
}

describe('SnapshotFiles.digest of a file an earlier snapshot holds', () => {
  it('reuses the earlier digest of an identical copy: one SHA-256 pass, no MD5s, no chunking', async () => {
    const { counts, kept, files, digestSnapshot, backupDir } = await setup();
    const first = await digestSnapshot(S1, BASE);
    expect(counts).toEqual({ full: 1, sha256: 0 });
    expect(kept).toHaveLength(1);

    const second = await digestSnapshot(S2, Buffer.from(BASE));
    expect(counts).toEqual({ full: 1, sha256: 1 });
    expect(kept).toHaveLength(1);
    expect(second.digest).toEqual(first.digest);
    expect(second.digest).toEqual(await digestFile(path.join(backupDir, S2, FILE), BASE.length, THRESHOLD));
    // Kept for this snapshot's file too: the next look at it reads nothing.
    expect(files.cached(second.stat, second.file)).toBe(true);
    await files.digest(second.stat, second.file);
    expect(counts).toEqual({ full: 1, sha256: 1 });
  });

  it('digests a same-size copy with one byte changed in full, with its own MD5 and ETag', async () => {
    const { counts, kept, digestSnapshot, backupDir } = await setup();
    const first = await digestSnapshot(S1, BASE);
    const changed = Buffer.from(BASE);
    changed[changed.length - 1000] = (changed[changed.length - 1000] as number) ^ 0xff;

    const second = await digestSnapshot(S2, changed);
    expect(counts).toEqual({ full: 2, sha256: 1 });
    expect(kept).toHaveLength(2);
    expect(second.digest).toEqual(await digestFile(path.join(backupDir, S2, FILE), changed.length, THRESHOLD));
    expect(second.digest.sha256).not.toBe(first.digest.sha256);
    expect(second.digest.md5).not.toBe(first.digest.md5);
    expect(second.digest.etag).not.toBe(first.digest.etag);
  });

  it('digests a file of another size in full, without a SHA-256 pass first', async () => {
    const { counts, digestSnapshot, backupDir } = await setup();
    await digestSnapshot(S1, BASE);
    const longer = Buffer.concat([BASE, Buffer.from('appended')]);

    const second = await digestSnapshot(S2, longer);
    expect(counts).toEqual({ full: 2, sha256: 0 });
    expect(second.digest).toEqual(await digestFile(path.join(backupDir, S2, FILE), longer.length, THRESHOLD));
  });

  it("chunks a new version guided by the newest earlier version's chunks, into the chunks an unguided chunker cuts", async () => {
    const { chunksKept, guidesAskedFor, digestSnapshot } = await setup();
    const first = await digestSnapshot(S1, BASE);
    expect(guidesAskedFor).toEqual([[]]);
    const older = await digestSnapshot('auto_20241231_000000', Buffer.concat([BASE, Buffer.from('older')]));
    const header = Buffer.from(BASE);
    header.writeUInt32LE(0x01020304, 8);
    const edited = Buffer.concat([header, Buffer.from('appended record')]);

    const second = await digestSnapshot(S2, edited);
    // Both earlier snapshots, the newest by the time in its name first.
    expect(guidesAskedFor.at(-1)).toEqual([first.digest.sha256, older.digest.sha256]);
    expect(chunksKept.get(second.digest.sha256)).toEqual(chunkBuffer(edited));
  });

  it('digests an identical copy in full when its content has no signature kept (it was never chunked)', async () => {
    const { counts, kept, digestSnapshot, filesWith } = await setup();
    const first = await digestSnapshot(S1, BASE, filesWith({ delta: undefined }));
    expect(kept).toHaveLength(0);

    const second = await digestSnapshot(S2, Buffer.from(BASE));
    expect(counts).toEqual({ full: 2, sha256: 1 });
    expect(kept).toEqual([first.digest.sha256]);
    expect(second.digest).toEqual(first.digest);
  });

  it('does not reuse a digest taken for another multipart threshold (its ETag is for other parts)', async () => {
    const { counts, digestSnapshot, filesWith } = await setup();
    const first = await digestSnapshot(S1, BASE, filesWith({ multipartThresholdBytes: 64 * MIB }));
    expect(first.digest.multipart).toBe(false);

    const second = await digestSnapshot(S2, Buffer.from(BASE));
    expect(counts).toEqual({ full: 2, sha256: 0 });
    expect(second.digest.multipart).toBe(true);
    expect(second.digest.etag).toMatch(/-\d+$/);
  });

  it('opens the file for its SHA-256 as for any read: a file replaced since the scan is refused', async () => {
    const { counts, digestSnapshot, files, backupDir } = await setup();
    await digestSnapshot(S1, BASE);
    await writeSnapshotFiles(backupDir, S2, { [FILE]: BASE });
    const stat = await statSnapshot(backupDir, S2);
    const file = stat.files.find((entry) => entry.path === FILE) as FileStat;
    const absolute = path.join(backupDir, S2, FILE);
    await writeFile(`${absolute}.new`, BASE);
    await rename(`${absolute}.new`, absolute);

    const error = await rejection(files.digest(stat, file));
    expect(isAppError(error, 'snapshot_gone')).toBe(true);
    expect(counts).toEqual({ full: 1, sha256: 1 });
  });
});
