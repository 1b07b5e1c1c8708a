import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, redactedConfig } from '../../src/config.js';
import { isHealthySweep, protectedSnapshots } from '../../src/retention/after-sweep.js';
import {
  bucketOf,
  decideRetention,
  formatPolicy,
  isoWeek,
  parseRetentionPolicy,
  type ProtectionReason,
  type RetentionCandidate,
  type RetentionPolicy,
} from '../../src/retention/policy.js';
import { timeFromName } from '../../src/snapshot/naming.js';
import { tempDir } from '../helpers/tmp.js';
import { configProblems } from '../helpers/config-problems.js';

/** A complete snapshot named `auto_YYYYMMDD_HHMMSS` (or another prefix), timed from its name. */
function snap(name: string, complete = true): RetentionCandidate {
  const timeMs = timeFromName(name);
  if (timeMs === undefined) throw new Error(`no time in ${name}`);
  return { name, timeMs, complete };
}

const names = (list: readonly { name: string }[]): string[] => list.map((s) => s.name).sort();

describe('parseRetentionPolicy', () => {
  it.each<[string, RetentionPolicy]>([
    ['last=10,hourly=24,daily=7,weekly=4,monthly=12', { last: 10, hourly: 24, daily: 7, weekly: 4, monthly: 12 }],
    ['daily=7', { daily: 7 }],
    [' Last = 3 , DAILY=7 ', { last: 3, daily: 7 }],
    ['monthly=12,last=0', { monthly: 12, last: 0 }],
    ['yearly=5', { yearly: 5 }],
  ])('accepts %j', (text, policy) => {
    expect(parseRetentionPolicy(text)).toEqual({ ok: true, policy });
  });

  it.each<[string, RegExp]>([
    ['', /"" is not rule=count/],
    ['last=0', /keeps nothing/],
    ['last=0,daily=0,weekly=0', /keeps nothing/],
    ['daily', /"daily" is not rule=count/],
    ['daily=-1', /not rule=count/],
    ['daily=1.5', /not rule=count/],
    ['daily=x', /not rule=count/],
    ['keep=3', /unknown rule "keep"/],
    ['last=1,last=2', /given twice/],
    ['last=1,', /"" is not rule=count/],
    ['last=1000001', /above 100000/],
  ])('refuses %j', (text, problem) => {
    const parsed = parseRetentionPolicy(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.problem).toMatch(problem);
  });

  it('formats in a fixed rule order', () => {
    expect(formatPolicy({ monthly: 12, last: 3, daily: 0 })).toBe('last=3,daily=0,monthly=12');
  });
});

describe('buckets (UTC, ISO weeks)', () => {
  it.each<[string, { year: number; week: number }]>([
    ['2020-12-31T12:00:00Z', { year: 2020, week: 53 }],
    ['2021-01-01T00:00:00Z', { year: 2020, week: 53 }],
    ['2021-01-03T23:59:59Z', { year: 2020, week: 53 }],
    ['2021-01-04T00:00:00Z', { year: 2021, week: 1 }],
    ['2024-12-29T23:59:59Z', { year: 2024, week: 52 }],
    ['2024-12-30T00:00:00Z', { year: 2025, week: 1 }],
    ['2026-12-31T00:00:00Z', { year: 2026, week: 53 }],
    ['2027-01-01T00:00:00Z', { year: 2026, week: 53 }],
    ['2025-06-15T10:00:00Z', { year: 2025, week: 24 }],
  ])('isoWeek(%s)', (iso, expected) => {
    expect(isoWeek(Date.parse(iso))).toEqual(expected);
  });

  it.each<[Parameters<typeof bucketOf>[0], string, string]>([
    ['hourly', '2025-03-09T10:59:59Z', '2025-03-09T10'],
    ['hourly', '2025-03-09T11:00:00Z', '2025-03-09T11'],
    ['daily', '2025-01-01T23:59:59Z', '2025-01-01'],
    ['daily', '2025-01-02T00:00:00Z', '2025-01-02'],
    ['weekly', '2021-01-01T00:00:00Z', '2020-W53'],
    ['monthly', '2024-02-29T23:59:59Z', '2024-02'],
    ['monthly', '2024-03-01T00:00:00Z', '2024-03'],
    ['yearly', '2024-12-31T23:59:59Z', '2024'],
  ])('%s bucket of %s is %s', (rule, iso, bucket) => {
    expect(bucketOf(rule, Date.parse(iso))).toBe(bucket);
  });
});

