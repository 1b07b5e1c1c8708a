import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { MemoryRemoteStore } from '../../src/remote/memory-store.js';
import { removeAbandonedAttempt } from '../../src/upload/abandon.js';
import { METADATA_AGENT } from '../../src/upload/plan.js';

const ME = 'agent-me';
const NAME = 'auto_20260101_000000';

function put(store: MemoryRemoteStore, key: string, agent: string | undefined): void {
  store.objects.set(key, { bytes: Buffer.from(key), etag: 'e', metadata: agent === undefined ? {} : { [METADATA_AGENT]: agent }, lastModifiedMs: 0 });
}

describe('removeAbandonedAttempt', () => {
  it("removes this agent's objects under the name, claim included, and nothing of anyone else", async () => {
    const store = new MemoryRemoteStore();
    put(store, `${NAME}/metadata.json`, ME);
    put(store, `${NAME}/.memsync-claim`, ME);
    put(store, `${NAME}/config.json`, 'agent-other');
    put(store, `${NAME}/notes.txt`, undefined);
    put(store, 'auto_20260101_000001/metadata.json', ME);
    expect(await removeAbandonedAttempt(store, ME, NAME, silentLogger)).toBe(2);
    expect([...store.objects.keys()].sort()).toEqual([`${NAME}/config.json`, `${NAME}/notes.txt`, 'auto_20260101_000001/metadata.json']);
  });

  it.each(['.memsync-manifest.json', '.memsync-manifest.enc'])('touches nothing under a name that holds a manifest (%s): a complete snapshot stays whole', async (manifest) => {
    const store = new MemoryRemoteStore();
    put(store, `${NAME}/metadata.json`, ME);
    put(store, `${NAME}/${manifest}`, 'agent-other');
    expect(await removeAbandonedAttempt(store, ME, NAME, silentLogger)).toBe(0);
    expect(store.objects.size).toBe(2);
  });

  it('stops deleting once another agent completes the name meanwhile (it may have adopted these objects)', async () => {
    const store = new MemoryRemoteStore();
    put(store, `${NAME}/a.bin`, ME);
    put(store, `${NAME}/b.bin`, ME);
    // The other agent writes its manifest right after the first of this agent's objects is looked at.
    const head = store.head.bind(store);
    let heads = 0;
    store.head = async (key) => {
      heads += 1;
      if (heads === 1) put(store, `${NAME}/.memsync-manifest.json`, 'agent-other');
      return head(key);
    };
    expect(await removeAbandonedAttempt(store, ME, NAME, silentLogger)).toBe(0);
    expect([...store.objects.keys()].sort()).toEqual([`${NAME}/.memsync-manifest.json`, `${NAME}/a.bin`, `${NAME}/b.bin`]);
  });
});
