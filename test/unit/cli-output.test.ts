import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { formatBytes, formatTime, nameList, renderTable } from '../../src/cli/format.js';
import { cliLogLevel, createCliLogger } from '../../src/cli/log.js';
import { createProgressDisplay, transferLine } from '../../src/cli/progress.js';
import { buildStatusReport } from '../../src/cli/status-report.js';
import { buildRemoteIndex } from '../../src/remote/remote-index.js';
import { freshAgentState } from '../../src/state/agent-state.js';

function sink(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString('utf8');
      done();
    },
  });
  return { stream, text: () => text };
}

describe('plain progress lines (stdout not a terminal)', () => {
  it('stays quiet for short transfers and reports long ones every interval', () => {
    let nowMs = 0;
    const out = sink();
    const display = createProgressDisplay({ interactive: false, stream: out.stream, now: () => nowMs, lineIntervalMs: 5000 });
    const transfer = (done: number) => ({ id: 'a', label: 'upload auto_1', doneBytes: done, totalBytes: 4 * 1024 * 1024 });
    display.show([transfer(0)]);
    nowMs = 4000;
    display.show([transfer(1024 * 1024)]);
    expect(out.text()).toBe('');
    nowMs = 5000;
    display.show([transfer(2 * 1024 * 1024)]);
    nowMs = 6000;
    display.show([transfer(3 * 1024 * 1024)]);
    expect(out.text()).toBe('upload auto_1: 50% (2.0 MiB of 4.0 MiB)\n');
    display.show([]);
    nowMs = 20_000;
    display.show([{ id: 'b', label: 'download x', doneBytes: 1, totalBytes: 2 }]);
    expect(out.text().split('\n').filter(Boolean)).toHaveLength(1);
    display.log('memsync: warn: something');
    expect(out.text()).toMatch(/memsync: warn: something\n$/);
  });

  it('formats a line', () => {
    expect(transferLine({ id: 'x', label: 'verify s', doneBytes: 0, totalBytes: 0 })).toBe('verify s: 100% (0 B of 0 B)');
  });
});

describe('cli logger', () => {
  it('shows errors, and warnings and info only when verbose', () => {
    const lines: string[] = [];
    const quiet = createCliLogger({ level: cliLogLevel(false, 'debug'), write: (line) => lines.push(line) }).child({ component: 'upload', snapshot: 'auto_1' });
    quiet.info('snapshot uploaded');
    quiet.warn('conflict');
    quiet.error('upload failed', { files: ['a'] });
    expect(lines).toEqual(['memsync: error: upload failed snapshot=auto_1 files=["a"]']);
    const verbose = createCliLogger({ level: cliLogLevel(true, 'warn'), write: (line) => lines.push(line) });
    verbose.warn('retrying');
    expect(lines.at(-1)).toBe('memsync: warn: retrying');
    verbose.info('sweep finished');
    verbose.debug('hidden');
    expect(lines.at(-1)).toBe('memsync: info: sweep finished');
  });
});

describe('format', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [9.5 * 1024 * 1024, '9.5 MiB'],
    [3 * 1024 ** 4, '3.0 TiB'],
  ])('%i bytes -> %s', (bytes, text) => expect(formatBytes(bytes)).toBe(text));

  it('times, tables and lists', () => {
    expect(formatTime(Date.UTC(2026, 10, 25, 2))).toBe('2026-11-25T02:00:00Z');
    expect(formatTime(0)).toBe('-');
    expect(renderTable(['NAME', 'SIZE'], [['a', '1 B'], ['long-name', '10.0 KiB']], ['left', 'right'])).toBe('NAME           SIZE\na               1 B\nlong-name  10.0 KiB');
    expect(nameList(['a', 'b', 'c'], 2)).toBe('a, b and 1 more');
  });
});

describe('status report', () => {
  const object = (key: string, etag = '"e"') => ({ key, size: 10, etag, lastModifiedMs: 0 });
  const index = buildRemoteIndex(
    [object('auto_20261125_020000/a'), object('auto_20261125_020000/.memsync-manifest.json', '"m1"'), object('auto_20261126_020000/a'), object('auto_20261126_020000/.memsync-manifest.json', '"m2"')],
    Date.UTC(2026, 10, 27),
  );
  const local = [
    { name: 'auto_20261125_020000', timeMs: Date.UTC(2026, 10, 25, 2), manifestEtag: 'm1' },
    { name: 'auto_20261124_020000', timeMs: Date.UTC(2026, 10, 24, 2), manifestEtag: 'x' },
    { name: 'conflicting_20261120_000000', timeMs: Date.UTC(2026, 10, 20), manifestEtag: 'y' },
  ];
  const state = freshAgentState();
  state.conflicts.conflicting_20261120_000000 = { snapshot: 'conflicting_20261120_000000', detectedAtMs: 1, operation: 'upload', localDigest: 'l', remoteDigest: 'r', files: [] };

  it('compares the sides as the agent does and shows recorded conflicts', () => {
    const report = buildStatusReport({ location: 's3://b/', backupDir: '/b', stateDir: '/s', remote: { reachable: true, index }, local, settling: [{ name: 'auto_20261127_020000', timeMs: Date.UTC(2026, 10, 27, 2) }], agentState: state });
    expect(report.inSync).toEqual(['auto_20261125_020000']);
    expect(report.pending).toEqual(['auto_20261124_020000']);
    expect(report.onlyRemote).toEqual(['auto_20261126_020000']);
    expect(report.newerRemote).toEqual([]);
    expect(report.local).toEqual({ count: 4, latest: { name: 'auto_20261127_020000', time: '2026-11-27T02:00:00.000Z' }, settling: ['auto_20261127_020000'] });
    expect(report.remote).toMatchObject({ reachable: true, count: 2, complete: 2, latest: { name: 'auto_20261126_020000' } });
    expect(report.conflicts.map((c) => c.snapshot)).toEqual(['conflicting_20261120_000000']);
    expect(report.agent.stateFound).toBe(true);
  });

  it('says nothing about differences when the store could not be listed', () => {
    const report = buildStatusReport({ location: 's3://b/', backupDir: '/b', stateDir: '/s', remote: { reachable: false, state: 'unreachable', error: 'ECONNREFUSED', hint: undefined }, local, settling: [], agentState: undefined });
    expect(report).toMatchObject({ inSync: null, pending: null, onlyRemote: null, newerRemote: null, remote: { reachable: false, error: 'ECONNREFUSED' }, agent: { stateFound: false } });
    expect(report.local.count).toBe(3);
  });
});
