import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { listRemoteIndex } from '../../src/remote/remote-index.js';
import { RetentionRunner } from '../../src/retention/apply.js';

const MANIFEST = '.memsync-manifest.json';

function seed(store: MemoryRemoteStore, name: string, complete = true): void {
  const keys = [`${name}/metadata.json`, `${name}/db/data.bin`, ...(complete ? [`${name}/${MANIFEST}`] : [])];
  for (const key of keys) store.objects.set(key, { bytes: Buffer.from(key), etag: 'e', metadata: {}, lastModifiedMs: 0 });
}

/** Records deletions in order, optionally failing one key. */
class RecordingStore extends MemoryRemoteStore {
  readonly deleted: string[] = [];
  failKey: string | undefined;
  override async delete(key: string): Promise<void> {
    if (key === this.failKey) throw new AppError('remote_unavailable', `delete ${key}: connection reset`);
    this.deleted.push(key);
    await super.delete(key);
  }
}

const remaining = (store: MemoryRemoteStore): string[] => [...new Set([...store.objects.keys()].map((k) => k.split('/')[0] ?? ''))].sort();

describe('RetentionRunner', () => {
  it('deletes each dropped snapshot manifest first, counts it, and updates the index', async () => {
    const store = new RecordingStore();
    for (const day of ['01', '02', '03', '04']) seed(store, `auto_202501${day}_000000`);
    const counted: number[] = [];
    const runner = new RetentionRunner({ policy: { last: 2 }, dryRun: false }, { store, log: silentLogger, now: () => Date.UTC(2025, 0, 5), onDeleted: (n) => counted.push(n) });
    const index = await listRemoteIndex(store, Date.now);
    const report = await runner.run(index, new Map());
    expect(report.deleted.sort()).toEqual(['auto_20250101_000000', 'auto_20250102_000000']);
    expect(remaining(store)).toEqual(['auto_20250103_000000', 'auto_20250104_000000']);
    for (const name of report.deleted) {
      const mine = store.deleted.filter((key) => key.startsWith(`${name}/`));
      expect(mine[0], `${name} first deletion`).toBe(`${name}/${MANIFEST}`);
      expect(mine).toHaveLength(3);
    }
    expect(counted).toEqual([1, 1]);
    expect([...index.snapshots.keys()].sort()).toEqual(['auto_20250103_000000', 'auto_20250104_000000']);
    expect(runner.status()).toMatchObject({ policy: 'last=2', dryRun: false, lastRunAt: '2025-01-05T00:00:00.000Z', kept: 2, wouldDelete: [], lastError: null });
  });

  it('dry run deletes nothing and reports what it would delete', async () => {
    const store = new RecordingStore();
    for (const day of ['01', '02', '03']) seed(store, `auto_202501${day}_000000`);
    const runner = new RetentionRunner({ policy: { last: 1 }, dryRun: true }, { store, log: silentLogger, now: Date.now });
    const report = await runner.run(await listRemoteIndex(store, Date.now), new Map());
    expect(report).toEqual({ deleted: [], wouldDelete: ['auto_20250102_000000', 'auto_20250101_000000'], kept: 1, waitingForLocks: [] });
    expect(store.deleted).toEqual([]);
    expect(runner.status()).toMatchObject({ dryRun: true, lastDeleted: [], wouldDelete: ['auto_20250102_000000', 'auto_20250101_000000'] });
  });

  it('finishes a snapshot whose files it could not all delete on the next run', async () => {
    const store = new RecordingStore();
    for (const day of ['01', '02']) seed(store, `auto_202501${day}_000000`);
    const runner = new RetentionRunner({ policy: { last: 1 }, dryRun: false }, { store, log: silentLogger, now: Date.now });
    store.failKey = 'auto_20250101_000000/metadata.json';
    const first = await runner.run(await listRemoteIndex(store, Date.now), new Map());
    expect(first).toMatchObject({ deleted: [], wouldDelete: ['auto_20250101_000000'] });
    // The manifest went first: what is left is an incomplete snapshot, never listed as complete.
    const between = await listRemoteIndex(store, Date.now);
    expect(between.snapshots.get('auto_20250101_000000')?.complete).toBe(false);
    store.failKey = undefined;
    await runner.run(await listRemoteIndex(store, Date.now), new Map());
    expect(remaining(store)).toEqual(['auto_20250102_000000']);
  });

  it('leaves incomplete snapshots it did not start deleting, and snapshots that became busy', async () => {
    const store = new RecordingStore();
    seed(store, 'auto_20240101_000000', false);
    for (const day of ['01', '02', '03']) seed(store, `auto_202501${day}_000000`);
    const runner = new RetentionRunner({ policy: { last: 1 }, dryRun: false }, { store, log: silentLogger, now: Date.now, isBusy: (name) => name === 'auto_20250101_000000' });
    const report = await runner.run(await listRemoteIndex(store, Date.now), new Map([['auto_20250102_000000', 'conflict']]));
    expect(report).toMatchObject({ deleted: [], wouldDelete: ['auto_20250101_000000'] });
    expect(store.deleted).toEqual([]);
  });
});
