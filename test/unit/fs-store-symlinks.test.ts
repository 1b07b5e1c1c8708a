// The directory store never follows a symbolic link below its directory: a link planted in the
// store (a snapshot folder, an object, the prefix) is refused, and no write, copy, composition,
// read or delete ever reaches the place it points to.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { FsRemoteStore } from '../../src/remote/fs-store.js';
import type { ComposeOptions, CopyOptions, FileBody, PutOptions, RemoteObject, RemoteStore } from '../../src/remote/store.js';
import { tempDir } from '../helpers/tmp.js';

const PREFIX = 'memories/';
const SNAPSHOT = 'auto_20260101_000000';

const md5Hex = (bytes: Buffer): string => createHash('md5').update(bytes).digest('hex');

function putOptions(bytes: Buffer, overrides: Partial<PutOptions> = {}): PutOptions {
  return { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: false, metadata: {}, signal: undefined, onProgress: undefined, ...overrides };
}

function copyOptions(bytes: Buffer): CopyOptions {
  return { sizeBytes: bytes.length, partSizeBytes: undefined, sourceEtag: `"${md5Hex(bytes)}"`, metadata: {}, signal: undefined };
}

function bodyOver(bytes: Buffer): FileBody {
  return { kind: 'file', read: async (target, position) => void bytes.copy(target, 0, position, position + target.length) };
}

/** A composition of the whole of `source` (copied) followed by `tail` (sent). */
function composeOptions(sourceKey: string, source: Buffer, tail: Buffer): ComposeOptions {
  const whole = Buffer.concat([source, tail]);
  return {
    sourceKey,
    sourceEtag: `"${md5Hex(source)}"`,
    parts: [{ kind: 'send', targetStart: 0, length: whole.length, md5Hex: md5Hex(whole) }],
    body: bodyOver(whole),
    metadata: {},
    signal: undefined,
  };
}

/** Every file under `dir` with its bytes (relative names): what must not change. */
async function contentsOf(dir: string): Promise<Record<string, string>> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries.filter((entry) => entry.isFile()).map((entry) => path.join(entry.parentPath, entry.name));
  return Object.fromEntries(await Promise.all(files.map(async (file) => [path.relative(dir, file), (await readFile(file)).toString('utf8')] as const)));
}

async function listAll(store: RemoteStore, keyPrefix = ''): Promise<RemoteObject[]> {
  const objects: RemoteObject[] = [];
  for await (const page of store.listObjects(keyPrefix)) objects.push(...page);
  return objects;
}

async function refusal(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the operation was refused').toBeInstanceOf(AppError);
  return error as AppError;
}

/** A store and a directory outside it holding a file that a link in the store points at. */
async function setting(): Promise<{ directory: string; root: string; outside: string; store: FsRemoteStore; victim: Buffer }> {
  const parent = await tempDir('memsync-fs-links');
  const directory = path.join(parent, 'share');
  const outside = path.join(parent, 'outside');
  await mkdir(path.join(directory, PREFIX), { recursive: true });
  await mkdir(outside);
  const victim = Buffer.from('not the store\'s to touch');
  await writeFile(path.join(outside, 'metadata.json'), victim);
  return { directory, root: path.join(directory, PREFIX), outside, store: new FsRemoteStore({ directory, prefix: PREFIX }), victim };
}

