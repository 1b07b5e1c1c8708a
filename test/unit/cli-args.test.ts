import { describe, expect, it } from 'vitest';
import { parseCommandLine, type Command } from '../../src/cli/args.js';
import { EXIT, exitCodeFor, exitCodeForKind } from '../../src/cli/exit-codes.js';
import { AppError, type ErrorKind } from '../../src/errors.js';

const NAME = 'auto_20261125_020000';

describe('parseCommandLine: accepted', () => {
  it.each<[string, string[], Command]>([
    ['no arguments is the agent', [], { name: 'serve' }],
    ['serve', ['serve'], { name: 'serve' }],
    ['snapshots', ['snapshots'], { name: 'snapshots', limit: undefined, json: false }],
    ['snapshots --limit N --json', ['snapshots', '--limit', '5', '--json'], { name: 'snapshots', limit: 5, json: true }],
    ['snapshots -n N', ['snapshots', '-n', '12'], { name: 'snapshots', limit: 12, json: false }],
    ['snapshots --limit=N', ['snapshots', '--limit=3'], { name: 'snapshots', limit: 3, json: false }],
    ['status', ['status'], { name: 'status', json: false, verbose: false }],
    ['status --json -v', ['status', '--json', '-v'], { name: 'status', json: true, verbose: true }],
    ['upload', ['upload'], { name: 'upload', snapshot: undefined, verbose: false }],
    ['upload NAME', ['upload', NAME], { name: 'upload', snapshot: NAME, verbose: false }],
    ['upload --verbose NAME', ['upload', '--verbose', NAME], { name: 'upload', snapshot: NAME, verbose: true }],
    ['download (latest) without --yes', ['download'], { name: 'download', snapshot: undefined, yes: false, verbose: false }],
    ['download NAME --yes', ['download', NAME, '--yes'], { name: 'download', snapshot: NAME, yes: true, verbose: false }],
    ['restore NAME', ['restore', NAME], { name: 'restore', snapshot: NAME, yes: false, verbose: false }],
    ['restore -y NAME', ['restore', '-y', NAME], { name: 'restore', snapshot: NAME, yes: true, verbose: false }],
    ['restore a single-file snapshot name', ['restore', 'dump_20261125_020000.tar', '--yes'], { name: 'restore', snapshot: 'dump_20261125_020000.tar', yes: true, verbose: false }],
    ['verify', ['verify'], { name: 'verify', snapshot: undefined, json: false, verbose: false }],
    ['verify NAME --json', ['verify', NAME, '--json'], { name: 'verify', snapshot: NAME, json: true, verbose: false }],
  ])('%s', (_label, argv, command) => {
    expect(parseCommandLine(argv)).toEqual({ kind: 'run', command });
  });
});

describe('parseCommandLine: help', () => {
  it.each<[string[], RegExp]>([
    [['--help'], /^Usage: memsync \[command\]/],
    [['-h'], /^Usage: memsync \[command\]/],
    [['help'], /^Usage: memsync \[command\]/],
    [['help', 'verify'], /^Usage: memsync verify \[NAME\]/],
    [['serve', '--help'], /^Usage: memsync serve/],
    [['snapshots', '-h'], /^Usage: memsync snapshots/],
    [['status', '--help'], /^Usage: memsync status/],
    [['upload', '--help'], /^Usage: memsync upload \[NAME\]/],
    [['download', '--help'], /^Usage: memsync download/],
    // Help wins over missing or invalid arguments: asking how to use it must always work.
    [['restore', '--help'], /^Usage: memsync restore NAME --yes/],
    [['verify', 'x', 'y', '--help'], /^Usage: memsync verify/],
  ])('%j', (argv, text) => {
    const parsed = parseCommandLine(argv);
    expect(parsed.kind).toBe('help');
    if (parsed.kind === 'help') expect(parsed.text).toMatch(text);
  });

  it('lists every command and the exit codes', () => {
    const parsed = parseCommandLine(['--help']);
    if (parsed.kind !== 'help') throw new Error('expected help');
    for (const command of ['serve', 'snapshots', 'status', 'upload', 'download', 'restore', 'verify']) expect(parsed.text).toContain(`  ${command}`);
    expect(parsed.text).toMatch(/Exit codes:[\s\S]*5 +conflict[\s\S]*6 +verification failed/);
  });
});

