import { describe, expect, it } from 'vitest';
import { isReady, type Readiness } from '../../src/http/routes/health.js';

const healthy: Readiness = { enabled: true, config: true, watcher: true, remote: true, state: true, localFiles: true };

describe('isReady', () => {
  it.each<[string, Partial<Readiness>, Parameters<typeof isReady>[1], boolean]>([
    ['every check passes', {}, [], true],
    ['the store is unreachable', { remote: false }, [], false],
    ['the store is unreachable, and excluded', { remote: false }, ['remote'], true],
    ['the state cannot be saved, the store excluded', { state: false }, ['remote'], false],
    ['the watcher is not running, the store excluded', { watcher: false }, ['remote'], false],
    ['a backup-file operation is stuck, the store excluded', { localFiles: false }, ['remote'], false],
    ['the store and the state both failing, both excluded', { remote: false, state: false }, ['remote', 'state'], true],
    ['disabled: nothing runs, and that is ready', { enabled: false, watcher: false, remote: false }, [], true],
  ])('%s', (_case, overrides, excluded, expected) => {
    expect(isReady({ ...healthy, ...overrides }, excluded)).toBe(expected);
  });
});
