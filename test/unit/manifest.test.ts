import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isAppError } from '../../src/errors.js';
import {
  buildManifest,
  diffManifests,
  fileKey,
  isSafeRelativePath,
  manifestDigest,
  manifestEtag,
  manifestKey,
  parseManifest,
  serializeManifest,
  sameContent,
  totalBytes,
  type Manifest,
  type ManifestFile,
} from '../../src/snapshot/manifest.js';

const NAME = 'auto_20250101_000000';
const sha = (seed: string): string => createHash('sha256').update(seed).digest('hex');

const files: ManifestFile[] = [
  { path: 'metadata.json', size: 10, sha256: sha('m') },
  { path: 'config.json', size: 20, sha256: sha('c') },
  { path: 'index.faiss', size: 30, sha256: sha('i') },
  { path: 'sub/deep.bin', size: 0, sha256: sha('') },
];

function manifestJson(overrides: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify({ format: 'memsync-manifest', version: 1, snapshot: NAME, kind: 'directory', files: [{ path: 'a.json', size: 1, sha256: sha('a') }], ...overrides }));
}

function errorOf(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('serializeManifest', () => {
  it('gives the same bytes whatever the order of the files', () => {
    const a = serializeManifest(buildManifest(NAME, 'directory', files));
    const b = serializeManifest(buildManifest(NAME, 'directory', [...files].reverse()));
    const c = serializeManifest({ format: 'memsync-manifest', version: 1, snapshot: NAME, kind: 'directory', files: [files[2]!, files[0]!, files[3]!, files[1]!] });
    expect(b.equals(a)).toBe(true);
    expect(c.equals(a)).toBe(true);
  });

  it('lists files sorted by path and keeps only path, size and sha256', () => {
    const extra = files.map((f) => ({ ...f, mtimeMs: 123 }));
    const parsed = JSON.parse(serializeManifest(buildManifest(NAME, 'directory', extra)).toString('utf8')) as Manifest;
    expect(parsed.files.map((f) => f.path)).toEqual(['config.json', 'index.faiss', 'metadata.json', 'sub/deep.bin']);
    expect(parsed.files.every((f) => Object.keys(f).sort().join() === 'path,sha256,size')).toBe(true);
    expect(parsed).toMatchObject({ format: 'memsync-manifest', version: 1, snapshot: NAME, kind: 'directory' });
  });

  it('differs when content differs', () => {
    const base = serializeManifest(buildManifest(NAME, 'directory', files));
    const changed = serializeManifest(buildManifest(NAME, 'directory', files.map((f, i) => (i === 0 ? { ...f, size: f.size + 1 } : f))));
    expect(changed.equals(base)).toBe(false);
  });

  it('round-trips through parseManifest', () => {
    const manifest = buildManifest(NAME, 'directory', files);
    expect(parseManifest(serializeManifest(manifest), NAME)).toEqual(manifest);
  });
});

describe('manifestEtag / manifestDigest', () => {
  it('is the MD5 (and SHA-256) of the serialized bytes', () => {
    const manifest = buildManifest(NAME, 'directory', files);
    const bytes = serializeManifest(manifest);
    expect(manifestEtag(manifest)).toBe(createHash('md5').update(bytes).digest('hex'));
    expect(manifestDigest(manifest)).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it('does not depend on file order', () => {
    expect(manifestEtag(buildManifest(NAME, 'directory', [...files].reverse()))).toBe(manifestEtag(buildManifest(NAME, 'directory', files)));
  });
});

describe('isSafeRelativePath', () => {
  it.each([
    ['a.json', true],
    ['sub/dir/file.bin', true],
    ['..a', true],
    ['a..', true],
    ['', false],
    ['/etc/passwd', false],
    ['../x', false],
    ['a/../../x', false],
    ['a/..', false],
    ['./a', false],
    ['a//b', false],
    ['a/', false],
    ['a\\b', false],
    ['..\\x', false],
    ['a\u0000b', false],
    ['a\nb', false],
    ['x'.repeat(1025), false],
  ])('%j -> %s', (relativePath, safe) => {
    expect(isSafeRelativePath(relativePath)).toBe(safe);
  });
});

describe('parseManifest', () => {
  it('accepts a valid manifest and sorts its files', () => {
    const bytes = manifestJson({ files: [{ path: 'b', size: 2, sha256: sha('b') }, { path: 'a', size: 1, sha256: sha('a') }] });
    expect(parseManifest(bytes, NAME).files.map((f) => f.path)).toEqual(['a', 'b']);
  });

  it.each([
    ['traversal path', manifestJson({ files: [{ path: '../../etc/passwd', size: 1, sha256: sha('a') }] })],
    ['absolute path', manifestJson({ files: [{ path: '/etc/passwd', size: 1, sha256: sha('a') }] })],
    ['backslash path', manifestJson({ files: [{ path: '..\\evil', size: 1, sha256: sha('a') }] })],
    ['nested traversal', manifestJson({ files: [{ path: 'a/../../b', size: 1, sha256: sha('a') }] })],
    ['other snapshot', manifestJson({ snapshot: 'auto_20250102_000000' })],
    ['invalid snapshot name', manifestJson({ snapshot: '../x' })],
    ['wrong format', manifestJson({ format: 'something-else' })],
    ['wrong version', manifestJson({ version: 2 })],
    ['unknown kind', manifestJson({ kind: 'symlink' })],
    ['negative size', manifestJson({ files: [{ path: 'a', size: -1, sha256: sha('a') }] })],
    ['fractional size', manifestJson({ files: [{ path: 'a', size: 1.5, sha256: sha('a') }] })],
    ['short sha256', manifestJson({ files: [{ path: 'a', size: 1, sha256: 'abc' }] })],
    ['upper-case sha256', manifestJson({ files: [{ path: 'a', size: 1, sha256: sha('a').toUpperCase() }] })],
    ['files missing', manifestJson({ files: undefined })],
    ['not JSON', Buffer.from('<Error>NoSuchKey</Error>')],
    ['empty', Buffer.alloc(0)],
    ['JSON null', Buffer.from('null')],
    ['JSON array', Buffer.from('[]')],
  ])('rejects %s as a non-retryable integrity error', (_label, bytes) => {
    const error = errorOf(() => parseManifest(bytes, NAME));
    expect(isAppError(error, 'integrity')).toBe(true);
    expect(isAppError(error) && error.retryable).toBe(false);
  });
});

describe('sameContent', () => {
  const base = buildManifest(NAME, 'directory', files);
  it.each<[string, Manifest, boolean]>([
    ['identical', buildManifest(NAME, 'directory', files), true],
    ['same files in another order', { ...base, files: [...files].reverse() }, true],
    ['other kind', buildManifest(NAME, 'file', files), false],
    ['a file missing', buildManifest(NAME, 'directory', files.slice(1)), false],
    ['an extra file', buildManifest(NAME, 'directory', [...files, { path: 'zz', size: 1, sha256: sha('z') }]), false],
    ['a size differs', buildManifest(NAME, 'directory', files.map((f, i) => (i === 1 ? { ...f, size: f.size + 1 } : f))), false],
    ['a hash differs', buildManifest(NAME, 'directory', files.map((f, i) => (i === 1 ? { ...f, sha256: sha('other') } : f))), false],
    ['a path differs', buildManifest(NAME, 'directory', files.map((f, i) => (i === 1 ? { ...f, path: 'renamed.json' } : f))), false],
  ])('%s -> %s', (_label, other, expected) => {
    expect(sameContent(base, other)).toBe(expected);
    expect(sameContent(other, base)).toBe(expected);
  });
});

describe('diffManifests', () => {
  it('is empty for the same content', () => {
    expect(diffManifests(buildManifest(NAME, 'directory', files), buildManifest(NAME, 'directory', [...files].reverse()))).toEqual([]);
  });

  it('reports changed, local-only and remote-only files', () => {
    const local = buildManifest(NAME, 'directory', [
      { path: 'same', size: 1, sha256: sha('s') },
      { path: 'hash', size: 2, sha256: sha('h1') },
      { path: 'size', size: 3, sha256: sha('z') },
      { path: 'local-only', size: 4, sha256: sha('l') },
    ]);
    const remote = buildManifest(NAME, 'directory', [
      { path: 'same', size: 1, sha256: sha('s') },
      { path: 'hash', size: 2, sha256: sha('h2') },
      { path: 'size', size: 33, sha256: sha('z') },
      { path: 'remote-only', size: 5, sha256: sha('r') },
    ]);
    const diff = diffManifests(local, remote);
    expect(diff).toHaveLength(4);
    expect(diff).toEqual(
      expect.arrayContaining([
        { path: 'hash', local: { size: 2, sha256: sha('h1') }, remote: { size: 2, sha256: sha('h2') } },
        { path: 'size', local: { size: 3, sha256: sha('z') }, remote: { size: 33, sha256: sha('z') } },
        { path: 'local-only', local: { size: 4, sha256: sha('l') }, remote: undefined },
        { path: 'remote-only', local: undefined, remote: { size: 5, sha256: sha('r') } },
      ]),
    );
  });
});

describe('keys and totals', () => {
  it('places files and the manifest under the snapshot name', () => {
    expect(fileKey(NAME, 'sub/a.bin')).toBe(`${NAME}/sub/a.bin`);
    expect(manifestKey(NAME)).toBe(`${NAME}/.memsync-manifest.json`);
  });

  it('sums file sizes', () => {
    expect(totalBytes(buildManifest(NAME, 'directory', files))).toBe(60);
    expect(totalBytes(buildManifest(NAME, 'directory', []))).toBe(0);
  });
});
