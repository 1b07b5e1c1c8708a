// The probes the Kubernetes example gives memsync, asked over HTTP while the store is unreachable.
// A sidecar's readiness is its pod's: a probe that followed the store would take the memory
// service out of its Service during an S3 outage. The probes must follow memsync's own health
// (watcher, state directory, backup files) and nothing else; plain /readyz keeps the store.
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { buildMemsync, type BuildOptions, type Memsync } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { writeFileAtomic } from '../../src/state/atomic-file.js';
import { tempDir } from '../helpers/tmp.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const K8S_FILE = path.join(ROOT, 'deploy', 'kubernetes', 'memsync-sidecar.yaml');

interface Probe {
  httpGet?: { path: string };
}
interface Container {
  name: string;
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
}
interface Workload {
  kind: string;
  spec?: { template?: { spec: { containers?: Container[]; initContainers?: Container[] } } };
}

/** The paths of memsync's probes, as the kubelet would request them (query string included). */
function sidecarProbePaths(): { startup: string; liveness: string; readiness: string } {
  const objects = parseAllDocuments(readFileSync(K8S_FILE, 'utf8')).map((doc) => doc.toJS() as Workload);
  const pod = objects.find((o) => o.kind === 'Deployment')?.spec?.template?.spec;
  const memsync = [...(pod?.containers ?? []), ...(pod?.initContainers ?? [])].find((c) => c.name === 'memsync');
  const probePath = (probe: Probe | undefined, which: string): string => {
    const found = probe?.httpGet?.path;
    expect(found, `memsync's ${which} probe is an HTTP GET`).toBeDefined();
    return found as string;
  };
  return {
    startup: probePath(memsync?.startupProbe, 'startup'),
    liveness: probePath(memsync?.livenessProbe, 'liveness'),
    readiness: probePath(memsync?.readinessProbe, 'readiness'),
  };
}

/** State-file writes that fail on demand, as a full or read-only disk would make them. */
function switchableWrites(): { refuse: boolean; write: NonNullable<BuildOptions['writeStateFile']> } {
  const control = {
    refuse: false,
    write: async (filePath: string, content: string): Promise<void> => {
      if (control.refuse) throw Object.assign(new Error(`ENOSPC: no space left on device, open '${filePath}'`), { code: 'ENOSPC' });
      await writeFileAtomic(filePath, content);
    },
  };
  return control;
}

const running: Memsync[] = [];
afterEach(async () => {
  for (const memsync of running.splice(0)) await memsync.stop();
});

async function unreachableStoreConfig(): Promise<Config> {
  const root = await tempDir('sidecar-readiness');
  await mkdir(path.join(root, 'backups'));
  return loadConfig({
    CLOUD_SYNC_ENABLED: 'true',
    CLOUD_SYNC_BUCKET: 'sidecar-readiness',
    CLOUD_SYNC_BACKUP_DIR: path.join(root, 'backups'),
    CLOUD_SYNC_STATE_DIR: path.join(root, 'state'),
    // Nothing listens there: every call to the store is refused at once, as during an outage.
    CLOUD_SYNC_ENDPOINT: 'http://127.0.0.1:9',
    CLOUD_SYNC_ACCESS_KEY: 'unreachable',
    CLOUD_SYNC_SECRET_KEY: 'unreachable',
    CLOUD_SYNC_PORT: '0',
  });
}

/** memsync with its real S3 store, started, listening, and knowing the store unreachable. */
async function startMemsync(config: Config, options: BuildOptions = {}): Promise<{ memsync: Memsync; get: (url: string) => Promise<{ status: number; body: ReadyBody }> }> {
  const memsync = await buildMemsync(config, silentLogger, options);
  running.push(memsync);
  await memsync.start();
  expect(memsync.agent?.health.available, 'the store is known to be unreachable').toBe(false);
  const port = (memsync.server.server.address() as AddressInfo).port;
  const get = async (url: string): Promise<{ status: number; body: ReadyBody }> => {
    const response = await fetch(`http://127.0.0.1:${port}${url}`);
    return { status: response.status, body: (await response.json()) as ReadyBody };
  };
  return { memsync, get };
}

interface ReadyBody {
  ready?: boolean;
  checks?: Record<string, boolean>;
  excluded?: string[];
  error?: string;
}

describe('the Kubernetes sidecar\'s probes while the store is unreachable', () => {
  it('answer 200 while memsync itself is healthy; plain /readyz still reports the store', async () => {
    const probes = sidecarProbePaths();
    const { get } = await startMemsync(await unreachableStoreConfig());

    expect((await get(probes.startup)).status, `startup probe ${probes.startup}`).toBe(200);
    expect((await get(probes.liveness)).status, `liveness probe ${probes.liveness}`).toBe(200);
    const sidecar = await get(probes.readiness);
    expect(sidecar.status, `readiness probe ${probes.readiness}`).toBe(200);
    // The store's state stays in the body, without deciding the answer.
    expect(sidecar.body).toMatchObject({ ready: true, checks: { watcher: true, state: true, localFiles: true, remote: false }, excluded: ['remote'] });

    // The stand-alone contract is unchanged: /readyz follows the store, with the same answer.
    const standAlone = await get('/readyz');
    expect(standAlone.status).toBe(503);
    expect(standAlone.body).toEqual({ ready: false, enabled: true, checks: { config: true, watcher: true, remote: false, state: true, localFiles: true } });
  });

  it('fails when memsync cannot save its state', async () => {
    const probes = sidecarProbePaths();
    // A first start saves the agent id; the next finds it and keeps running while saves fail.
    const config = await unreachableStoreConfig();
    const first = await startMemsync(config);
    running.splice(running.indexOf(first.memsync), 1);
    await first.memsync.stop();
    const writes = switchableWrites();
    writes.refuse = true;
    const { get } = await startMemsync(config, { writeStateFile: writes.write });

    const sidecar = await get(probes.readiness);
    expect(sidecar.status).toBe(503);
    expect(sidecar.body).toMatchObject({ ready: false, checks: { state: false } });
  });

  it('fails when the watcher is not running', async () => {
    const probes = sidecarProbePaths();
    const { memsync, get } = await startMemsync(await unreachableStoreConfig());
    expect((await get(probes.readiness)).status).toBe(200);

    await memsync.agent?.stop();
    const sidecar = await get(probes.readiness);
    expect(sidecar.status).toBe(503);
    expect(sidecar.body).toMatchObject({ ready: false, checks: { watcher: false } });
  });

  it('refuses to exclude a check it does not have, so a mistyped probe fails at once', async () => {
    const { get } = await startMemsync(await unreachableStoreConfig());
    const typo = await get('/readyz?exclude=remotes');
    expect(typo.status).toBe(400);
    expect(typo.body).toMatchObject({ error: 'bad_input' });
  });
});