describe('FsRemoteStore and symbolic links', () => {
  it('a snapshot folder that is a link: put, copy, compose, delete, get, head and abort are refused naming the link, and the outside directory is untouched', async () => {
    const { root, outside, store, victim } = await setting();
    await symlink(outside, path.join(root, SNAPSHOT));
    const source = Buffer.from('an object of an earlier snapshot');
    await store.put('auto_20251231_000000/metadata.json', () => source, putOptions(source));
    const before = await contentsOf(outside);
    const bytes = Buffer.from('{"memories":[]}');

    const attempts: Array<[string, () => Promise<unknown>]> = [
      ['put over', () => store.put(`${SNAPSHOT}/metadata.json`, () => bytes, putOptions(bytes))],
      ['put new', () => store.put(`${SNAPSHOT}/new.json`, () => bytes, putOptions(bytes, { ifNoneMatch: true }))],
      ['copy into', () => store.copy('auto_20251231_000000/metadata.json', `${SNAPSHOT}/copied.json`, copyOptions(source))],
      ['copy from', () => store.copy(`${SNAPSHOT}/metadata.json`, 'auto_20260102_000000/metadata.json', copyOptions(victim))],
      ['compose into', () => store.compose(`${SNAPSHOT}/composed.json`, composeOptions('auto_20251231_000000/metadata.json', source, bytes))],
      ['compose from', () => store.compose('auto_20260102_000000/composed.json', composeOptions(`${SNAPSHOT}/metadata.json`, victim, bytes))],
      ['delete', () => store.delete(`${SNAPSHOT}/metadata.json`)],
      ['get', () => store.get(`${SNAPSHOT}/metadata.json`)],
      ['head', () => store.head(`${SNAPSHOT}/metadata.json`)],
    ];
    for (const [name, attempt] of attempts) {
      const error = await refusal(attempt());
      expect(error.kind, `${name}: ${error.message}`).toBe('remote_rejected');
      expect(error.message, name).toContain(path.join(root, SNAPSHOT));
      expect(error.message, name).toContain('symbolic link');
    }
    expect(await contentsOf(outside)).toEqual(before);
    // The link is no snapshot: listings skip it, with or without a prefix into it.
    expect((await listAll(store)).map((o) => o.key)).toEqual(['auto_20251231_000000/metadata.json']);
    expect(await listAll(store, `${SNAPSHOT}/`)).toEqual([]);
    expect(await store.listMultipartUploads(`${SNAPSHOT}/`)).toEqual([]);
    // Nothing was written into the target directory, not even a temporary file.
    expect(await readdir(outside)).toEqual(['metadata.json']);
  });

  it('a link below a real folder, or the prefix itself a link, is refused just the same', async () => {
    const { directory, root, outside, victim } = await setting();
    await mkdir(path.join(root, SNAPSHOT));
    await symlink(outside, path.join(root, SNAPSHOT, 'nested'));
    const store = new FsRemoteStore({ directory, prefix: PREFIX });
    const bytes = Buffer.from('x');
    const nested = await refusal(store.put(`${SNAPSHOT}/nested/metadata.json`, () => bytes, putOptions(bytes)));
    expect(nested.kind).toBe('remote_rejected');
    expect(nested.message).toContain(path.join(root, SNAPSHOT, 'nested'));

    const linkedPrefix = new FsRemoteStore({ directory, prefix: 'linked/' });
    await symlink(outside, path.join(directory, 'linked'));
    const prefixed = await refusal(linkedPrefix.put(`${SNAPSHOT}/metadata.json`, () => bytes, putOptions(bytes)));
    expect(prefixed.kind).toBe('remote_rejected');
    expect(prefixed.message).toContain(path.join(directory, 'linked'));
    expect(await readdir(outside)).toEqual(['metadata.json']);
    expect((await readFile(path.join(outside, 'metadata.json'))).equals(victim)).toBe(true);
  });

  it('an object that is a link: get is refused, head and listings do not show it, and copy, compose, put and delete never touch its target', async () => {
    const { root, outside, store, victim } = await setting();
    await mkdir(path.join(root, SNAPSHOT));
    const linked = path.join(root, SNAPSHOT, 'metadata.json');
    await symlink(path.join(outside, 'metadata.json'), linked);
    const key = `${SNAPSHOT}/metadata.json`;

    const read = await refusal(store.get(key));
    expect(read.kind).toBe('remote_rejected');
    expect(read.message).toContain(linked);
    expect(await store.head(key)).toBeUndefined();
    expect(await listAll(store)).toEqual([]);
    expect((await refusal(store.copy(key, 'auto_20260102_000000/metadata.json', copyOptions(victim)))).kind).toBe('not_found');
    expect((await refusal(store.compose('auto_20260102_000000/metadata.json', composeOptions(key, victim, Buffer.from('+'))))).kind).toBe('not_found');

    // Copied or composed onto the link's name: the name is taken, nothing is replaced.
    const source = Buffer.from('an object of an earlier snapshot');
    await store.put('auto_20251231_000000/metadata.json', () => source, putOptions(source));
    expect((await refusal(store.copy('auto_20251231_000000/metadata.json', key, copyOptions(source)))).kind).toBe('conflict');
    expect((await refusal(store.compose(key, composeOptions('auto_20251231_000000/metadata.json', source, Buffer.from('+'))))).kind).toBe('conflict');
    expect((await readFile(path.join(outside, 'metadata.json'))).equals(victim)).toBe(true);

    // Deleted: the link goes, its target stays.
    await store.delete(key);
    expect((await readFile(path.join(outside, 'metadata.json'))).equals(victim)).toBe(true);
    // Written over: the link itself is replaced by the object, never the file it pointed to.
    await mkdir(path.dirname(linked), { recursive: true });
    await symlink(path.join(outside, 'metadata.json'), linked);
    const bytes = Buffer.from('the object');
    await store.put(key, () => bytes, putOptions(bytes));
    expect((await readFile(path.join(outside, 'metadata.json'))).equals(victim)).toBe(true);
    expect((await stat(linked)).isFile()).toBe(true);
    expect((await readFile(linked)).equals(bytes)).toBe(true);
  });
});
