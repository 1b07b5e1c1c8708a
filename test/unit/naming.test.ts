import { describe, expect, it } from 'vitest';
import { AppError, isAppError } from '../../src/errors.js';
import {
  compareNewestFirst,
  isIgnoredEntryName,
  isSnapshotName,
  latestByTime,
  MAX_SNAPSHOT_NAME_LENGTH,
  requireSnapshotName,
  timeFromName,
  type Timed,
} from '../../src/snapshot/naming.js';

describe('timeFromName', () => {
  it.each([
    ['auto_20250102_030405', Date.UTC(2025, 0, 2, 3, 4, 5)],
    ['pre_update_20241231_235959', Date.UTC(2024, 11, 31, 23, 59, 59)],
    ['auto_20240229_120000', Date.UTC(2024, 1, 29, 12, 0, 0)],
    ['x_20000101_000000', Date.UTC(2000, 0, 1, 0, 0, 0)],
    // Single-file snapshots carry an extension after the suffix.
    ['auto_20250102_030405.json', Date.UTC(2025, 0, 2, 3, 4, 5)],
    ['auto_20250102_030405.tar.gz', Date.UTC(2025, 0, 2, 3, 4, 5)],
    // The last suffix counts.
    ['a_20200101_000000_20250102_030405', Date.UTC(2025, 0, 2, 3, 4, 5)],
  ])('%s -> its UTC time', (name, expected) => {
    expect(timeFromName(name)).toBe(expected);
  });

  it.each([
    ['auto_20240230_000000', 'February 30th'],
    ['auto_20230229_000000', 'February 29th in a non-leap year'],
    ['auto_20241301_000000', 'month 13'],
    ['auto_20240001_000000', 'month 0'],
    ['auto_20240100_000000', 'day 0'],
    ['auto_20240431_000000', 'April 31st'],
    ['auto_20240101_240000', 'hour 24'],
    ['auto_20240101_006000', 'minute 60'],
    ['auto_20240101_000060', 'second 60'],
    ['auto', 'no suffix'],
    ['auto_20240101', 'date without time'],
    ['auto_20240101_1200', 'short time'],
    ['auto_2024010_120000', 'short date'],
    ['20240101_120000', 'no underscore before the date'],
    ['auto_20240101_120000_extra', 'text after the suffix'],
    ['auto_20240101_120000x', 'letter after the suffix'],
    ['auto_20240101_120000.', 'empty extension'],
    ['auto_20240101_120000.tar-gz', 'extension with a dash'],
    ['auto_120240101_120000', 'nine-digit date'],
  ])('%s -> undefined (%s)', (name) => {
    expect(timeFromName(name)).toBeUndefined();
  });
});

describe('isSnapshotName / requireSnapshotName', () => {
  const longest = `a${'b'.repeat(MAX_SNAPSHOT_NAME_LENGTH - 1)}`;

  it.each([
    'auto_20250101_000000',
    'pre_update_20250101_000000',
    'Backup-1',
    'auto_20250101_000000.json',
    'a',
    '0',
    'a.b.c',
    longest,
  ])('accepts %s', (name) => {
    expect(isSnapshotName(name)).toBe(true);
    expect(requireSnapshotName(name)).toBe(name);
  });

  it.each([
    ['', 'empty'],
    ['..', 'parent directory'],
    ['.', 'current directory'],
    ['a..b', 'embedded ..'],
    ['auto_20250101_000000..json', 'double dot before an extension'],
    ['../etc', 'traversal'],
    ['a/b', 'slash'],
    ['a\\b', 'backslash'],
    ['a\u0000b', 'NUL'],
    ['a\nb', 'newline'],
    ['.hidden', 'leading dot'],
    ['_auto', 'leading underscore'],
    ['-auto', 'leading dash'],
    ['a b', 'space'],
    ['a:b', 'colon'],
    ['caf\u00e9', 'non-ASCII'],
    [`${longest}c`, 'one character too long'],
  ])('rejects %j (%s) with bad_input', (name) => {
    expect(isSnapshotName(name)).toBe(false);
    let thrown: unknown;
    try {
      requireSnapshotName(name);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(AppError);
    expect(isAppError(thrown, 'bad_input')).toBe(true);
  });
});

describe('isIgnoredEntryName', () => {
  it.each([
    ['.memsync-staging', true],
    ['.DS_Store', true],
    ['.', true],
    ['auto_20250101_000000.tmp', true],
    ['auto_20250101_000000.partial', true],
    ['auto_20250101_000000~', true],
    ['auto_20250101_000000', false],
    ['auto_20250101_000000.json', false],
    ['tmp', false],
    ['auto.tmp.json', false],
    ['partial_20250101_000000', false],
  ])('%s -> %s', (name, ignored) => {
    expect(isIgnoredEntryName(name)).toBe(ignored);
  });
});

describe('latestByTime / compareNewestFirst', () => {
  const t = (name: string): Timed => ({ name, timeMs: timeFromName(name) ?? Number.NaN });

  it('picks the latest by time even when it sorts first by name', () => {
    const older = t('pre_update_20250101_000000');
    const newer = t('auto_20250102_000000');
    // Name order says pre_update is "last"; time order must win.
    expect(older.name > newer.name).toBe(true);
    expect(latestByTime([older, newer])).toBe(newer);
    expect(latestByTime([newer, older])).toBe(newer);
  });

  it('sorts newest first by time, not by name', () => {
    const items = [t('zz_20240101_000000'), t('auto_20250102_000000'), t('pre_update_20250101_000000'), t('aa_20230101_000000')];
    expect([...items].sort(compareNewestFirst).map((i) => i.name)).toEqual([
      'auto_20250102_000000',
      'pre_update_20250101_000000',
      'zz_20240101_000000',
      'aa_20230101_000000',
    ]);
  });

  it('breaks ties by name, in the same order whatever the input order', () => {
    const a = { name: 'a', timeMs: 5 };
    const b = { name: 'b', timeMs: 5 };
    expect(compareNewestFirst(a, b)).toBe(-compareNewestFirst(b, a));
    expect(compareNewestFirst(a, b)).not.toBe(0);
    expect(compareNewestFirst(a, { ...a })).toBe(0);
    expect(latestByTime([a, b])).toBe(latestByTime([b, a]));
  });

  it('returns undefined for no items and the item for one', () => {
    expect(latestByTime([])).toBeUndefined();
    const only = { name: 'x', timeMs: 1 };
    expect(latestByTime([only])).toBe(only);
  });

  it('accepts any iterable', () => {
    const map = new Map([
      ['a', { name: 'a', timeMs: 1 }],
      ['b', { name: 'b', timeMs: 3 }],
      ['c', { name: 'c', timeMs: 2 }],
    ]);
    expect(latestByTime(map.values())?.name).toBe('b');
  });
});
