// A snapshot whose upload failed part-way and that the memory service prunes before the retry:
// what that attempt wrote is removed, and nothing memsync did not write.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import { PREFIX, statusOf, useEmbeddedMemsync, waitFor, wrapStore, writeSnapshot } from '../helpers/embedded-memsync.js';

const world = useEmbeddedMemsync('abandoned-attempt');
const SNAPSHOT = 'auto_20260302_000000';

describe('a failed attempt whose snapshot is pruned before the retry', () => {
  it('has its objects removed, while an object another writer put under the name stays', async () => {
    // Another tool's object under the same name: not memsync's, never deleted.
    await world.client.send(new PutObjectCommand({ Bucket: world.bucket, Key: `${PREFIX}${SNAPSHOT}/notes.txt`, Body: 'not memsync' }));
    await writeSnapshot(world.backupDir, SNAPSHOT, { 'metadata.json': '{"m":1}', 'config.json': '{"c":1}' });
    const memsync = await world.start({}, (config) => {
      const real = new S3RemoteStore({ ...config.s3, partsInFlight: 2 });
      return wrapStore(real, {
        put: async (key, body, options) => {
          if (key === `${SNAPSHOT}/config.json`) throw new AppError('remote_unavailable', `put ${key}: simulated outage`);
          await real.put(key, body, options);
        },
      });
    });
    await waitFor('the failed upload', async () => ((await statusOf(memsync)).lastError?.snapshot === SNAPSHOT ? true : undefined));
    expect(await world.keys()).toEqual([`${SNAPSHOT}/metadata.json`, `${SNAPSHOT}/notes.txt`]);

    await rm(path.join(world.backupDir, SNAPSHOT), { recursive: true });
    const left = await waitFor("the attempt's objects removed", async () => {
      const keys = await world.keys();
      return keys.includes(`${SNAPSHOT}/metadata.json`) ? undefined : keys;
    }, 20_000);
    expect(left).toEqual([`${SNAPSHOT}/notes.txt`]);
  });
});
