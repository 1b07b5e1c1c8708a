import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { buildRemoteIndex } from '../../src/remote/remote-index.js';
import type { RemoteHead, RemoteObject } from '../../src/remote/store.js';
import type { FileDigest } from '../../src/snapshot/digest.js';
import { buildManifest } from '../../src/snapshot/manifest.js';
import {
  checkCopySource,
  copyFallback,
  copyPartSize,
  copySourceSnapshots,
  MAX_SINGLE_COPY_BYTES,
  selectCopySources,
  verifyCopy,
  type KnownSnapshot,
} from '../../src/upload/copy-plan.js';

const MIB = 1024 * 1024;
const SHA_A = 'a'.repeat(64);
const SHA_B = 'b'.repeat(64);
const MD5 = '0123456789abcdef0123456789abcdef';
const MULTIPART = 'fedcba9876543210fedcba9876543210-2';
const AGENT = 'agent-1';

function digest(overrides: Partial<FileDigest> = {}): FileDigest {
  return { size: 9 * MIB, sha256: SHA_A, md5: MD5, etag: MULTIPART, partSizeBytes: 8 * MIB, multipart: true, ...overrides };
}

function head(overrides: Partial<RemoteHead> = {}): RemoteHead {
  return { size: 9 * MIB, etag: `"${MULTIPART}"`, metadata: { 'memsync-agent': AGENT, 'memsync-sha256': SHA_A }, ...overrides };
}

function known(name: string, timeMs: number, files: { path: string; size: number; sha256: string }[]): KnownSnapshot {
  return { name, timeMs, manifest: buildManifest(name, 'directory', files) };
}

describe('copySourceSnapshots', () => {
  const objects = (name: string, complete: boolean, etag = MD5): RemoteObject[] => [
    { key: `${name}/index.faiss`, size: 10, etag: '"x"', lastModifiedMs: 0 },
    ...(complete ? [{ key: `${name}/.memsync-manifest.json`, size: 100, etag: `"${etag}"`, lastModifiedMs: 0 }] : []),
  ];

  it('takes the newest complete snapshots up to the limit, never the one being uploaded or incomplete ones', () => {
    const index = buildRemoteIndex(
      [
        ...objects('auto_20250101_000000', true),
        ...objects('auto_20250102_000000', true),
        ...objects('auto_20250103_000000', false),
        ...objects('auto_20250104_000000', true),
        ...objects('auto_20250105_000000', true),
      ],
      0,
    );
    expect(copySourceSnapshots(index, 2, 'auto_20250105_000000').map((s) => s.name)).toEqual(['auto_20250104_000000', 'auto_20250102_000000']);
    expect(copySourceSnapshots(index, 10, 'other').map((s) => s.name)).toEqual(['auto_20250105_000000', 'auto_20250104_000000', 'auto_20250102_000000', 'auto_20250101_000000']);
    expect(copySourceSnapshots(index, 1, 'x')[0]?.manifestEtag).toBe(MD5);
    expect(copySourceSnapshots(buildRemoteIndex([], 0), 5, 'x')).toEqual([]);
  });
});

describe('selectCopySources', () => {
  const file = { path: 'index.faiss', size: 100, sha256: SHA_A };

  it.each([
    {
      case: 'newest snapshot first',
      known: [known('s1', 1, [{ path: 'index.faiss', size: 100, sha256: SHA_A }]), known('s2', 2, [{ path: 'index.faiss', size: 100, sha256: SHA_A }])],
      expected: ['s2/index.faiss', 's1/index.faiss'],
    },
    {
      case: 'within a snapshot, the same path before other paths with the same bytes',
      known: [known('s1', 1, [{ path: 'a-copy.bin', size: 100, sha256: SHA_A }, { path: 'index.faiss', size: 100, sha256: SHA_A }])],
      expected: ['s1/index.faiss', 's1/a-copy.bin'],
    },
    {
      case: 'another path with the same bytes is a source too (renamed file)',
      known: [known('s1', 1, [{ path: 'old/index.faiss', size: 100, sha256: SHA_A }])],
      expected: ['s1/old/index.faiss'],
    },
    {
      case: 'different SHA-256 or size is no source',
      known: [known('s1', 1, [{ path: 'index.faiss', size: 100, sha256: SHA_B }, { path: 'other', size: 101, sha256: SHA_A }])],
      expected: [],
    },
    {
      case: 'the snapshot being uploaded is never its own source',
      known: [known('self', 5, [{ path: 'index.faiss', size: 100, sha256: SHA_A }])],
      expected: [],
    },
    { case: 'nothing known', known: [], expected: [] },
  ])('$case', ({ known: snapshots, expected }) => {
    expect(selectCopySources(file, snapshots, 'self').map((s) => s.key)).toEqual(expected);
  });

  it('never copies an empty file: a PUT of nothing is cheaper', () => {
    const empty = { path: 'empty', size: 0, sha256: SHA_A };
    expect(selectCopySources(empty, [known('s1', 1, [empty])], 'self')).toEqual([]);
  });
});

