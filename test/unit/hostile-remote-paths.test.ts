import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isAppError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { buildRemoteIndex, chooseLatestRestorable } from '../../src/remote/remote-index.js';
import type { RemoteObject } from '../../src/remote/store.js';
import { Restorer } from '../../src/restore/restorer.js';
import { manifestKey, serializeManifest, type ManifestFile } from '../../src/snapshot/manifest.js';
import { isTimedSnapshotName } from '../../src/snapshot/naming.js';
import { tempDir } from '../helpers/tmp.js';

const OLDER = 'auto_20250101_000000';
const NEWER = 'pre_update_20250102_000000';
const LATER_MS = Date.UTC(2030, 0, 1);

const object = (key: string, lastModifiedMs = Date.UTC(2025, 0, 3)): RemoteObject => ({ key, size: 10, etag: `"${'b'.repeat(32)}"`, lastModifiedMs });
const complete = (name: string): RemoteObject[] => [object(`${name}/metadata.json`), object(`${name}/.memsync-manifest.json`)];

describe('choosing the latest remote snapshot', () => {
  it.each([
    ['a traversal key under a short name', 'x/../../evil'],
    ['a traversal key under a timed name', 'auto_20991231_235959/../../evil'],
    ['a backslash traversal', 'x/..\\..\\evil'],
    ['a key with a newline', 'auto_20991231_235959/a\nb'],
    ['a manifest name behind a traversal', 'x/../.memsync-manifest.json'],
    ['an untimed name', 'x/evil'],
    ['an untimed name with a manifest', 'x/.memsync-manifest.json'],
    ['a name with a space', 'a b/c'],
    ['a name starting with a dot', '.x/c'],
    ['a key at the top', 'evil'],
  ])('never picks %s, however recent', (_label, planted) => {
    const index = buildRemoteIndex([...complete(OLDER), ...complete(NEWER), object(planted, LATER_MS)], 0);
    expect(chooseLatestRestorable(index)?.name).toBe(NEWER);
    // Alone in the bucket, it is not something to download at all.
    expect(chooseLatestRestorable(buildRemoteIndex([object(planted, LATER_MS)], 0))).toBeUndefined();
  });

  it('never picks a snapshot made only of unrestorable keys, even when nothing else is complete', () => {
    const index = buildRemoteIndex([object(`${OLDER}/metadata.json`), object('x/../../evil', LATER_MS)], 0);
    expect(index.snapshots.has('x')).toBe(false);
    expect(index.ignoredKeys).toBe(1);
    expect(chooseLatestRestorable(index)?.name).toBe(OLDER);
  });

  it('still orders valid names by the time in their names', () => {
    const index = buildRemoteIndex([...complete(NEWER), ...complete(OLDER)], 0);
    expect(chooseLatestRestorable(index)?.name).toBe(NEWER);
  });
});

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

async function plantManifest(store: MemoryRemoteStore, name: string, files: Record<string, Buffer>, listed: string[] = Object.keys(files)): Promise<void> {
  const put = (key: string, bytes: Buffer) =>
    store.put(key, () => bytes, { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
  for (const [relative, bytes] of Object.entries(files)) await put(`${name}/${relative}`, bytes);
  const entries: ManifestFile[] = listed.map((relative) => {
    const bytes = files[relative] ?? Buffer.alloc(0);
    return { path: relative, size: bytes.length, sha256: sha256(bytes) };
  });
  // Written as JSON directly: serializeManifest of a hand-made object, as a hostile writer could.
  await put(manifestKey(name), serializeManifest({ format: 'memsync-manifest', version: 1, snapshot: name, kind: 'directory', files: entries }));
}

async function restoreError(store: MemoryRemoteStore, name: string): Promise<{ error: unknown; backupDir: string }> {
  const backupDir = path.join(await tempDir('hostile-restore'), 'backups');
  const restorer = new Restorer({ store, backupDir, multipartThresholdBytes: 5 * 1024 * 1024, retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 }, log: silentLogger, now: () => Date.now() });
  try {
    await restorer.restore(name);
  } catch (error) {
    return { error, backupDir };
  }
  throw new Error('expected the restore to fail');
}

describe('restoring a snapshot whose paths collide', () => {
  it.each([
    ['a file and a file inside it', { a: Buffer.from('1'), 'a/b': Buffer.from('2') }, undefined, '"a"'],
    ['a file and a deeper file inside it', { 'd/e': Buffer.from('1'), 'd/e/f/g': Buffer.from('2') }, undefined, '"d/e"'],
    ['a path listed twice', { a: Buffer.from('1') }, ['a', 'a'], '"a"'],
  ])('refuses %s in its manifest with an integrity error naming the file, writing nothing', async (_label, files, listed, named) => {
    const store = new MemoryRemoteStore();
    await plantManifest(store, OLDER, files, listed);

    const { error, backupDir } = await restoreError(store, OLDER);

    expect(isAppError(error, 'integrity')).toBe(true);
    expect(isAppError(error) && error.retryable).toBe(false);
    expect(error instanceof Error && error.message).toContain(named);
    expect(await readdir(backupDir).catch(() => [])).toEqual([]);
  });

  it('refuses colliding keys of a snapshot without a manifest the same way', async () => {
    const store = new MemoryRemoteStore();
    for (const key of [`${OLDER}/a`, `${OLDER}/a/b`]) {
      await store.put(key, () => Buffer.from('x'), { sizeBytes: 1, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
    }

    const { error, backupDir } = await restoreError(store, OLDER);

    expect(isAppError(error, 'integrity')).toBe(true);
    expect(error instanceof Error && error.message).toContain('"a"');
    expect(await readdir(backupDir).catch(() => [])).toEqual([]);
  });
});

describe('isTimedSnapshotName', () => {
  it.each([
    ['auto_20250101_000000', true],
    ['pre_update_20241231_235959', true],
    ['dump_20250101_000000.tar.gz', true],
    ['x', false],
    ['manual', false],
    ['auto_20250230_000000', false],
    ['../auto_20250101_000000', false],
    ['auto_20250101_000000/..', false],
  ])('%j -> %s', (name, timed) => {
    expect(isTimedSnapshotName(name)).toBe(timed);
  });
});
