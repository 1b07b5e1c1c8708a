import { describe, expect, it } from 'vitest';
import { parseRetentionPolicy, type RetentionPolicy } from '../../src/retention/policy.js';
import { storageClassRetentionWarning, youngestDeletedAgeMs } from '../../src/storage-class-warning.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const NOW = Date.UTC(2026, 2, 15, 12, 30);

function policy(text: string): RetentionPolicy {
  const parsed = parseRetentionPolicy(text);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.policy;
}

describe('youngestDeletedAgeMs', () => {
  it.each([
    ['last=10', HOUR_MS, 10 * HOUR_MS],
    ['last=10', DAY_MS, 10 * DAY_MS],
    ['last=48,daily=7', HOUR_MS, 48 * HOUR_MS],
    ['daily=60', DAY_MS, undefined],
  ])('%s every %i ms deletes from age %s', (text, intervalMs, age) => {
    expect(youngestDeletedAgeMs(policy(text), intervalMs, 30 * DAY_MS, NOW)).toBe(age);
  });
});

describe('storageClassRetentionWarning', () => {
  it('warns with the figures when the policy deletes snapshots younger than the minimum billed duration', () => {
    const warning = storageClassRetentionWarning('STANDARD_IA', policy('last=10'), NOW);
    expect(warning).toContain('at least 30 days');
    expect(warning).toContain('with hourly backups it deletes snapshots 10 h old');
    expect(warning).toContain('with daily backups it deletes snapshots 10 days old');
  });

  it('uses the class minimum: GLACIER_IR bills 90 days', () => {
    expect(storageClassRetentionWarning('GLACIER_IR', policy('last=60'), NOW)).toContain('with daily backups it deletes snapshots 60 days old');
  });

  it('says nothing when every snapshot lives past the minimum, for a class without one, or without retention', () => {
    expect(storageClassRetentionWarning('STANDARD_IA', policy('last=1000'), NOW)).toBeUndefined();
    expect(storageClassRetentionWarning('STANDARD', policy('last=1'), NOW)).toBeUndefined();
    expect(storageClassRetentionWarning('ONEZONE_IA', undefined, NOW)).toBeUndefined();
    expect(storageClassRetentionWarning(undefined, policy('last=1'), NOW)).toBeUndefined();
  });
});