describe('checkCopySource', () => {
  it.each([
    { case: 'multipart ETag of memsync part size', head: head(), expected: undefined },
    { case: 'plain MD5 (a copy made by CopyObject on AWS, or a single PUT)', head: head({ etag: `"${MD5}"` }), expected: undefined },
    { case: 'gone (deleted by retention)', head: undefined, expected: 'source gone' },
    { case: 'another size', head: head({ size: 5 }), expected: `source has 5 bytes, local file ${9 * MIB}` },
    { case: 'another ETag (replaced, or another part size)', head: head({ etag: '"ffffffffffffffffffffffffffffffff-3"' }), expected: "source ETag ffffffffffffffffffffffffffffffff-3 is not one of the local file's" },
  ])('$case', ({ head: remote, expected }) => {
    expect(checkCopySource(digest(), remote)).toBe(expected);
  });

  it('accepts an ETag memsync noted when it composed and verified an object of this content, and no other', () => {
    const composed = head({ etag: '"ffffffffffffffffffffffffffffffff-3"' });
    expect(checkCopySource(digest(), composed, new Set(['ffffffffffffffffffffffffffffffff-3']))).toBeUndefined();
    expect(checkCopySource(digest(), composed, new Set(['eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-3']))).toBe("source ETag ffffffffffffffffffffffffffffffff-3 is not one of the local file's");
  });
});

describe('verifyCopy', () => {
  it.each([
    { case: 'kept the multipart ETag (Ceph RGW)', head: head(), expected: undefined },
    { case: 'plain MD5 of the whole object (AWS S3)', head: head({ etag: MD5 }), expected: undefined },
    { case: 'missing', head: undefined, expected: 'object missing after copy' },
    { case: 'short', head: head({ size: 1 }), expected: `copy has 1 bytes, expected ${9 * MIB}` },
    { case: 'foreign ETag', head: head({ etag: 'abc' }), expected: `copy's ETag abc is neither ${MD5} nor ${MULTIPART}` },
    { case: "the source's metadata (REPLACE ignored)", head: head({ metadata: { 'memsync-agent': 'someone-else', 'memsync-sha256': SHA_A } }), expected: 'copy did not get memsync metadata (MetadataDirective REPLACE ignored)' },
    { case: 'no metadata', head: head({ metadata: {} }), expected: 'copy did not get memsync metadata (MetadataDirective REPLACE ignored)' },
  ])('$case', ({ head: stored, expected }) => {
    expect(verifyCopy(digest(), AGENT, stored)).toBe(expected);
  });

  it('a single-PUT file accepts only its MD5', () => {
    const single = digest({ size: 100, etag: MD5, multipart: false });
    expect(verifyCopy(single, AGENT, head({ size: 100, etag: MD5 }))).toBeUndefined();
    expect(verifyCopy(single, AGENT, head({ size: 100, etag: MULTIPART }))).toMatch(/neither/);
  });
});

describe('copyPartSize', () => {
  it('copies in one request up to 5 GiB and in memsync part size above', () => {
    expect(copyPartSize(digest({ size: MAX_SINGLE_COPY_BYTES }))).toBeUndefined();
    expect(copyPartSize(digest({ size: MAX_SINGLE_COPY_BYTES + 1, partSizeBytes: 8 * MIB }))).toBe(8 * MIB);
  });

  it('copies in parts when the whole-file MD5 was never computed: a one-request copy could get that MD5 as its ETag', () => {
    expect(copyPartSize(digest({ md5: '', partSizeBytes: 8 * MIB }))).toBe(8 * MIB);
    expect(copyPartSize(digest({ md5: '', size: 100, multipart: false }))).toBeUndefined();
  });

  it('never takes an empty ETag for a file whose whole MD5 is unknown', () => {
    const unknownMd5 = digest({ md5: '' });
    expect(checkCopySource(unknownMd5, head({ etag: '' }))).toMatch(/not one of/);
    expect(verifyCopy(unknownMd5, AGENT, head({ etag: '' }))).toMatch(/neither/);
    expect(verifyCopy(unknownMd5, AGENT, head())).toBeUndefined();
  });
});

describe('copyFallback', () => {
  it.each([
    { case: 'source deleted meanwhile', error: new AppError('not_found', 'copy a to b: NoSuchKey (HTTP 404)', { details: { code: 'NoSuchKey' } }), expected: { reason: 'source gone', scope: 'source' } },
    { case: 'source changed (precondition)', error: new AppError('conflict', 'copy: PreconditionFailed (HTTP 412)'), expected: { reason: 'source changed', scope: 'source' } },
    { case: 'not implemented, by code', error: new AppError('remote_rejected', 'copy: NotImplemented (HTTP 501)', { details: { code: 'NotImplemented' } }), expected: { reason: 'copies not implemented by the server', scope: 'all' } },
    { case: 'not implemented, by status only', error: new AppError('remote_rejected', 'copy: UnknownError (HTTP 501)'), expected: { reason: 'copies not implemented by the server', scope: 'all' } },
    { case: 'access denied on the source', error: new AppError('remote_rejected', 'copy: AccessDenied (HTTP 403)', { details: { code: 'AccessDenied' } }), expected: { reason: 'copy refused (AccessDenied)', scope: 'file' } },
    { case: 'other refusal without a code', error: new AppError('remote_rejected', 'copy: something'), expected: { reason: 'copy refused (rejected)', scope: 'file' } },
    { case: 'store unreachable: not a copy problem', error: new AppError('remote_unavailable', 'copy: ECONNRESET'), expected: undefined },
    { case: 'cancelled: not a copy problem', error: new AppError('cancelled', 'copy: aborted'), expected: undefined },
  ])('$case', ({ error, expected }) => {
    expect(copyFallback(error)).toEqual(expected);
  });
});
