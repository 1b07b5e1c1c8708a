import { describe, expect, it } from 'vitest';
import type { FileDigest } from '../../src/snapshot/digest.js';
import type { FileStat } from '../../src/snapshot/scan.js';
import { digestsOfOtherVersions, emptyHashCache, hashCacheSchema, lookupDigest, pruneDigests, storeDigest, type HashCacheDocument } from '../../src/state/hash-cache.js';

const NAME = 'auto_20250101_000000';
const THRESHOLD = 5 * 1024 * 1024;
const file: FileStat = { path: 'sub/index.faiss', size: 100, mtimeMs: 1000.5, ctimeMs: 2000.25 };
const digest: FileDigest = { size: 100, sha256: 'a'.repeat(64), md5: 'b'.repeat(32), etag: 'b'.repeat(32), partSizeBytes: 8 * 1024 * 1024, multipart: false };

function cacheWith(...entries: [string, FileStat][]): HashCacheDocument {
  const cache = emptyHashCache();
  for (const [snapshot, stat] of entries) storeDigest(cache, snapshot, stat, THRESHOLD, { ...digest, size: stat.size });
  return cache;
}

describe('lookupDigest', () => {
  it('finds a stored digest while size, mtime, ctime and threshold are unchanged', () => {
    const cache = cacheWith([NAME, file]);
    expect(lookupDigest(cache, NAME, { ...file }, THRESHOLD)).toEqual(digest);
  });

  it('survives a JSON round trip (what the state file holds)', () => {
    const cache = hashCacheSchema.parse(JSON.parse(JSON.stringify(cacheWith([NAME, file]))));
    expect(lookupDigest(cache, NAME, file, THRESHOLD)).toEqual(digest);
  });

  it.each<[string, FileStat, number]>([
    ['size changed', { ...file, size: 101 }, THRESHOLD],
    ['mtime changed', { ...file, mtimeMs: file.mtimeMs + 0.001 }, THRESHOLD],
    ['mtime moved back', { ...file, mtimeMs: file.mtimeMs - 1 }, THRESHOLD],
    ['ctime changed', { ...file, ctimeMs: file.ctimeMs + 1 }, THRESHOLD],
    ['threshold changed', file, THRESHOLD + 1],
    ['other path', { ...file, path: 'index.faiss' }, THRESHOLD],
  ])('misses when %s', (_label, stat, threshold) => {
    expect(lookupDigest(cacheWith([NAME, file]), NAME, stat, threshold)).toBeUndefined();
  });

  it('keeps snapshots apart', () => {
    expect(lookupDigest(cacheWith([NAME, file]), 'auto_20250102_000000', file, THRESHOLD)).toBeUndefined();
  });

  it('misses in an empty cache', () => {
    expect(lookupDigest(emptyHashCache(), NAME, file, THRESHOLD)).toBeUndefined();
  });

  it('replaces an entry when the file is stored again', () => {
    const cache = cacheWith([NAME, file]);
    const newer = { ...file, size: 200, ctimeMs: 3000 };
    storeDigest(cache, NAME, newer, THRESHOLD, { ...digest, size: 200, sha256: 'c'.repeat(64) });
    expect(Object.keys(cache.entries)).toHaveLength(1);
    expect(lookupDigest(cache, NAME, file, THRESHOLD)).toBeUndefined();
    expect(lookupDigest(cache, NAME, newer, THRESHOLD)?.sha256).toBe('c'.repeat(64));
  });
});

describe('pruneDigests', () => {
  it('drops entries of snapshots not in the live set and counts them', () => {
    const single = 'auto_20250103_000000.json';
    const cache = cacheWith(
      ['auto_20250101_000000', { ...file, path: 'a' }],
      ['auto_20250101_000000', { ...file, path: 'sub/b' }],
      ['auto_20250102_000000', { ...file, path: 'a' }],
      [single, { ...file, path: single }],
      ['auto', { ...file, path: 'a' }],
    );
    expect(pruneDigests(cache, new Set(['auto_20250101_000000', single]))).toBe(2);
    expect(Object.keys(cache.entries).sort()).toEqual(['auto_20250101_000000/a', 'auto_20250101_000000/sub/b', `${single}/${single}`]);
  });

  it('does not keep a snapshot whose name is a prefix of a live one, or the reverse', () => {
    const cache = cacheWith(['auto', { ...file, path: 'a' }], ['auto_1', { ...file, path: 'a' }]);
    expect(pruneDigests(cache, new Set(['auto_1']))).toBe(1);
    expect(Object.keys(cache.entries)).toEqual(['auto_1/a']);
  });

  it('drops everything for an empty live set and nothing when all are live', () => {
    const cache = cacheWith([NAME, file], ['other', file]);
    expect(pruneDigests(cache, new Set([NAME, 'other']))).toBe(0);
    expect(Object.keys(cache.entries)).toHaveLength(2);
    expect(pruneDigests(cache, new Set())).toBe(2);
    expect(cache.entries).toEqual({});
  });
});

describe('digestsOfOtherVersions', () => {
  const S2 = 'auto_20250102_000000';
  const S3 = 'auto_20250103_000000';
  const newFile: FileStat = { ...file, mtimeMs: 5000, ctimeMs: 6000 };

  it('lists the digests of the same path and size in any snapshot, whatever their mtime and ctime', () => {
    const cache = cacheWith([NAME, file]);
    storeDigest(cache, S2, { ...file, ctimeMs: 7000 }, THRESHOLD, { ...digest, sha256: 'c'.repeat(64), md5: 'd'.repeat(32) });
    const found = digestsOfOtherVersions(cache, newFile, THRESHOLD);
    expect(found.map((entry) => entry.sha256).sort()).toEqual(['a'.repeat(64), 'c'.repeat(64)]);
  });

  it.each<[string, FileStat, number]>([
    ['another size', { ...file, size: 101 }, THRESHOLD],
    ['another threshold', file, THRESHOLD + 1],
    ['another path ending the same', { ...file, path: 'index.faiss' }, THRESHOLD],
    ['a path the cached one ends with', { ...file, path: 'x/sub/index.faiss' }, THRESHOLD],
  ])('ignores a cached file of %s', (_label, stored, threshold) => {
    const cache = emptyHashCache();
    storeDigest(cache, NAME, stored, threshold, { ...digest, size: stored.size });
    expect(digestsOfOtherVersions(cache, newFile, THRESHOLD)).toEqual([]);
  });

  it('lists each content once, preferring a digest that has the whole-file MD5', () => {
    const cache = emptyHashCache();
    storeDigest(cache, NAME, file, THRESHOLD, { ...digest, md5: '' });
    storeDigest(cache, S2, file, THRESHOLD, digest);
    storeDigest(cache, S3, file, THRESHOLD, { ...digest, md5: '' });
    expect(digestsOfOtherVersions(cache, newFile, THRESHOLD)).toEqual([digest]);
  });

  it('finds nothing in an empty cache', () => {
    expect(digestsOfOtherVersions(emptyHashCache(), newFile, THRESHOLD)).toEqual([]);
  });
});
