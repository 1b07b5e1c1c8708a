import { describe, expect, it } from 'vitest';
import type { RemoteIndex, RemoteSnapshot } from '../../src/remote/remote-index.js';
import { compareSides, type LocalEntry } from '../../src/upload/compare.js';

const ETAG = 'a'.repeat(32);
const OTHER = 'b'.repeat(32);

const local = (name: string, timeMs: number, manifestEtag: string | undefined = ETAG): LocalEntry => ({ name, timeMs, manifestEtag });
/** A local snapshot whose manifest is not computed yet. */
const unhashed = (name: string, timeMs: number): LocalEntry => ({ name, timeMs, manifestEtag: undefined });
const remote = (name: string, timeMs: number, complete: boolean, manifestEtag: string | undefined = complete ? ETAG : undefined): RemoteSnapshot => ({
  encrypted: false,
  name,
  timeMs,
  fileCount: 1,
  bytes: 1,
  complete,
  manifestEtag,
});
const index = (...snapshots: RemoteSnapshot[]): RemoteIndex => ({ snapshots: new Map(snapshots.map((s) => [s.name, s])), ignoredKeys: 0, listedAtMs: 0 });

describe('compareSides', () => {
  it.each<[string, LocalEntry, RemoteSnapshot | undefined, boolean, 'inSync' | 'pending' | 'conflicts']>([
    ['complete remotely with the same manifest ETag', local('s', 1), remote('s', 1, true), false, 'inSync'],
    ['complete and the same, even if once a known conflict', local('s', 1), remote('s', 1, true), true, 'inSync'],
    ['absent remotely', local('s', 1), undefined, false, 'pending'],
    ['partial remotely', local('s', 1), remote('s', 1, false), false, 'pending'],
    ['partial remotely with a (stale) etag field', local('s', 1), remote('s', 1, false, ETAG), false, 'pending'],
    ['not hashed yet', unhashed('s', 1), remote('s', 1, true), false, 'pending'],
    ['complete with a different manifest, not yet compared', local('s', 1), remote('s', 1, true, OTHER), false, 'pending'],
    ['complete with a different manifest, known conflict', local('s', 1), remote('s', 1, true, OTHER), true, 'conflicts'],
    ['known conflict not hashed yet', unhashed('s', 1), remote('s', 1, true, OTHER), true, 'conflicts'],
    ['known conflict with a partial remote', local('s', 1), remote('s', 1, false), true, 'conflicts'],
  ])('%s', (_label, entry, remoteSnapshot, known, bucket) => {
    const picture = compareSides([entry], remoteSnapshot === undefined ? index() : index(remoteSnapshot), new Set(known ? [entry.name] : []));
    const expected = { inSync: [] as string[], pending: [] as string[], conflicts: [] as string[], remoteOnly: [] as string[] };
    expected[bucket].push(entry.name);
    expect(picture).toEqual(expected);
  });

  it('lists pending and remote-only snapshots newest first by time, not by name', () => {
    const picture = compareSides(
      [local('pre_update_20250101_000000', 100), local('auto_20250102_000000', 200), local('zz', 150), local('synced', 50)],
      index(remote('synced', 50, true), remote('old_remote', 10, true), remote('new_remote', 300, false), remote('mid_remote', 20, true)),
      new Set(),
    );
    expect(picture.pending).toEqual(['auto_20250102_000000', 'zz', 'pre_update_20250101_000000']);
    expect(picture.remoteOnly).toEqual(['new_remote', 'mid_remote', 'old_remote']);
    expect(picture.inSync).toEqual(['synced']);
    expect(picture.conflicts).toEqual([]);
  });

  it('ignores known conflicts that are not local', () => {
    const picture = compareSides([], index(remote('gone', 1, true)), new Set(['gone', 'nowhere']));
    expect(picture).toEqual({ inSync: [], pending: [], conflicts: [], remoteOnly: ['gone'] });
  });

  it('accepts any iterable of local entries', () => {
    function* entries(): Generator<LocalEntry> {
      yield local('a', 2);
      yield local('b', 3);
    }
    expect(compareSides(entries(), index(), new Set()).pending).toEqual(['b', 'a']);
  });
});
