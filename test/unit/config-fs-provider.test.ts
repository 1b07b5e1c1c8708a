// CLOUD_SYNC_PROVIDER: the known providers, and the fs provider's directory rules.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, redactedConfig } from '../../src/config.js';
import { FsRemoteStore } from '../../src/remote/fs-store.js';
import { S3RemoteStore } from '../../src/remote/s3-store.js';
import { createRemoteStore } from '../../src/remote/store-factory.js';
import { tempDir } from '../helpers/tmp.js';
import { configProblems } from '../helpers/config-problems.js';

async function fsEnv(): Promise<{ storage: string; backups: string; env: Record<string, string> }> {
  const root = await tempDir('memsync-fs-config');
  const storage = path.join(root, 'share');
  const backups = path.join(root, 'backups');
  await mkdir(storage);
  return { storage, backups, env: { CLOUD_SYNC_ENABLED: 'true', CLOUD_SYNC_PROVIDER: 'fs', CLOUD_SYNC_BUCKET: storage, CLOUD_SYNC_BACKUP_DIR: backups } };
}

describe('CLOUD_SYNC_PROVIDER', () => {
  it('an unknown provider is refused with the list of known ones', () => {
    expect(configProblems({ CLOUD_SYNC_ENABLED: 'true', CLOUD_SYNC_BUCKET: 'my-memories', CLOUD_SYNC_PROVIDER: 'gcs' })).toContain(
      'CLOUD_SYNC_PROVIDER="gcs": expected "s3", "fs" or "azure" (the storage providers memsync knows)',
    );
  });

  it('s3 stays the default, with the S3 store and its bucket rules', async () => {
    const config = loadConfig({ CLOUD_SYNC_ENABLED: 'true', CLOUD_SYNC_BUCKET: 'my-memories' });
    expect(config.storage).toEqual({ provider: 's3' });
    expect(config.s3.bucket).toBe('my-memories');
    expect(await createRemoteStore(config)).toBeInstanceOf(S3RemoteStore);
    expect(configProblems({ CLOUD_SYNC_ENABLED: 'true', CLOUD_SYNC_BUCKET: '/mnt/share' })).toContain('CLOUD_SYNC_BUCKET="/mnt/share": expected an S3 bucket name');
  });

  it('fs: an existing absolute directory, no S3 variable needed; the prefix applies under it', async () => {
    const { storage, env } = await fsEnv();
    const config = loadConfig({ ...env, CLOUD_SYNC_PREFIX: 'team/a' });
    expect(config.storage).toEqual({ provider: 'fs', directory: storage, prefix: 'team/a/' });
    expect(config.s3.bucket).toBe('');
    const store = await createRemoteStore(config);
    expect(store).toBeInstanceOf(FsRemoteStore);
    expect(store.location).toBe(`directory ${path.join(storage, 'team', 'a')}${path.sep}`);
    expect(redactedConfig(config)).toMatchObject({ provider: 'fs', directory: storage, prefix: 'team/a/' });
    expect(redactedConfig(config)).not.toHaveProperty('endpoint');
  });

  it('fs: a relative path is refused, naming the variable', async () => {
    const { env } = await fsEnv();
    expect(configProblems({ ...env, CLOUD_SYNC_BUCKET: 'share/backups' })).toContain('CLOUD_SYNC_BUCKET="share/backups": expected the absolute path of an existing directory');
  });

  it('fs: a directory that does not exist, or a file, is refused (memsync does not create it: it may be an unmounted share)', async () => {
    const { storage, env } = await fsEnv();
    const missing = path.join(storage, 'not-mounted');
    expect(configProblems({ ...env, CLOUD_SYNC_BUCKET: missing })).toContain(`CLOUD_SYNC_BUCKET=${JSON.stringify(missing)}: an existing directory (it does not exist; memsync does not create it`);
    const file = path.join(storage, 'a-file');
    await writeFile(file, 'x');
    expect(configProblems({ ...env, CLOUD_SYNC_BUCKET: file })).toContain(`CLOUD_SYNC_BUCKET=${JSON.stringify(file)}: an existing directory (this is a file)`);
    // Disabled, nothing is stored: the directory may be mounted later.
    expect(loadConfig({ ...env, CLOUD_SYNC_ENABLED: 'false', CLOUD_SYNC_BUCKET: missing }).enabled).toBe(false);
  });

  it('fs: the backup directory itself, a directory inside it, or one holding it under the prefix is refused', async () => {
    const { backups, env } = await fsEnv();
    await mkdir(path.join(backups, 'store'), { recursive: true });
    for (const inside of [backups, path.join(backups, 'store')]) {
      expect(configProblems({ ...env, CLOUD_SYNC_BUCKET: inside })).toContain(`CLOUD_SYNC_BUCKET=${JSON.stringify(inside)}: a directory outside the backup directory (CLOUD_SYNC_BACKUP_DIR=${backups})`);
    }
    const parent = path.dirname(backups);
    expect(configProblems({ ...env, CLOUD_SYNC_BUCKET: parent, CLOUD_SYNC_PREFIX: '' })).toContain(`CLOUD_SYNC_BUCKET=${JSON.stringify(parent)}: a directory that does not hold the backup directory`);
    // Beside the backups under its own prefix folder is fine.
    expect(loadConfig({ ...env, CLOUD_SYNC_BUCKET: parent, CLOUD_SYNC_PREFIX: 'memories/' }).storage).toEqual({ provider: 'fs', directory: parent, prefix: 'memories/' });
  });

  it('fs: an unset directory is named as what fs needs', () => {
    expect(configProblems({ CLOUD_SYNC_ENABLED: 'true', CLOUD_SYNC_PROVIDER: 'fs' })).toContain('CLOUD_SYNC_BUCKET=(unset): the absolute path of the directory to store snapshots in');
  });
});
