// The conditional-write probe runs at start; when the store does not answer then, it runs once
// the store answers, before the first upload that relies on what it finds.
import { describe, expect, it } from 'vitest';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import { PROBE_KEY_PREFIX } from '../../src/remote/conditional-writes.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { skipUnless, testServer } from '../helpers/s3.js';
import { statusOf, useEmbeddedMemsync, waitFor, wrapStore, writeSnapshot } from '../helpers/embedded-memsync.js';

const world = useEmbeddedMemsync('late-probe');
const SNAPSHOT = 'auto_20260301_000000';

describe('conditional-write probe', () => {
  it.skipIf(skipUnless('conditionalWrites'))('runs once the store answers when it was unreachable at start, before the first upload', async () => {
    const endpoint = new URL(testServer().endpoint);
    let down = true;
    const proxy = await FaultProxy.start({ target: { host: endpoint.hostname, port: Number(endpoint.port) }, choose: () => (down ? 'http-503' : 'none'), random: Math.random });
    world.onCleanup(() => proxy.stop());
    await writeSnapshot(world.backupDir, SNAPSHOT, { 'metadata.json': '{"m":1}', 'config.json': '{"c":1}' });

    const puts: string[] = [];
    const memsync = await world.start({}, (config) => {
      const real = new S3RemoteStore({ ...config.s3, endpoint: proxy.url, partsInFlight: 2 });
      return wrapStore(real, {
        put: async (key, body, options) => {
          puts.push(key);
          await real.put(key, body, options);
        },
      });
    });
    expect((await statusOf(memsync)).conditionalWrites).toBe('unknown');

    down = false;
    await waitFor('the snapshot uploaded once the store answers', async () => ((await statusOf(memsync)).lastSuccess?.snapshot === SNAPSHOT ? true : undefined));
    expect((await statusOf(memsync)).conditionalWrites).toBe('honoured');
    // The probe's writes come before any write of the snapshot, since its manifest is written on what the probe found.
    const firstProbe = puts.findIndex((key) => key.startsWith(PROBE_KEY_PREFIX));
    const firstSnapshotWrite = puts.findIndex((key) => key.startsWith(`${SNAPSHOT}/`));
    expect(firstProbe).toBeGreaterThanOrEqual(0);
    expect(firstProbe).toBeLessThan(firstSnapshotWrite);
  });
});
