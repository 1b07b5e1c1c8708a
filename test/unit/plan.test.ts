import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { RemoteHead } from '../../src/remote/store.js';
import type { FileDigest } from '../../src/snapshot/digest.js';
import { buildManifest, type ManifestFile } from '../../src/snapshot/manifest.js';
import { decideSnapshot, METADATA_AGENT, planFile, verifyStored, type FileAction } from '../../src/upload/plan.js';

const AGENT = 'agent-1';
const hex = (seed: string, algorithm: 'md5' | 'sha256'): string => createHash(algorithm).update(seed).digest('hex');

const MD5 = hex('local', 'md5');
const OTHER_MD5 = hex('remote', 'md5');
const single: FileDigest = { size: 100, sha256: hex('local', 'sha256'), md5: MD5, etag: MD5, partSizeBytes: 8 * 1024 * 1024, multipart: false };
const MULTI_ETAG = `${hex('parts', 'md5')}-3`;
const multi: FileDigest = { size: 20 * 1024 * 1024, sha256: hex('big', 'sha256'), md5: hex('big', 'md5'), etag: MULTI_ETAG, partSizeBytes: 8 * 1024 * 1024, multipart: true };

const head = (size: number, etag: string, metadata: Record<string, string> = {}): RemoteHead => ({ size, etag, metadata });

describe('planFile', () => {
  it.each<[string, FileDigest, RemoteHead | undefined, FileAction['action'], boolean?]>([
    ['absent', single, undefined, 'upload', false],
    ['absent (multipart)', multi, undefined, 'upload', false],
    ['same size and quoted ETag', single, head(100, `"${MD5}"`), 'skip'],
    ['same size and upper-case ETag', single, head(100, MD5.toUpperCase()), 'skip'],
    ['same size and multipart ETag', multi, head(multi.size, `"${MULTI_ETAG}"`), 'skip'],
    ['identical even if another agent wrote it', single, head(100, MD5, { [METADATA_AGENT]: 'agent-2' }), 'skip'],
    ['own agent, different content', single, head(100, OTHER_MD5, { [METADATA_AGENT]: AGENT }), 'upload', true],
    ['own agent, different size', single, head(99, OTHER_MD5, { [METADATA_AGENT]: AGENT }), 'upload', true],
    ['own agent, multipart ETag', single, head(100, `${OTHER_MD5}-2`, { [METADATA_AGENT]: AGENT }), 'upload', true],
    ['no metadata, size differs', single, head(101, OTHER_MD5), 'conflict'],
    ['foreign agent, size differs', single, head(101, MD5, { [METADATA_AGENT]: 'agent-2' }), 'conflict'],
    ['foreign agent, size differs, multipart ETag', single, head(101, `${OTHER_MD5}-2`, { [METADATA_AGENT]: 'agent-2' }), 'conflict'],
    ['same size, remote multipart ETag (other part size)', single, head(100, `"${OTHER_MD5}-2"`), 'verify-remote'],
    ['same size, non-MD5 ETag (SSE-KMS)', single, head(100, 'abcdef0123'), 'verify-remote'],
    ['same size, local multipart, remote plain MD5', multi, head(multi.size, OTHER_MD5), 'verify-remote'],
    ['same size, local multipart, remote other part count', multi, head(multi.size, `${hex('x', 'md5')}-5`), 'verify-remote'],
    ['same size, plain MD5 differs', single, head(100, `"${OTHER_MD5}"`), 'conflict'],
    ['same size, plain MD5 differs, foreign agent', single, head(100, OTHER_MD5, { [METADATA_AGENT]: 'agent-2' }), 'conflict'],
  ])('%s -> %s', (_label, local, remote, action, replace) => {
    const plan = planFile(local, remote, AGENT);
    expect(plan.action).toBe(action);
    if (plan.action === 'upload') expect(plan.replace).toBe(replace);
    if (plan.action === 'conflict') expect(plan.reason.length).toBeGreaterThan(0);
  });
});

describe('planFile where ETags are no digests (SSE-KMS)', () => {
  // An opaque ETag that happens to look like an MD5, as AWS S3 gives under SSE-KMS.
  const opaque = hex('kms', 'md5');
  it('reads a same-size object of another writer to compare, instead of calling it a conflict', () => {
    expect(planFile(single, head(100, opaque, { [METADATA_AGENT]: 'agent-2' }), AGENT, false).action).toBe('verify-remote');
    expect(planFile(single, head(100, opaque), AGENT, false).action).toBe('verify-remote');
  });
  it('still replaces its own object, skips a proven one and refuses a size that differs', () => {
    expect(planFile(single, head(100, opaque, { [METADATA_AGENT]: AGENT }), AGENT, false)).toEqual({ action: 'upload', replace: true });
    expect(planFile(single, head(100, MD5), AGENT, false).action).toBe('skip');
    expect(planFile(single, head(101, opaque), AGENT, false).action).toBe('conflict');
  });
});

describe('verifyStored', () => {
  it.each<[string, FileDigest, RemoteHead | undefined, boolean]>([
    ['matching single-part object', single, head(100, `"${MD5}"`), true],
    ['matching multipart object', multi, head(multi.size, `"${MULTI_ETAG.toUpperCase()}"`), true],
    ['missing object', single, undefined, false],
    ['wrong size', single, head(99, MD5), false],
    ['wrong ETag', single, head(100, OTHER_MD5), false],
    ['empty ETag', single, head(100, ''), false],
    // Servers such as s3rver report the whole object's MD5 for multipart uploads: the same proof.
    ['multipart object reported with its whole MD5', multi, head(multi.size, multi.md5), true],
    ['multipart object with another MD5', multi, head(multi.size, OTHER_MD5), false],
    // Hashed while sent, a multipart file has no whole-file MD5: an empty ETag must not match that ''.
    ['multipart object without a whole MD5, empty ETag', { ...multi, md5: '' }, head(multi.size, ''), false],
    ['multipart object without a whole MD5, its multipart ETag', { ...multi, md5: '' }, head(multi.size, `"${MULTI_ETAG}"`), true],
  ])('%s -> ok %s', (_label, local, stored, ok) => {
    const problem = verifyStored(local, stored);
    if (ok) expect(problem).toBeUndefined();
    else expect(problem).toEqual(expect.any(String));
  });
});

describe('decideSnapshot', () => {
  const NAME = 'auto_20250101_000000';
  const files: ManifestFile[] = [
    { path: 'a.json', size: 1, sha256: hex('a', 'sha256') },
    { path: 'b.json', size: 2, sha256: hex('b', 'sha256') },
  ];
  const local = buildManifest(NAME, 'directory', files);

  it.each([
    ['no remote manifest', undefined, 'upload'],
    ['same content', buildManifest(NAME, 'directory', [...files].reverse()), 'already-remote'],
    ['different hash', buildManifest(NAME, 'directory', [files[0]!, { ...files[1]!, sha256: hex('c', 'sha256') }]), 'conflict'],
    ['a file fewer', buildManifest(NAME, 'directory', files.slice(0, 1)), 'conflict'],
    ['other kind', buildManifest(NAME, 'file', files), 'conflict'],
  ] as const)('%s -> %s', (_label, remote, decision) => {
    expect(decideSnapshot(local, remote)).toBe(decision);
  });
});
