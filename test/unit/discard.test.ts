import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { discardObject } from '../../src/remote/discard.js';
import type { RemoteStore } from '../../src/remote/store.js';

/** The calls discardObject makes, and scripted answers for the three it may use. */
function storeWith(answers: { keepsVersions?: () => Promise<boolean>; purge?: (key: string) => Promise<'every-version' | 'current-only'> }): { store: RemoteStore; calls: string[] } {
  const calls: string[] = [];
  const store = {
    delete: async (key: string) => void calls.push(`delete ${key}`),
    ...(answers.keepsVersions === undefined ? {} : { keepsVersions: () => (calls.push('keepsVersions'), answers.keepsVersions!()) }),
    ...(answers.purge === undefined ? {} : { purge: (key: string) => (calls.push(`purge ${key}`), answers.purge!(key)) }),
  } as unknown as RemoteStore;
  return { store, calls };
}

const rejected = (code: string): AppError => new AppError('remote_rejected', `refused (${code})`, { details: { code } });

describe('discardObject', () => {
  it('deletes plainly in a store without versions, asking once', async () => {
    const { store, calls } = storeWith({ keepsVersions: async () => false, purge: async () => 'every-version' });
    await discardObject(store, 'a');
    await discardObject(store, 'b');
    expect(calls).toEqual(['keepsVersions', 'delete a', 'delete b']);
  });

  it('purges every version where the store keeps them', async () => {
    const { store, calls } = storeWith({ keepsVersions: async () => true, purge: async () => 'every-version' });
    await discardObject(store, 'a');
    await discardObject(store, 'b');
    expect(calls).toEqual(['keepsVersions', 'purge a', 'purge b']);
  });

  it('hides a locked object with a delete, and purges the next one again', async () => {
    let first = true;
    const { store, calls } = storeWith({
      keepsVersions: async () => true,
      purge: async () => {
        if (!first) return 'every-version';
        first = false;
        throw rejected('ObjectLocked');
      },
    });
    await discardObject(store, 'a');
    await discardObject(store, 'b');
    expect(calls).toEqual(['keepsVersions', 'purge a', 'delete a', 'purge b']);
  });

  it('falls back to plain deletes for good once purging is denied', async () => {
    const { store, calls } = storeWith({ keepsVersions: async () => true, purge: async () => Promise.reject(rejected('AccessDenied')) });
    await discardObject(store, 'a');
    await discardObject(store, 'b');
    expect(calls).toEqual(['keepsVersions', 'purge a', 'delete a', 'delete b']);
  });

  it('falls back to plain deletes when versions cannot be listed', async () => {
    const { store, calls } = storeWith({ keepsVersions: async () => true, purge: async () => 'current-only' });
    await discardObject(store, 'a');
    await discardObject(store, 'b');
    expect(calls).toEqual(['keepsVersions', 'purge a', 'delete b']);
  });

  it('deletes plainly when it may not ask about versions, and asks again after an outage', async () => {
    const denied = storeWith({ keepsVersions: async () => Promise.reject(rejected('AccessDenied')), purge: async () => 'every-version' });
    await discardObject(denied.store, 'a');
    await discardObject(denied.store, 'b');
    expect(denied.calls).toEqual(['keepsVersions', 'delete a', 'delete b']);

    let down = true;
    const outage = storeWith({ keepsVersions: async () => (down ? Promise.reject(new AppError('remote_unavailable', 'no answer')) : true), purge: async () => 'every-version' });
    await discardObject(outage.store, 'a');
    down = false;
    await discardObject(outage.store, 'b');
    expect(outage.calls).toEqual(['keepsVersions', 'delete a', 'keepsVersions', 'purge b']);
  });

  it('passes other failures of a purge on', async () => {
    const { store } = storeWith({ keepsVersions: async () => true, purge: async () => Promise.reject(new AppError('remote_unavailable', 'no answer')) });
    await expect(discardObject(store, 'a')).rejects.toMatchObject({ kind: 'remote_unavailable' });
  });
});
