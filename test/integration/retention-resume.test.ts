// A retention deletion cut short by the end of the process is finished by the next start,
// and incomplete snapshots retention never started deleting stay.
import { createHash } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import type { Memsync } from '../../src/app.js';
import { AppError } from '../../src/errors.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import { buildManifest, serializeManifest } from '../../src/snapshot/manifest.js';
import { PREFIX, useEmbeddedMemsync, waitFor, wrapStore } from '../helpers/embedded-memsync.js';

const world = useEmbeddedMemsync('retention-resume');
const MANIFEST = '.memsync-manifest.json';
const OLD = 'auto_20250101_000000';
const NEW = 'auto_20250102_000000';
/** Files without a manifest, written by another tool: never memsync's to delete. */
const FOREIGN = 'auto_20240101_000000';
const FILES = { 'metadata.json': '{"m":1}', 'config.json': '{"c":1}' };

async function putObject(key: string, body: string | Buffer): Promise<void> {
  await world.client.send(new PutObjectCommand({ Bucket: world.bucket, Key: `${PREFIX}${key}`, Body: body }));
}

async function seedComplete(name: string): Promise<void> {
  for (const [file, content] of Object.entries(FILES)) await putObject(`${name}/${file}`, content);
  const files = Object.entries(FILES).map(([file, content]) => ({ path: file, size: Buffer.byteLength(content), sha256: createHash('sha256').update(content).digest('hex') }));
  await putObject(`${name}/${MANIFEST}`, serializeManifest(buildManifest(name, 'directory', files)));
}

async function retentionRan(memsync: Memsync): Promise<void> {
  await waitFor('a retention run', async () => {
    const body = (await memsync.server.inject({ url: '/sync/status' })).json() as { retention: { lastRunAt: string | null } };
    return body.retention.lastRunAt === null ? undefined : true;
  });
}

describe('retention across a restart', () => {
  it('finishes the deletion the previous process left half done', async () => {
    await seedComplete(OLD);
    await seedComplete(NEW);
    await putObject(`${FOREIGN}/metadata.json`, 'another tool');
    const policy = { CLOUD_SYNC_RETENTION: 'last=1' };

    const first = await world.start(policy, (config) => {
      const real = new S3RemoteStore({ ...config.s3, partsInFlight: 2 });
      return wrapStore(real, {
        delete: async (key) => {
          if (key === `${OLD}/metadata.json`) throw new AppError('remote_unavailable', `delete ${key}: connection reset`);
          await real.delete(key);
        },
      });
    });
    await retentionRan(first);
    const between = await world.keys();
    expect(between).not.toContain(`${OLD}/${MANIFEST}`);
    expect(between).toContain(`${OLD}/metadata.json`);
    await world.stop(first);

    const second = await world.start(policy);
    await retentionRan(second);
    expect(await world.keys()).toEqual([`${FOREIGN}/metadata.json`, ...Object.keys(FILES).map((file) => `${NEW}/${file}`), `${NEW}/${MANIFEST}`].sort());
  });
});
