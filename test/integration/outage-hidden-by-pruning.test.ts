// The memory service prunes every backup whose upload hangs on an unresponsive store before any
// request has timed out: the uploads end quietly as cancelled, yet the outage must still show in
// status, alerts and metrics.
import { rm } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import { FaultProxy, type Fault } from '../helpers/fault-proxy.js';
import { parseExposition, sampleValue } from '../helpers/prometheus.js';
import { testServer } from '../helpers/s3.js';
import { statusOf, useEmbeddedMemsync, waitFor, wrapStore, writeSnapshot } from '../helpers/embedded-memsync.js';

const world = useEmbeddedMemsync('hidden-outage');
const SNAPSHOT = 'auto_20260303_000000';
/** Long enough for the prune to come first, short enough for the test (default: 30 s). */
const IDLE_TIMEOUT_MS = 6_000;

/** A webhook receiver on 127.0.0.1 collecting alert bodies. */
async function receiver(): Promise<{ url: string; alerts: Record<string, unknown>[] }> {
  const alerts: Record<string, unknown>[] = [];
  const server = createServer((request: IncomingMessage, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      alerts.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>);
      response.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  world.onCleanup(() => new Promise((resolve) => server.close(() => resolve())));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return { url: `http://127.0.0.1:${address.port}/hook`, alerts };
}

describe('an outage whose uploads were all pruned before a request timed out', () => {
  it('is reported in status, alerts and metrics', async () => {
    const hook = await receiver();
    const endpoint = new URL(testServer().endpoint);
    let fault: Fault = 'none';
    const proxy = await FaultProxy.start({ target: { host: endpoint.hostname, port: Number(endpoint.port) }, choose: () => fault, random: Math.random });
    world.onCleanup(() => proxy.stop());
    const memsync = await world.start({ CLOUD_SYNC_NOTIFY_URL: hook.url }, (config) => {
      const real = new S3RemoteStore({ ...config.s3, endpoint: proxy.url, partsInFlight: 2, idleTimeoutMs: IDLE_TIMEOUT_MS });
      return wrapStore(real, {
        put: (key, body, options) => {
          // The store stops answering just as the backup's first file is sent.
          if (key.startsWith(`${SNAPSHOT}/`)) fault = 'black-hole';
          return real.put(key, body, options);
        },
      });
    });
    await waitFor('the start sweep', async () => ((await statusOf(memsync)).counters.sweeps === 1 ? true : undefined));

    // A backup arrives and its upload hangs on the store.
    await writeSnapshot(world.backupDir, SNAPSHOT, { 'metadata.json': '{"m":1}' });
    await waitFor('a request of the upload taken in and never answered', () => (proxy.applied['black-hole'] > 0 ? true : undefined));
    await rm(path.join(world.backupDir, SNAPSHOT), { recursive: true });
    const pruned = await waitFor('the upload cancelled by the prune', async () => {
      const status = await statusOf(memsync);
      return status.counters.prunedBeforeUpload === 1 ? status : undefined;
    });
    // The prune came before any request timed out: nothing has been reported yet.
    expect(pruned.remote.available).toBe(true);

    const status = await waitFor('the outage in status', async () => {
      const current = await statusOf(memsync);
      return current.remote.available === false ? current : undefined;
    });
    expect(status.lastError).toMatchObject({ kind: 'remote_unavailable', snapshot: SNAPSHOT });
    const alert = await waitFor('an upload_failed alert', () => hook.alerts.find((a) => a.event === 'upload_failed'));
    expect(alert).toMatchObject({ snapshot: SNAPSHOT, kind: 'remote_unavailable', willRetry: false });
    const metrics = parseExposition((await memsync.server.inject({ url: '/metrics' })).body);
    expect(sampleValue(metrics, 'memsync_remote_available')).toBe(0);
    expect(sampleValue(metrics, 'memsync_upload_failures_total', { reason: 'remote_unavailable' })).toBe(1);
    expect(sampleValue(metrics, 'memsync_pruned_before_upload_total')).toBe(1);
  });
});
