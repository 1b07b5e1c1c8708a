import { stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeConfiguredDirectory } from '../../src/directories.js';
import { isAppError } from '../../src/errors.js';
import { tempDir } from '../helpers/tmp.js';

const modeOf = async (dir: string): Promise<number> => (await stat(dir)).mode & 0o777;

describe('makeConfiguredDirectory', () => {
  it('gives only the directory itself the private mode: missing parents stay reachable for other users', async () => {
    const root = await tempDir('directories');
    const state = path.join(root, 'data', 'memsync', 'state');
    const umask = process.umask();
    await makeConfiguredDirectory(state, 'CLOUD_SYNC_STATE_DIR', 0o700);
    expect(await modeOf(state)).toBe(0o700);
    expect(await modeOf(path.join(root, 'data'))).toBe(0o777 & ~umask);
    expect(await modeOf(path.join(root, 'data', 'memsync'))).toBe(0o777 & ~umask);
    // Existing: fine, left as it is.
    await makeConfiguredDirectory(state, 'CLOUD_SYNC_STATE_DIR', 0o700);
  });

  it('names the variable when a file is in the way', async () => {
    const root = await tempDir('directories');
    await writeFile(path.join(root, 'file'), 'x');
    await expect(makeConfiguredDirectory(path.join(root, 'file', 'state'), 'CLOUD_SYNC_STATE_DIR', 0o700)).rejects.toSatisfy((error: unknown) => isAppError(error, 'config') && error.message.startsWith('CLOUD_SYNC_STATE_DIR='));
  });
});
