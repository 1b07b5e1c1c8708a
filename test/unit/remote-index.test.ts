import { describe, expect, it } from 'vitest';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { RemoteIndexBuilder, buildRemoteIndex, listRemoteIndex, remoteNewerThan } from '../../src/remote/remote-index.js';
import type { RemoteObject } from '../../src/remote/store.js';

const NAME = 'auto_20250101_000000';
const MANIFEST = `${NAME}/.memsync-manifest.json`;
const MANIFEST_ETAG = 'a'.repeat(32);

const object = (key: string, size = 10, etag = 'b'.repeat(32), lastModifiedMs = 1000): RemoteObject => ({ key, size, etag: `"${etag}"`, lastModifiedMs });

describe('buildRemoteIndex', () => {
  it('groups keys by snapshot and counts files and bytes without the manifest', () => {
    const index = buildRemoteIndex(
      [object(`${NAME}/metadata.json`, 10), object(`${NAME}/config.json`, 20), object(`${NAME}/sub/index.faiss`, 300), object(MANIFEST, 999, MANIFEST_ETAG.toUpperCase())],
      42,
    );
    expect(index.listedAtMs).toBe(42);
    expect(index.ignoredKeys).toBe(0);
    expect([...index.snapshots.keys()]).toEqual([NAME]);
    expect(index.snapshots.get(NAME)).toEqual({ name: NAME, timeMs: Date.UTC(2025, 0, 1), fileCount: 3, bytes: 330, complete: true, manifestEtag: MANIFEST_ETAG, encrypted: false });
  });

  it("counts neither an upload's claim nor its signature bundle as files, nor as a snapshot on their own", () => {
    const index = buildRemoteIndex([object(`${NAME}/metadata.json`, 10), object(`${NAME}/.memsync-claim`, 50), object(`${NAME}/.memsync-signatures`, 7000), object(MANIFEST, 9, MANIFEST_ETAG), object('auto_20250102_000000/.memsync-signatures', 70)], 0);
    expect([...index.snapshots.keys()]).toEqual([NAME]);
    expect(index.snapshots.get(NAME)).toMatchObject({ fileCount: 1, bytes: 10, complete: true });
  });

  it('is incomplete without the manifest key', () => {
    const index = buildRemoteIndex([object(`${NAME}/metadata.json`), object(`${NAME}/config.json`)], 0);
    expect(index.snapshots.get(NAME)).toMatchObject({ complete: false, manifestEtag: undefined, fileCount: 2, bytes: 20 });
  });

  it.each([
    ['a manifest name in a subdirectory', `${NAME}/sub/.memsync-manifest.json`],
    ['a similar name', `${NAME}/.memsync-manifest.json.tmp`],
    ['a manifest-like key of another prefix', `${NAME}x/.memsync-manifest.json`],
  ])('does not count %s as the manifest', (_label, key) => {
    const index = buildRemoteIndex([object(`${NAME}/a`), object(key)], 0);
    expect(index.snapshots.get(NAME)?.complete).toBe(false);
  });

  it('is complete with only the manifest (no files)', () => {
    const index = buildRemoteIndex([object(MANIFEST, 5, MANIFEST_ETAG)], 0);
    expect(index.snapshots.get(NAME)).toMatchObject({ complete: true, fileCount: 0, bytes: 0, manifestEtag: MANIFEST_ETAG });
  });

  it.each([
    ['a key at the prefix root', 'loose-file.json'],
    ['a key starting with a slash', '/auto_20250101_000000/a'],
    ['a traversal name', '../x/y'],
    ['a dot name', './x'],
    ['a name with ..', 'a..b/c'],
    ['a hidden name', '.memsync-state/x'],
    ['a folder marker', `${NAME}/`],
    ['a name with a space', 'a b/c'],
    ['a name with a backslash', 'a\\b/c'],
  ])('ignores %s', (_label, key) => {
    const index = buildRemoteIndex([object(key), object(`${NAME}/a`)], 0);
    expect(index.ignoredKeys).toBe(1);
    expect([...index.snapshots.keys()]).toEqual([NAME]);
    expect(index.snapshots.get(NAME)?.fileCount).toBe(1);
  });

  it('keeps snapshots apart and takes their times from their names', () => {
    const other = 'pre_update_20241231_120000';
    const index = buildRemoteIndex([object(`${NAME}/a`, 1), object(`${other}/a`, 2), object(`${other}/b`, 3), object(`${other}/.memsync-manifest.json`)], 0);
    expect(index.snapshots.size).toBe(2);
    expect(index.snapshots.get(NAME)).toMatchObject({ fileCount: 1, bytes: 1, complete: false, timeMs: Date.UTC(2025, 0, 1) });
    expect(index.snapshots.get(other)).toMatchObject({ fileCount: 2, bytes: 5, complete: true, timeMs: Date.UTC(2024, 11, 31, 12) });
  });

  it('times a snapshot without a time suffix by its newest file upload', () => {
    const index = buildRemoteIndex([object('manual/a', 1, undefined, 5000), object('manual/b', 1, undefined, 9000), object('manual/c', 1, undefined, 7000), object('manual/.memsync-manifest.json', 1, undefined, 99_999)], 0);
    expect(index.snapshots.get('manual')?.timeMs).toBe(9000);
  });

  it('does not let upload times override a name suffix', () => {
    const index = buildRemoteIndex([object(`${NAME}/a`, 1, undefined, Date.UTC(2030, 0, 1))], 0);
    expect(index.snapshots.get(NAME)?.timeMs).toBe(Date.UTC(2025, 0, 1));
  });
});