describe('parseCommandLine: refused', () => {
  it.each<[string, string[], RegExp, RegExp]>([
    ['unknown command', ['frobnicate'], /unknown command "frobnicate"/, /^Usage: memsync \[command\]/],
    ['help for an unknown command', ['help', 'frobnicate'], /unknown command "frobnicate"/, /^Usage: memsync \[command\]/],
    ['an option before the command', ['--json', 'status'], /expected a command before options, got --json/, /^Usage: memsync \[command\]/],
    ['unknown flag', ['snapshots', '--bogus'], /^snapshots: unknown option --bogus$/, /^Usage: memsync snapshots/],
    ['unknown short flag', ['upload', '-x'], /^upload: unknown option -x$/, /^Usage: memsync upload/],
    ['a flag of another command', ['status', '--yes'], /^status: unknown option --yes$/, /^Usage: memsync status/],
    ['--limit without a value', ['snapshots', '--limit'], /^snapshots: option '-n, --limit <value>' argument missing/, /^Usage: memsync snapshots/],
    ['--limit 0', ['snapshots', '--limit', '0'], /--limit expects a whole number between 1 and/, /Usage/],
    ['--limit not a number', ['snapshots', '--limit', 'ten'], /--limit expects a whole number/, /Usage/],
    ['--limit fractional', ['snapshots', '--limit', '2.5'], /--limit expects a whole number/, /Usage/],
    ['a value for a boolean flag', ['status', '--json=yes'], /^status: option '--json' does not take an argument/, /Usage/],
    ['serve with an argument', ['serve', 'now'], /^serve: unexpected argument "now"$/, /Usage: memsync serve/],
    ['status with an argument', ['status', NAME], /unexpected argument/, /Usage: memsync status/],
    ['two names', ['upload', NAME, 'other_20261125_020000'], /at most one snapshot name, got 2 arguments/, /Usage: memsync upload/],
    ['restore without a name', ['restore', '--yes'], /^restore: the NAME of a remote snapshot is required/, /Usage: memsync restore NAME --yes/],
    ['a traversal as a name', ['restore', '../etc', '--yes'], /invalid snapshot name "..\/etc"/, /Usage/],
    ['a dot name', ['verify', '.memsync-staging-x'], /invalid snapshot name/, /Usage/],
    ['an absolute path as a name', ['download', '/etc/passwd'], /invalid snapshot name/, /Usage/],
  ])('%s', (_label, argv, message, usage) => {
    const parsed = parseCommandLine(argv);
    expect(parsed.kind).toBe('usage-error');
    if (parsed.kind !== 'usage-error') return;
    expect(parsed.message).toMatch(message);
    expect(parsed.usage).toMatch(usage);
  });
});

describe('exit codes', () => {
  it.each<[ErrorKind, number]>([
    ['config', EXIT.usage],
    ['bad_input', EXIT.usage],
    ['disabled', EXIT.usage],
    ['remote_rejected', EXIT.remoteRejected],
    ['remote_unavailable', EXIT.remoteUnavailable],
    ['conflict', EXIT.conflict],
    ['integrity', EXIT.verificationFailed],
    ['not_found', EXIT.failed],
    ['local_io', EXIT.failed],
    ['cancelled', EXIT.interrupted],
  ])('%s -> %i', (kind, code) => {
    expect(exitCodeFor(new AppError(kind, 'x'))).toBe(code);
    expect(exitCodeForKind(kind)).toBe(code);
  });

  it('anything else is a plain failure', () => {
    expect(exitCodeFor(new Error('boom'))).toBe(EXIT.failed);
    expect(exitCodeForKind('not-a-kind')).toBe(EXIT.failed);
  });

  it('keeps the agent\'s numbers for configuration (2) and a refusing store (3)', () => {
    expect([EXIT.usage, EXIT.remoteRejected]).toEqual([2, 3]);
  });
});
