// The manifest bound must hold every manifest memsync can write, and little more.
import { describe, expect, it } from 'vitest';
import { encryptedSize } from '../../src/crypto/format.js';
import { buildManifest, isSafeRelativePath, serializeManifest } from '../../src/snapshot/manifest.js';
import { MAX_MANIFEST_BYTES, manifestByteLimit, manifestSizeBound } from '../../src/snapshot/manifest-limits.js';
import { requireUploadablePaths } from '../../src/upload/plan.js';

const LONGEST_NAME = `a${'b'.repeat(199)}`;

/** The longest path of `widest` characters the path rule allows, in segments short enough for any file system. */
function longestAllowedPath(start: string, widest: string): string {
  let path = start;
  for (let length = 0; ; length += 1) {
    const next = `${path}${length % 60 === 59 ? '/' : ''}${widest}`;
    if (!isSafeRelativePath(next)) return path;
    path = next;
  }
}

/** `count` entries as large as the format allows: the longest paths, of the widest characters, and the largest sizes. */
function worstCaseManifest(count: number, widest: string): Buffer {
  const files = Array.from({ length: count }, (_, i) => {
    const path = longestAllowedPath(String(i).padStart(6, '0'), widest);
    return { path, size: Number.MAX_SAFE_INTEGER, sha256: 'f'.repeat(64) };
  });
  return serializeManifest(buildManifest(LONGEST_NAME, 'directory', files));
}

describe('manifestByteLimit', () => {
  it.each([
    ['three-byte characters', '€'],
    ['quotes, which JSON escapes', '"'],
  ])('holds the largest manifest the format allows, with paths of %s', (_, widest) => {
    for (const count of [0, 1, 7, 100]) {
      expect(worstCaseManifest(count, widest).length, `${count} files`).toBeLessThanOrEqual(manifestByteLimit('plain', count));
    }
  });

  it('never exceeds the absolute limit, whatever the listing counts', () => {
    expect(manifestByteLimit('plain', 10_000_000)).toBe(MAX_MANIFEST_BYTES);
    expect(manifestByteLimit('plain')).toBe(MAX_MANIFEST_BYTES);
  });

  it('allows an encrypted manifest its header and tags', () => {
    expect(manifestByteLimit('encrypted', 3)).toBe(encryptedSize(manifestByteLimit('plain', 3)));
    expect(manifestByteLimit('encrypted')).toBe(encryptedSize(MAX_MANIFEST_BYTES));
  });
});

describe('snapshots whose manifest could not be read back', () => {
  it('refuses at upload a snapshot whose manifest would exceed what any reader accepts, and accepts a large ordinary one', () => {
    const ordinary = Array.from({ length: 20_000 }, (_, i) => `memories/${String(i).padStart(6, '0')}.json`);
    expect(manifestSizeBound(ordinary)).toBeLessThan(MAX_MANIFEST_BYTES);
    expect(() => requireUploadablePaths('auto_20250101_000000', ordinary)).not.toThrow();
    const huge = Array.from({ length: 20_000 }, (_, i) => `${'d'.repeat(900)}/${i}`);
    expect(() => requireUploadablePaths('auto_20250101_000000', huge)).toThrow(/manifest of up to \d+ bytes, over the 16777216 bytes/);
  });

  it('bounds the real serialized manifest from above', () => {
    const paths = ['a', 'dir/"quoted"\u00e9', `${'x'.repeat(1000)}`];
    const manifest = buildManifest('auto_20250101_000000', 'directory', paths.map((path) => ({ path, size: 9_007_199_254_740_991, sha256: 'f'.repeat(64) })));
    expect(Buffer.byteLength(serializeManifest(manifest))).toBeLessThanOrEqual(manifestSizeBound(paths));
  });
});