interface Case {
  title: string;
  snapshots: RetentionCandidate[];
  policy: RetentionPolicy;
  protect?: [string, ProtectionReason][];
  deleted: string[];
}

const cases: Case[] = [
  { title: 'nothing to decide', snapshots: [], policy: { last: 3 }, deleted: [] },
  {
    title: 'last keeps the N newest by time, not by name',
    snapshots: [snap('auto_20250101_000000'), snap('pre_update_20250102_000000'), snap('auto_20250103_000000'), snap('manual_20250104_000000'), snap('auto_20250105_000000')],
    policy: { last: 3 },
    deleted: ['auto_20250101_000000', 'pre_update_20250102_000000'],
  },
  { title: 'N larger than the count keeps all', snapshots: [snap('auto_20250101_000000'), snap('auto_20250102_000000')], policy: { last: 10, daily: 30 }, deleted: [] },
  {
    title: 'daily: midnight splits days; the newest of each day stays',
    snapshots: [snap('auto_20250101_100000'), snap('auto_20250101_235959'), snap('auto_20250102_000000'), snap('auto_20250102_120000')],
    policy: { daily: 2 },
    deleted: ['auto_20250101_100000', 'auto_20250102_000000'],
  },
  {
    title: 'daily: only days with snapshots count, gaps do not use up N',
    snapshots: [snap('auto_20250101_000000'), snap('auto_20250105_000000'), snap('auto_20250110_000000'), snap('auto_20241201_000000')],
    policy: { daily: 3 },
    deleted: ['auto_20241201_000000'],
  },
  {
    title: 'hourly: 10:59:59 and 11:00:00 are different hours',
    snapshots: [snap('auto_20250309_103000'), snap('auto_20250309_105959'), snap('auto_20250309_110000')],
    policy: { hourly: 2 },
    deleted: ['auto_20250309_103000'],
  },
  {
    title: 'weekly: ISO week 53 spans the new year',
    snapshots: [snap('auto_20201231_120000'), snap('auto_20210103_120000'), snap('auto_20210104_000000'), snap('auto_20201227_120000')],
    policy: { weekly: 2 },
    // 2020-12-31 and 2021-01-03 are both 2020-W53; 2020-12-27 is W52, beyond 2 weeks.
    deleted: ['auto_20201227_120000', 'auto_20201231_120000'],
  },
  {
    title: 'monthly: month ends and leap day',
    snapshots: [snap('auto_20240131_235959'), snap('auto_20240229_235959'), snap('auto_20240301_000000'), snap('auto_20240215_000000')],
    policy: { monthly: 2 },
    deleted: ['auto_20240131_235959', 'auto_20240215_000000'],
  },
  {
    title: 'equal times: the name breaks the tie, deterministically',
    snapshots: [snap('auto_20250101_000000'), snap('manual_20250101_000000'), snap('auto_20241231_000000')],
    policy: { last: 1 },
    deleted: ['auto_20241231_000000', 'auto_20250101_000000'],
  },
  {
    title: 'rules combine: kept by any rule is kept',
    snapshots: [
      snap('auto_20250101_120000'),
      snap('auto_20250102_120000'),
      snap('auto_20250103_060000'),
      snap('auto_20250103_120000'),
      snap('auto_20250104_060000'),
      snap('auto_20250104_120000'),
    ],
    policy: { last: 2, daily: 3 },
    // last: 04 12h, 04 06h. daily: 04 12h, 03 12h, 02 12h.
    deleted: ['auto_20250101_120000', 'auto_20250103_060000'],
  },
  {
    title: 'protected snapshots stay and do not use up a rule',
    snapshots: [snap('auto_20250101_000000'), snap('auto_20250102_000000'), snap('auto_20250103_000000'), snap('auto_20250104_000000')],
    policy: { last: 2 },
    protect: [
      ['auto_20250101_000000', 'conflict'],
      ['auto_20250104_000000', 'local'],
    ],
    deleted: ['auto_20250102_000000'],
  },
  {
    title: 'incomplete snapshots are never deleted and never count',
    snapshots: [snap('auto_20250105_000000', false), snap('auto_20250104_000000'), snap('auto_20250103_000000'), snap('auto_20200101_000000', false)],
    policy: { last: 1 },
    deleted: ['auto_20250103_000000'],
  },
];

