// What the directory store promises beyond the shared contract: a crash never leaves a visible
// partial object, an existing object is never replaced, the folder is a plain copy of the keys,
// and an ETag follows the bytes even when another program changed them.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { FsRemoteStore } from '../../src/remote/fs-store.js';
import type { PutOptions, RemoteObject, RemoteStore } from '../../src/remote/store.js';
import { normalizeEtag } from '../../src/snapshot/digest.js';
import { tempDir } from '../helpers/tmp.js';

const PREFIX = 'memories/';
const PROJECT_DIR = path.resolve(import.meta.dirname, '../..');

function options(bytes: Buffer, overrides: Partial<PutOptions> = {}): PutOptions {
  return { sizeBytes: bytes.length, md5Hex: undefined, partSizeBytes: undefined, ifNoneMatch: true, metadata: {}, signal: undefined, onProgress: undefined, ...overrides };
}

const md5Hex = (bytes: Buffer): string => createHash('md5').update(bytes).digest('hex');

async function listAll(store: RemoteStore, keyPrefix = ''): Promise<RemoteObject[]> {
  const objects: RemoteObject[] = [];
  for await (const page of store.listObjects(keyPrefix)) objects.push(...page);
  return objects;
}

/** Every file under `dir`, relative, '/'-separated. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'))
    .sort();
}

async function storeIn(): Promise<{ directory: string; root: string; store: FsRemoteStore }> {
  const directory = await tempDir('memsync-fs-store');
  return { directory, root: path.join(directory, PREFIX), store: new FsRemoteStore({ directory, prefix: PREFIX }) };
}

function runUntilExit(args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: PROJECT_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

describe('FsRemoteStore', () => {
  it('a crash between writing the temporary file and putting it in place leaves no visible object, only an unfinished upload that abort removes', async () => {
    const { directory, root, store } = await storeIn();
    const key = 'auto_20261125_020000/index.faiss';
    const size = 3 * 1024 * 1024;
    const run = await runUntilExit(['test/helpers/fs-store-crash-child.ts', directory, PREFIX, key, String(size)]);
    expect(run.signal, run.stderr).toBe('SIGKILL');
    expect(run.stdout).not.toContain('placed');

    expect(await store.head(key)).toBeUndefined();
    expect(await listAll(store)).toEqual([]);
    const uploads = await store.listMultipartUploads('');
    expect(uploads.map((u) => u.key)).toEqual([key]);
    const upload = uploads[0] as (typeof uploads)[number];
    // Every byte was written, yet nothing under a real name: only the temporary dot-file.
    expect((await stat(path.join(root, 'auto_20261125_020000', upload.uploadId))).size).toBe(size);
    expect((await filesUnder(root)).filter((file) => !path.basename(file).startsWith('.'))).toEqual([]);

    await store.abortMultipartUpload(upload);
    expect(await store.listMultipartUploads('')).toEqual([]);
    const bytes = Buffer.from('written after the crash');
    await store.put(key, () => bytes, options(bytes));
    expect((await readFile(path.join(root, key))).equals(bytes)).toBe(true);
  });

  it('never replaces an existing object with ifNoneMatch: conflict, and bytes, ETag and metadata stay the first writer\'s', async () => {
    const { store } = await storeIn();
    const key = 'auto_20261125_020000/.memsync-claim';
    const first = Buffer.from('first writer');
    await store.put(key, () => first, options(first, { metadata: { 'memsync-agent': 'first' } }));
    const second = Buffer.from('second writer, other bytes');
    const error = await store.put(key, () => second, options(second, { metadata: { 'memsync-agent': 'second' } })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).kind).toBe('conflict');
    expect(await store.head(key)).toEqual({ size: first.length, etag: `"${md5Hex(first)}"`, metadata: { 'memsync-agent': 'first' } });
    expect((await store.listMultipartUploads('')).length).toBe(0);
  });

  it('of writers racing for one name with ifNoneMatch, exactly one wins and its object is whole', async () => {
    const { store } = await storeIn();
    const key = 'auto_20261125_020000/metadata.json';
    const bodies = Array.from({ length: 8 }, () => randomBytes(256 * 1024));
    const results = await Promise.allSettled(bodies.map((bytes, i) => store.put(key, () => bytes, options(bytes, { metadata: { 'memsync-agent': `agent-${i}` } }))));
    const winners = results.flatMap((result, i) => (result.status === 'fulfilled' ? [i] : []));
    expect(winners).toHaveLength(1);
    for (const result of results) if (result.status === 'rejected') expect((result.reason as AppError).kind).toBe('conflict');
    const winner = winners[0] as number;
    const head = await store.head(key);
    expect(head).toEqual({ size: (bodies[winner] as Buffer).length, etag: `"${md5Hex(bodies[winner] as Buffer)}"`, metadata: { 'memsync-agent': `agent-${winner}` } });
    const chunks: Buffer[] = [];
    for await (const chunk of (await store.get(key)) as AsyncIterable<Buffer>) chunks.push(chunk);
    const stored = Buffer.concat(chunks);
    expect(stored.equals(bodies[winner] as Buffer)).toBe(true);
  });

  it('the folder is a plain copy of the keys: each object a file of its bytes, the store\'s own files are dot-files no listing shows', async () => {
    const { root, store } = await storeIn();
    const objects = { 'auto_20261125_020000/metadata.json': Buffer.from('{"memories":[]}'), 'auto_20261125_020000/.memsync-manifest.json': Buffer.from('{}'), 'dump_20261125_020000.tar/dump_20261125_020000.tar': randomBytes(1000) };
    for (const [key, bytes] of Object.entries(objects)) await store.put(key, () => bytes, options(bytes));
    for (const [key, bytes] of Object.entries(objects)) expect((await readFile(path.join(root, key))).equals(bytes), key).toBe(true);
    const own = (file: string): boolean => /^\.memsync-(object\.|tmp-)/.test(path.basename(file));
    expect((await filesUnder(root)).filter((file) => !own(file))).toEqual(Object.keys(objects).sort());
    expect((await listAll(store)).map((o) => o.key)).toEqual(Object.keys(objects).sort());
    // Deleting every object leaves no folder behind, as a bucket has none.
    for (const key of Object.keys(objects)) await store.delete(key);
    expect(await readdir(root)).toEqual([]);
  });

  it('an object changed by another program answers with the MD5 of its bytes now and no metadata: its ETag follows the content', async () => {
    const { root, store } = await storeIn();
    const key = 'auto_20261125_020000/config.json';
    const bytes = Buffer.from('{"dimension": 384}');
    await store.put(key, () => bytes, options(bytes, { metadata: { 'memsync-agent': 'me' } }));
    const edited = Buffer.from('{"dimension": 768}');
    await writeFile(path.join(root, key), edited);
    expect(await store.head(key)).toEqual({ size: edited.length, etag: `"${md5Hex(edited)}"`, metadata: {} });
    expect((await listAll(store)).map((o) => normalizeEtag(o.etag))).toEqual([md5Hex(edited)]);
    // A file copied in by hand is an object too.
    const copied = Buffer.from('copied by an operator');
    await writeFile(path.join(root, 'auto_20261125_020000', 'notes.txt'), copied);
    expect(await store.head('auto_20261125_020000/notes.txt')).toEqual({ size: copied.length, etag: `"${md5Hex(copied)}"`, metadata: {} });
  });

  it('a file name as long as the file system allows still gets its sidecar and temporary file (their names are shortened)', async () => {
    const { store } = await storeIn();
    const key = `auto_20261125_020000/${'n'.repeat(255)}`;
    const bytes = Buffer.from('long name');
    await store.put(key, () => bytes, options(bytes, { metadata: { 'memsync-agent': 'me' } }));
    expect(await store.head(key)).toEqual({ size: bytes.length, etag: `"${md5Hex(bytes)}"`, metadata: { 'memsync-agent': 'me' } });
    expect((await listAll(store)).map((o) => o.key)).toEqual([key]);
    await store.delete(key);
    expect(await listAll(store)).toEqual([]);
  });

  it('checkAccess refuses a directory that does not exist, naming it', async () => {
    const directory = path.join(await tempDir('memsync-fs-store'), 'not-mounted');
    const error = await new FsRemoteStore({ directory, prefix: PREFIX }).checkAccess().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).kind).toBe('remote_rejected');
    expect((error as AppError).message).toContain(directory);
  });
});
