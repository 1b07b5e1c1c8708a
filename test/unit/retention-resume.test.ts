// A retention deletion cut short (crash, kill, outage) is finished by the next start: the pass
// notes the deletion in the bucket before it begins, so a new process knows which incomplete
// snapshot is its own unfinished work and which it must leave alone.
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { listRemoteIndex } from '../../src/remote/remote-index.js';
import { RetentionRunner } from '../../src/retention/apply.js';

const MANIFEST = '.memsync-manifest.json';
const OLD = 'auto_20250101_000000';
const NEW = 'auto_20250102_000000';
/** Written by another tool (no manifest): memsync never deletes it. */
const FOREIGN = 'auto_20240101_000000';

/** A store whose deletions of one key fail, as when the process dies or the store goes away mid-pass. */
class BreakingStore extends MemoryRemoteStore {
  failKey: string | undefined;
  readonly deleted: string[] = [];
  override async delete(key: string): Promise<void> {
    if (key === this.failKey) throw new AppError('remote_unavailable', `delete ${key}: connection reset`);
    this.deleted.push(key);
    await super.delete(key);
  }
}

function seed(store: MemoryRemoteStore, name: string, complete: boolean): void {
  const keys = [`${name}/metadata.json`, `${name}/index.faiss`, ...(complete ? [`${name}/${MANIFEST}`] : [])];
  for (const key of keys) store.objects.set(key, { bytes: Buffer.from(key), etag: 'e', metadata: {}, lastModifiedMs: 0 });
}

const snapshotNames = (store: MemoryRemoteStore): string[] => [...new Set([...store.objects.keys()].map((key) => key.split('/')[0] ?? ''))].sort();
const runner = (store: MemoryRemoteStore): RetentionRunner => new RetentionRunner({ policy: { last: 1 }, dryRun: false }, { store, log: silentLogger, now: Date.now });

describe('retention after a restart', () => {
  it('finishes a deletion an earlier process left half done, and leaves incomplete snapshots it never started deleting', async () => {
    const store = new BreakingStore();
    seed(store, FOREIGN, false);
    seed(store, OLD, true);
    seed(store, NEW, true);
    store.failKey = `${OLD}/metadata.json`;
    await runner(store).run(await listRemoteIndex(store, Date.now), new Map());
    // The manifest went first; the files stay behind the failure.
    expect(store.objects.has(`${OLD}/${MANIFEST}`)).toBe(false);
    expect(store.objects.has(`${OLD}/index.faiss`) || store.objects.has(`${OLD}/metadata.json`)).toBe(true);

    // A new process: nothing of the first one's memory survives.
    store.failKey = undefined;
    const index = await listRemoteIndex(store, Date.now);
    await runner(store).run(index, new Map());
    expect(snapshotNames(store)).toEqual([FOREIGN, NEW]);
    expect([...store.objects.keys()].filter((key) => key.startsWith(`${FOREIGN}/`))).toHaveLength(2);
    expect(index.snapshots.has(OLD)).toBe(false);
  });

  it("finishing a deletion leaves what was written under the name after it began (another agent's upload under way)", async () => {
    const store = new BreakingStore();
    seed(store, OLD, true);
    seed(store, NEW, true);
    store.failKey = `${OLD}/metadata.json`;
    await runner(store).run(await listRemoteIndex(store, Date.now), new Map());
    const notedAtMs = store.objects.get(`.memsync-deleting/${OLD}`)?.lastModifiedMs ?? 0;
    // Another agent starts uploading the same name: its claim and a first file, newer than the note.
    for (const key of [`${OLD}/.memsync-claim`, `${OLD}/metadata.json`]) {
      store.objects.set(key, { bytes: Buffer.from('theirs'), etag: 'theirs', metadata: { 'memsync-agent': 'agent-other' }, lastModifiedMs: notedAtMs + 60_000 });
    }
    store.failKey = undefined;
    await runner(store).run(await listRemoteIndex(store, Date.now), new Map());
    expect([...store.objects.keys()].filter((key) => key.startsWith(`${OLD}/`)).sort()).toEqual([`${OLD}/.memsync-claim`, `${OLD}/metadata.json`]);
    expect(store.objects.get(`${OLD}/metadata.json`)?.etag).toBe('theirs');
    expect(store.objects.has(`.memsync-deleting/${OLD}`)).toBe(false);
  });

  it('leaves the leftovers of a snapshot that is local again (being uploaded anew) until it is not', async () => {
    const store = new BreakingStore();
    seed(store, OLD, true);
    seed(store, NEW, true);
    store.failKey = `${OLD}/metadata.json`;
    await runner(store).run(await listRemoteIndex(store, Date.now), new Map());
    store.failKey = undefined;
    await runner(store).run(await listRemoteIndex(store, Date.now), new Map([[OLD, 'local']]));
    expect(store.objects.has(`${OLD}/metadata.json`)).toBe(true);
    await runner(store).run(await listRemoteIndex(store, Date.now), new Map());
    expect(snapshotNames(store)).toEqual([NEW]);
  });

  it('never deletes a complete snapshot on the strength of a deletion note alone: the policy decides again', async () => {
    const store = new BreakingStore();
    seed(store, OLD, true);
    seed(store, NEW, true);
    // Cut short before the manifest went: the snapshot is still complete.
    store.failKey = `${OLD}/${MANIFEST}`;
    await runner(store).run(await listRemoteIndex(store, Date.now), new Map());
    expect(store.objects.has(`${OLD}/${MANIFEST}`)).toBe(true);
    store.failKey = undefined;
    // Now protected (say, being restored): it stays whole, and nothing of memsync's own is left behind.
    await runner(store).run(await listRemoteIndex(store, Date.now), new Map([[OLD, 'restoring']]));
    expect([...store.objects.keys()].sort()).toEqual([OLD, NEW].flatMap((name) => [`${name}/${MANIFEST}`, `${name}/index.faiss`, `${name}/metadata.json`]));
  });
});