describe('decideRetention', () => {
  it.each(cases)('$title', ({ snapshots, policy, protect, deleted }) => {
    const decision = decideRetention(snapshots, policy, new Map(protect ?? []));
    expect(names(decision.delete)).toEqual([...deleted].sort());
    // Every snapshot is decided exactly once.
    expect([...names(decision.keep), ...names(decision.delete)].sort()).toEqual(names(snapshots));
  });

  it('always keeps the newest complete snapshot and says why each one stays or goes', () => {
    const decision = decideRetention([snap('auto_20250101_000000'), snap('auto_20250102_000000'), snap('auto_20250102_060000')], { last: 1, daily: 1 }, new Map([['auto_20250101_000000', 'restoring']]));
    expect(decision.keep).toEqual(
      expect.arrayContaining([
        { name: 'auto_20250102_060000', reasons: ['last', 'daily 2025-01-02', 'protected: newest'] },
        { name: 'auto_20250101_000000', reasons: ['protected: restoring'] },
      ]),
    );
    expect(decision.delete).toEqual([{ name: 'auto_20250102_000000', timeMs: Date.UTC(2025, 0, 2), reason: 'last: beyond 1; daily: 2025-01-02 kept by auto_20250102_060000' }]);
  });

  it('gathers protected names: local and uploading, restoring, conflicts', () => {
    const map = protectedSnapshots({ local: ['a', 'b'], uploading: ['c'], restoring: ['d'], conflicts: ['b'] });
    expect([...map.entries()].sort()).toEqual([
      ['a', 'local'],
      ['b', 'conflict'],
      ['c', 'local'],
      ['d', 'restoring'],
    ]);
  });
});

describe('isHealthySweep (heartbeat)', () => {
  const ok = { outcome: 'uploaded' };
  const failed = { outcome: undefined };
  it.each<[string, { outcome: unknown }[], number, number, boolean]>([
    ['nothing to do', [], 0, 0, true],
    ['all uploads succeeded', [ok, ok], 0, 0, true],
    ['an upload of this sweep failed', [ok, failed], 0, 0, false],
    ['another snapshot is failing', [ok], 0, 1, false],
    ['a snapshot is still being written', [], 1, 0, false],
  ])('%s', (_title, outcomes, settling, failing, healthy) => {
    expect(isHealthySweep(outcomes, settling, failing)).toBe(healthy);
  });
});

describe('retention and alert configuration', () => {
  const enabled = { CLOUD_SYNC_ENABLED: 'true', CLOUD_SYNC_BUCKET: 'my-memories' };
  it('is off by default', () => {
    const config = loadConfig(enabled);
    expect(config.retention).toBeUndefined();
    expect(config.alerts).toEqual({ notifyUrl: undefined, heartbeatUrl: undefined });
  });

  it('reads a policy and the dry-run switch', () => {
    const config = loadConfig({ ...enabled, CLOUD_SYNC_RETENTION: 'daily=7,last=3', CLOUD_SYNC_RETENTION_DRY_RUN: 'true' });
    expect(config.retention).toEqual({ policy: { daily: 7, last: 3 }, dryRun: true });
    expect(redactedConfig(config)).toMatchObject({ retention: 'last=3,daily=7 (dry run)' });
  });

  it.each(['last=0,daily=0', 'daily=seven', 'keep-daily=7'])('refuses %j with the variable, the value and what is expected', (value) => {
    const message = configProblems({ ...enabled, CLOUD_SYNC_RETENTION: value });
    expect(message).toContain(`CLOUD_SYNC_RETENTION=${JSON.stringify(value)}: expected a policy like "last=10,hourly=24,daily=7,weekly=4,monthly=12"`);
  });

  it('masks webhook and heartbeat URLs in messages and reads them from _FILE variants', async () => {
    const message = configProblems({ ...enabled, CLOUD_SYNC_NOTIFY_URL: 'hooks.slack.com/services/T000/B000/SECRETTOKEN' });
    expect(message).toContain('CLOUD_SYNC_NOTIFY_URL=(secret');
    expect(message).not.toContain('SECRETTOKEN');
    const dir = await tempDir('memsync-config');
    const file = path.join(dir, 'notify-url');
    await writeFile(file, 'https://ntfy.sh/my-topic-SECRET\n');
    const config = loadConfig({ ...enabled, CLOUD_SYNC_NOTIFY_URL_FILE: file, CLOUD_SYNC_HEARTBEAT_URL: 'https://hc-ping.com/abc-SECRET' });
    expect(config.alerts).toEqual({ notifyUrl: 'https://ntfy.sh/my-topic-SECRET', heartbeatUrl: 'https://hc-ping.com/abc-SECRET' });
    expect(JSON.stringify(redactedConfig(config))).not.toContain('SECRET');
  });
});
