// A short link outage late in a large file's upload: only the parts cut by it are sent again,
// within the same multipart upload, and the object the server assembles is the file.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GetObjectCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildMemsync, type Memsync } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import { statSnapshot } from '../../src/snapshot/scan.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { recordingLogger, type LogLine } from '../helpers/recording-logger.js';
import { createTestBucket, emptyAndDeleteBucket, s3ClientFor } from '../helpers/s3-fixture.js';
import { s3Env, testServer } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';

const server = testServer();
const PREFIX = 'memories/';
const MIB = 1024 * 1024;
/** 8 parts of 8 MiB (memsync's part size for this file). */
const FILE_BYTES = 64 * MIB;
/** The link drops once this much has gone upstream: most of the file, parts still in flight. */
const CUT_AFTER_BYTES = 52 * MIB;
const OUTAGE_MS = 4000;
/** Two parts in flight: at most two parts' worth of bytes are cut mid-way and sent again. */
const PARTS_IN_FLIGHT = 2;
/**
 * Request retries whose waits add up to well over the outage whatever the jitter draws (at
 * least 0.25 + 0.5 + 1 + 2 + 2 + ... s), so the outcome depends on what is resent, not on luck.
 */
const RETRY = { attempts: 10, baseDelayMs: 500, maxDelayMs: 4000 };

let client: S3Client;
let bucket: string | undefined;
let proxy: FaultProxy | undefined;
const running: Memsync[] = [];

beforeAll(() => {
  client = s3ClientFor(server);
});
afterAll(() => client?.destroy());
afterEach(async () => {
  for (const memsync of running.splice(0)) await memsync.stop();
  await proxy?.stop();
  proxy = undefined;
  if (bucket !== undefined) await emptyAndDeleteBucket(server, bucket);
  bucket = undefined;
});

async function sha256OfObject(forBucket: string, key: string): Promise<string> {
  const answer = await client.send(new GetObjectCommand({ Bucket: forBucket, Key: key }));
  const hash = createHash('sha256');
  for await (const chunk of answer.Body as AsyncIterable<Buffer>) hash.update(chunk);
  return hash.digest('hex');
}

describe(`a link outage during a multipart upload, on ${server.kind}`, () => {
  it('resends only the parts it cut: the wire carries well under twice the file, and the object is the file', async () => {
    bucket = await createTestBucket(server, 'part-retry');
    const root = await tempDir('memsync-part-retry');
    const backupDir = path.join(root, 'backups');
    const name = 'auto_20260101_000001';
    const content = randomBytes(FILE_BYTES);
    await mkdir(path.join(backupDir, name), { recursive: true });
    await writeFile(path.join(backupDir, name, 'config.json'), '{"dim":384}');
    await writeFile(path.join(backupDir, name, 'memory.bin'), content);

    const endpoint = new URL(server.endpoint);
    proxy = await FaultProxy.start({ target: { host: endpoint.hostname, port: Number(endpoint.port) }, choose: () => 'none', random: Math.random });
    const config = loadConfig({
      ...s3Env(server, bucket),
      CLOUD_SYNC_ENDPOINT: proxy.url,
      CLOUD_SYNC_PREFIX: PREFIX,
      CLOUD_SYNC_BACKUP_DIR: backupDir,
      CLOUD_SYNC_STATE_DIR: path.join(root, 'state'),
      CLOUD_SYNC_SCHEDULE: '0 0 1 1 *',
    });
    const store = new S3RemoteStore({ ...config.s3, partsInFlight: PARTS_IN_FLIGHT });
    const logs: LogLine[] = [];
    const memsync = await buildMemsync(config, recordingLogger(logs), { store, retry: RETRY });
    running.push(memsync);
    const agent = memsync.agent;
    if (agent === undefined) throw new Error('sync is enabled: expected an agent');

    let outageEnded = false;
    const cutting = proxy.whenUpstreamBytes(CUT_AFTER_BYTES).then(() =>
      proxy?.cutFor(OUTAGE_MS, () => {
        outageEnded = true;
      }),
    );
    const outcome = await agent.upload(await statSnapshot(backupDir, name));
    await cutting;

    expect(outageEnded).toBe(true);
    expect(outcome?.outcome, agent.lastErrorFor(name)).toBe('uploaded');
    const carried = proxy.upstreamBytes / FILE_BYTES;
    expect(carried, `the proxy carried ${(proxy.upstreamBytes / MIB).toFixed(1)} MiB upstream for a ${FILE_BYTES / MIB} MiB file`).toBeLessThan(1.4);
    const key = `${PREFIX}${name}/memory.bin`;
    expect(await sha256OfObject(bucket, key)).toBe(createHash('sha256').update(content).digest('hex'));
    // What an operator sees meanwhile: the part named in a retry line, not the whole file's upload.
    expect(logs.some((line) => line.message === 'retrying' && /part \d+ of \d+/.test(String(line.fields.operation)))).toBe(true);
    const open = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: PREFIX }));
    expect(open.Uploads ?? []).toEqual([]);
  }, 180_000);
});
