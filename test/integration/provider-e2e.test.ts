// End to end with CLOUD_SYNC_PROVIDER=fs and =azure: a backup written the memory service's way is
// uploaded by a real agent process (into a plain directory; into a container on Azurite), listed
// and verified by the memsync command, and downloaded into an empty backup directory by a second
// agent. No S3 variable is set.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MANIFEST_FILE_NAME } from '../../src/snapshot/manifest.js';
import { startAgent } from '../helpers/agent-process.js';
import { startAzurite, type AzuriteServer } from '../helpers/azurite-fixture.js';
import { NEVER_SOON, START_TIMEOUT_MS, stopCleanly } from '../helpers/agent-sandbox.js';
import { memoryFileSet, writeBackup } from '../helpers/memory-service-sim.js';
import { tempDir } from '../helpers/tmp.js';
import { runMemsync } from '../helpers/memsync-command.js';

const PREFIX = 'memories/';
const MIB = 1024 * 1024;
const UPLOAD_TIMEOUT_MS = 45_000;

/** Where one provider stores snapshots, as the agent's variables and as bytes read back directly. */
interface ProviderUnderTest {
  name: 'fs' | 'azure';
  storageEnv: Record<string, string>;
  readStored(snapshot: string, file: string): Promise<Buffer>;
  /** Stored names in a snapshot's folder, as a listing shows them. */
  listStored(snapshot: string): Promise<string[]>;
}

async function fsProvider(): Promise<ProviderUnderTest> {
  const storage = await tempDir('memsync-fs-share');
  const folder = (snapshot: string): string => path.join(storage, PREFIX, snapshot);
  return {
    name: 'fs',
    storageEnv: { CLOUD_SYNC_PROVIDER: 'fs', CLOUD_SYNC_BUCKET: storage },
    readStored: (snapshot, file) => readFile(path.join(folder(snapshot), file)),
    // The folder is a plain copy: the files and the manifest, beside memsync's per-object dot-files.
    listStored: async (snapshot) => (await readdir(folder(snapshot))).filter((name) => !name.startsWith('.memsync-object.')).sort(),
  };
}

let azurite: AzuriteServer | undefined;
afterAll(async () => azurite?.stop());

async function azureProvider(): Promise<ProviderUnderTest> {
  azurite ??= await startAzurite();
  const server = azurite;
  const container = await server.createContainer('provider-e2e');
  const blobs = server.service.getContainerClient(container);
  return {
    name: 'azure',
    storageEnv: { CLOUD_SYNC_PROVIDER: 'azure', CLOUD_SYNC_BUCKET: container, CLOUD_SYNC_ENDPOINT: server.endpoint, CLOUD_SYNC_ACCESS_KEY: server.accountName, CLOUD_SYNC_SECRET_KEY: server.accountKey },
    readStored: (snapshot, file) => blobs.getBlobClient(`${PREFIX}${snapshot}/${file}`).downloadToBuffer(),
    listStored: async (snapshot) => {
      const names: string[] = [];
      for await (const blob of blobs.listBlobsFlat({ prefix: `${PREFIX}${snapshot}/` })) names.push(blob.name.slice(`${PREFIX}${snapshot}/`.length));
      return names.sort();
    },
  };
}

function agentEnv(provider: ProviderUnderTest, backupDir: string, stateDir: string): Record<string, string> {
  return {
    CLOUD_SYNC_ENABLED: 'true',
    ...provider.storageEnv,
    CLOUD_SYNC_PREFIX: PREFIX,
    CLOUD_SYNC_BACKUP_DIR: backupDir,
    CLOUD_SYNC_STATE_DIR: stateDir,
    CLOUD_SYNC_SETTLE_MS: '400',
    CLOUD_SYNC_MULTIPART_THRESHOLD_MB: '5',
    CLOUD_SYNC_SCHEDULE: NEVER_SOON,
    CLOUD_SYNC_PORT: '0',
    LOG_FORMAT: 'json',
    LOG_LEVEL: 'debug',
  };
}


describe.each([{ setup: fsProvider }, { setup: azureProvider }])('CLOUD_SYNC_PROVIDER end to end ($setup.name)', ({ setup }) => {
  it('uploads, lists and verifies, and restores into an empty backup directory', async () => {
    const provider = await setup();
    const backups = await tempDir('memsync-fs-backups');
    const state = await tempDir('memsync-fs-state');
    const emptyBackups = await tempDir('memsync-fs-new-backups');
    const otherState = await tempDir('memsync-fs-new-state');
    // A file above the multipart threshold, so the part-wise ETag path is exercised too.
    const backup = await writeBackup(backups, { prefix: 'auto', time: new Date('2026-11-25T02:00:00Z'), files: memoryFileSet({ memories: 200, indexBytes: 10 * MIB }) });

    const first = startAgent({ env: agentEnv(provider, backups, state), label: `${provider.name} agent` });
    await first.waitFor('conditional writes', { mode: 'honoured' }, START_TIMEOUT_MS);
    await first.waitFor('snapshot uploaded', { snapshot: backup.name }, UPLOAD_TIMEOUT_MS);
    await stopCleanly(first);

    // Each object is a plain copy of its file, the manifest beside them.
    for (const file of backup.files) expect((await provider.readStored(backup.name, file.name)).equals(file.bytes), file.name).toBe(true);
    expect(await provider.listStored(backup.name)).toEqual([MANIFEST_FILE_NAME, ...backup.files.map((f) => f.name)].sort());

    const env = agentEnv(provider, backups, state);
    const listed = await runMemsync(['snapshots', '--json'], env);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { snapshots: unknown[] }).snapshots).toEqual([expect.objectContaining({ name: backup.name, files: backup.files.length, complete: true })]);
    const verified = await runMemsync(['verify'], env);
    expect(verified.code, `${verified.stdout}\n${verified.stderr}`).toBe(0);
    expect(verified.stdout).toMatch(new RegExp(`^ok +${backup.name} +3 files, .* checked by SHA-256$`, 'm'));

    const second = startAgent({ env: agentEnv(provider, emptyBackups, otherState), label: `${provider.name} agent on a new machine` });
    await second.waitFor('backup directory is empty: downloading the latest remote snapshot', { snapshot: backup.name }, START_TIMEOUT_MS);
    await second.waitFor('snapshot restored', { snapshot: backup.name }, UPLOAD_TIMEOUT_MS);
    for (const file of backup.files) expect((await readFile(path.join(emptyBackups, backup.name, file.name))).equals(file.bytes), file.name).toBe(true);
    await stopCleanly(second);
    // Nothing on the way fell back or went wrong: no copy, claim or verification complained.
    for (const agent of [first, second]) expect(agent.logs.filter((entry) => entry.level === 'warn' || entry.level === 'error'), agent.label).toEqual([]);
  });
});