describe('listRemoteIndex', () => {
  it('reads every page of the store', async () => {
    const store = new MemoryRemoteStore({ pageSize: 2 });
    for (let i = 0; i < 5; i += 1) {
      await store.put(`${NAME}/f${i}`, () => Buffer.from(`file ${i}`), { sizeBytes: 6, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined });
    }
    const index = await listRemoteIndex(store, () => 77);
    expect(index.listedAtMs).toBe(77);
    expect(index.snapshots.get(NAME)).toMatchObject({ fileCount: 5, bytes: 30, complete: false });
  });

  it('gives an empty index for an empty store', async () => {
    const index = await listRemoteIndex(new MemoryRemoteStore(), () => 0);
    expect(index.snapshots.size).toBe(0);
    expect(index.ignoredKeys).toBe(0);
  });
});

describe('remoteNewerThan', () => {
  const index = buildRemoteIndex(
    [
      object('auto_20250101_000000/.memsync-manifest.json'),
      object('auto_20250101_000000/a'),
      object('auto_20250103_000000/.memsync-manifest.json'),
      object('auto_20250103_000000/a'),
      // Written by another tool: no manifest, but files.
      object('auto_20250102_000000/a'),
    ],
    0,
  );

  it('lists remote snapshots newer than the local latest, newest first', () => {
    expect(remoteNewerThan(index, Date.UTC(2025, 0, 1, 12)).map((s) => s.name)).toEqual(['auto_20250103_000000', 'auto_20250102_000000']);
  });

  it('lists nothing when the local latest is the newest, even if equal in time', () => {
    expect(remoteNewerThan(index, Date.UTC(2025, 0, 3))).toEqual([]);
  });

  it('lists everything when there is nothing local', () => {
    expect(remoteNewerThan(index, undefined)).toHaveLength(3);
  });
});

describe('RemoteIndexBuilder', () => {
  const UNTIMED = 'manual';
  const listing: RemoteObject[] = [
    object(`${NAME}/a`, 1),
    object(`${UNTIMED}/a`, 2, undefined, 5000),
    object('not a snapshot/x'),
    object(`${NAME}/b`, 3),
    object(`${UNTIMED}/b`, 4, undefined, 9000),
    object(`${UNTIMED}/.memsync-claim`, 5, undefined, 99_000),
    object(MANIFEST, 9, MANIFEST_ETAG),
    object(`${UNTIMED}/c`, 6, undefined, 7000),
  ];

  it('gives the same index page by page as from the whole listing at once, whatever the page size', () => {
    const whole = buildRemoteIndex(listing, 5);
    expect(whole.snapshots.get(UNTIMED)).toMatchObject({ fileCount: 3, bytes: 12, timeMs: 9000, complete: false });
    expect(whole.snapshots.get(NAME)).toMatchObject({ fileCount: 2, bytes: 4, complete: true, manifestEtag: MANIFEST_ETAG });
    expect(whole.ignoredKeys).toBe(1);
    for (let pageSize = 1; pageSize <= listing.length; pageSize += 1) {
      const builder = new RemoteIndexBuilder();
      for (let start = 0; start < listing.length; start += pageSize) builder.add(listing.slice(start, start + pageSize));
      expect(builder.finish(5)).toEqual(whole);
    }
  });
});
