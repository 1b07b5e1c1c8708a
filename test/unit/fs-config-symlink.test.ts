// CLOUD_SYNC_BUCKET given as a symbolic link: the overlap rules with the backup directory apply
// to the directory it names, not to the spelling of the path.
import { mkdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { configProblems } from '../helpers/config-problems.js';
import { tempDir } from '../helpers/tmp.js';

async function setting(): Promise<{ root: string; backups: string; env: Record<string, string> }> {
  const root = await tempDir('memsync-fs-config-link');
  const backups = path.join(root, 'backups');
  await mkdir(path.join(backups, 'store'), { recursive: true });
  return { root, backups, env: { CLOUD_SYNC_ENABLED: 'true', CLOUD_SYNC_PROVIDER: 'fs', CLOUD_SYNC_BACKUP_DIR: backups } };
}

describe('CLOUD_SYNC_BUCKET as a link (fs)', () => {
  it('a link naming the backup directory or a folder inside it is refused like the directory itself', async () => {
    const { root, backups, env } = await setting();
    for (const [name, target] of [['to-backups', backups], ['to-inside', path.join(backups, 'store')]] as const) {
      const link = path.join(root, name);
      await symlink(target, link);
      expect(configProblems({ ...env, CLOUD_SYNC_BUCKET: link })).toContain(`CLOUD_SYNC_BUCKET=${JSON.stringify(link)}: a directory outside the backup directory (CLOUD_SYNC_BACKUP_DIR=${backups})`);
    }
  });

  it('a link naming a directory that holds the backup directory under the prefix is refused', async () => {
    const { root, env } = await setting();
    const link = path.join(root, 'share');
    await symlink(root, link);
    expect(configProblems({ ...env, CLOUD_SYNC_BUCKET: link, CLOUD_SYNC_PREFIX: '' })).toContain(`CLOUD_SYNC_BUCKET=${JSON.stringify(link)}: a directory that does not hold the backup directory`);
  });

  it('a link naming a directory apart from the backups is fine, and kept as written', async () => {
    const { root, env } = await setting();
    await mkdir(path.join(root, 'nas'));
    const link = path.join(root, 'share');
    await symlink(path.join(root, 'nas'), link);
    expect(loadConfig({ ...env, CLOUD_SYNC_BUCKET: link }).storage).toMatchObject({ provider: 'fs', directory: link });
  });
});
