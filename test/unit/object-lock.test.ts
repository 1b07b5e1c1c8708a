import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { AppError } from '../../src/errors.js';
import { isLockedKey, retainUntil } from '../../src/remote/object-lock.js';
import { locksExpireAtMs, lockWaitOf } from '../../src/retention/object-locks.js';

const DAY_MS = 86_400_000;
const BASE = { CLOUD_SYNC_ENABLED: 'true', CLOUD_SYNC_BUCKET: 'memsync-lock', CLOUD_SYNC_BACKUP_DIR: '/tmp/memsync-lock-unit/backups', CLOUD_SYNC_STATE_DIR: '/tmp/memsync-lock-unit/state' };

describe('which objects are locked', () => {
  it.each([
    ['auto_20250101_000000/metadata.json', true],
    ['auto_20250101_000000/.memsync-manifest.json', true],
    ['auto_20250101_000000/.memsync-signatures', true],
    ['auto_20250101_000000/.memsync-claim', false],
    ['.memsync-probe/0123abcd', false],
    ['.memsync-deleting/auto_20250101_000000', false],
  ])('%s: %s', (key, locked) => expect(isLockedKey(key)).toBe(locked));

  it('retains for the configured days from the write', () => {
    expect(retainUntil({ mode: 'COMPLIANCE', days: 3 }, 1000).getTime()).toBe(1000 + 3 * DAY_MS);
  });
});

describe('when retention may delete a locked snapshot', () => {
  it('waits for the newest object of the snapshot', () => {
    expect(locksExpireAtMs([{ lastModifiedMs: 5 }, { lastModifiedMs: 9 }, { lastModifiedMs: 7 }], 2)).toBe(9 + 2 * DAY_MS);
  });

  it('reads a lock refusal as a wait, and nothing else', () => {
    const locked = new AppError('remote_rejected', 'locked', { details: { code: 'ObjectLocked', lockedUntilMs: 42 } });
    const hold = new AppError('remote_rejected', 'legal hold', { details: { code: 'ObjectLocked', lockedUntilMs: null } });
    const denied = new AppError('remote_rejected', 'denied', { details: { code: 'AccessDenied', permission: 's3:DeleteObjectVersion' } });
    expect(lockWaitOf('s', locked)).toEqual({ snapshot: 's', untilMs: 42 });
    expect(lockWaitOf('s', hold)).toEqual({ snapshot: 's', untilMs: undefined });
    expect(lockWaitOf('s', denied)).toBeUndefined();
  });
});

describe('Object Lock variables', () => {
  it('gives the mode and days', () => {
    expect(loadConfig({ ...BASE, CLOUD_SYNC_OBJECT_LOCK_MODE: 'compliance', CLOUD_SYNC_OBJECT_LOCK_DAYS: '30' }).s3.objectLock).toEqual({ mode: 'COMPLIANCE', days: 30 });
    expect(loadConfig(BASE).s3.objectLock).toBeUndefined();
  });

  it.each([
    [{ CLOUD_SYNC_OBJECT_LOCK_MODE: 'governance' }, 'CLOUD_SYNC_OBJECT_LOCK_DAYS'],
    [{ CLOUD_SYNC_OBJECT_LOCK_DAYS: '7' }, 'CLOUD_SYNC_OBJECT_LOCK_MODE'],
    [{ CLOUD_SYNC_OBJECT_LOCK_MODE: 'strict', CLOUD_SYNC_OBJECT_LOCK_DAYS: '7' }, 'CLOUD_SYNC_OBJECT_LOCK_MODE'],
    [{ CLOUD_SYNC_OBJECT_LOCK_MODE: 'governance', CLOUD_SYNC_OBJECT_LOCK_DAYS: '36501' }, 'CLOUD_SYNC_OBJECT_LOCK_DAYS'],
    [{ CLOUD_SYNC_OBJECT_LOCK_MODE: 'governance', CLOUD_SYNC_OBJECT_LOCK_DAYS: '0' }, 'CLOUD_SYNC_OBJECT_LOCK_DAYS'],
  ])('refuses %j, naming %s', (env, variable) => {
    expect(() => loadConfig({ ...BASE, ...env })).toThrow(variable);
  });
});
