import { parseArgs } from 'node:util';
import { isSnapshotName, MAX_SNAPSHOT_NAME_LENGTH } from '../snapshot/naming.js';
import { COMMAND_DOCS, generalUsage } from './help.js';

/**
 * The command line as data: which command, with which arguments, or help, or a usage error.
 * Pure (no I/O, no environment), so every accepted and refused form is tested with tables.
 * Options come after the command; configuration stays in the environment, as for the agent.
 */

export type Command =
  | { name: 'serve' }
  | { name: 'snapshots'; limit: number | undefined; json: boolean }
  | { name: 'status'; json: boolean; verbose: boolean }
  | { name: 'upload'; snapshot: string | undefined; verbose: boolean }
  | { name: 'download'; snapshot: string | undefined; yes: boolean; verbose: boolean }
  | { name: 'restore'; snapshot: string; yes: boolean; verbose: boolean }
  | { name: 'verify'; snapshot: string | undefined; json: boolean; verbose: boolean };

export type CommandName = Command['name'];

export type ParsedCommandLine =
  | { kind: 'run'; command: Command }
  | { kind: 'help'; text: string }
  | { kind: 'usage-error'; message: string; usage: string };

/** Returns 'help' when --help was given; throws UsageError for anything it cannot accept. */
type CommandParser = (args: string[]) => Command | 'help';

class UsageError extends Error {}

const MAX_LIMIT = 1_000_000;

/** Every flag any command takes; each command accepts the ones it lists (and --help). */
const FLAGS = {
  json: { type: 'boolean' },
  limit: { type: 'string', short: 'n' },
  verbose: { type: 'boolean', short: 'v' },
  yes: { type: 'boolean', short: 'y' },
} as const satisfies Record<string, { type: 'boolean' | 'string'; short?: string }>;

type Flag = keyof typeof FLAGS;

interface ParsedFlags {
  values: Partial<Record<Flag, string | boolean>>;
  positionals: string[];
}

/** Parses `args` accepting only `accepted` flags; 'help' when --help was given. */
function parseFlags(args: string[], accepted: readonly Flag[]): ParsedFlags | 'help' {
  const options = Object.fromEntries([['help', { type: 'boolean', short: 'h' }], ...accepted.map((flag) => [flag, FLAGS[flag]])]) as Record<string, { type: 'boolean' | 'string'; short?: string }>;
  const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
  if (values.help === true) return 'help';
  return { values: values as ParsedFlags['values'], positionals };
}

const PARSERS: Record<CommandName, CommandParser> = {
  serve: (args) => {
    const parsed = parseFlags(args, []);
    if (parsed === 'help') return 'help';
    noPositionals(parsed.positionals);
    return { name: 'serve' };
  },
  snapshots: (args) => {
    const parsed = parseFlags(args, ['json', 'limit']);
    if (parsed === 'help') return 'help';
    noPositionals(parsed.positionals);
    const limit = parsed.values.limit;
    return { name: 'snapshots', limit: typeof limit === 'string' ? parseLimit(limit) : undefined, json: parsed.values.json === true };
  },
  status: (args) => {
    const parsed = parseFlags(args, ['json', 'verbose']);
    if (parsed === 'help') return 'help';
    noPositionals(parsed.positionals);
    return { name: 'status', json: parsed.values.json === true, verbose: parsed.values.verbose === true };
  },
  upload: (args) => {
    const parsed = parseFlags(args, ['verbose']);
    if (parsed === 'help') return 'help';
    return { name: 'upload', snapshot: optionalName(parsed.positionals), verbose: parsed.values.verbose === true };
  },
  download: (args) => {
    const parsed = parseFlags(args, ['yes', 'verbose']);
    if (parsed === 'help') return 'help';
    return { name: 'download', snapshot: optionalName(parsed.positionals), yes: parsed.values.yes === true, verbose: parsed.values.verbose === true };
  },
  restore: (args) => {
    const parsed = parseFlags(args, ['yes', 'verbose']);
    if (parsed === 'help') return 'help';
    const snapshot = optionalName(parsed.positionals);
    if (snapshot === undefined) throw new UsageError('the NAME of a remote snapshot is required (see `memsync snapshots`)');
    return { name: 'restore', snapshot, yes: parsed.values.yes === true, verbose: parsed.values.verbose === true };
  },
  verify: (args) => {
    const parsed = parseFlags(args, ['json', 'verbose']);
    if (parsed === 'help') return 'help';
    return { name: 'verify', snapshot: optionalName(parsed.positionals), json: parsed.values.json === true, verbose: parsed.values.verbose === true };
  },
};

function isCommandName(word: string): word is CommandName {
  return Object.hasOwn(PARSERS, word);
}

export function parseCommandLine(argv: readonly string[]): ParsedCommandLine {
  const [first, ...rest] = argv;
  if (first === undefined) return { kind: 'run', command: { name: 'serve' } };
  if (first === '-h' || first === '--help') return { kind: 'help', text: generalUsage() };
  if (first === 'help') {
    const topic = rest[0];
    if (topic === undefined) return { kind: 'help', text: generalUsage() };
    if (isCommandName(topic)) return { kind: 'help', text: COMMAND_DOCS[topic].help };
    return { kind: 'usage-error', message: `unknown command ${JSON.stringify(topic)}`, usage: generalUsage() };
  }
  if (!isCommandName(first)) {
    const message = first.startsWith('-') ? `expected a command before options, got ${first}` : `unknown command ${JSON.stringify(first)}`;
    return { kind: 'usage-error', message, usage: generalUsage() };
  }
  const doc = COMMAND_DOCS[first];
  try {
    const command = PARSERS[first](rest);
    return command === 'help' ? { kind: 'help', text: doc.help } : { kind: 'run', command };
  } catch (error) {
    const message = error instanceof UsageError ? error.message : parseArgsMessage(error);
    if (message === undefined) throw error;
    return { kind: 'usage-error', message: `${first}: ${message}`, usage: `Usage: memsync ${doc.synopsis}\nRun \`memsync ${first} --help\` for details.` };
  }
}

/** node:util parseArgs errors, shortened: its messages carry advice about `--` that does not apply here. */
function parseArgsMessage(error: unknown): string | undefined {
  const code = (error as { code?: unknown }).code;
  if (!(error instanceof TypeError) || typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS')) return undefined;
  const unknown = /^Unknown option '([^']+)'/.exec(error.message);
  if (unknown !== null) return `unknown option ${unknown[1] ?? ''}`;
  const firstSentence = error.message.split(/\.\s/)[0] ?? error.message;
  return firstSentence.charAt(0).toLowerCase() + firstSentence.slice(1);
}

function noPositionals(positionals: readonly string[]): void {
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
}

function optionalName(positionals: readonly string[]): string | undefined {
  if (positionals.length > 1) throw new UsageError(`at most one snapshot name, got ${positionals.length} arguments`);
  const name = positionals[0];
  if (name !== undefined && !isSnapshotName(name)) {
    throw new UsageError(
      `invalid snapshot name ${JSON.stringify(name.slice(0, 80))}: 1-${MAX_SNAPSHOT_NAME_LENGTH} letters, digits, ".", "_" or "-", starting with a letter or digit, without ".."`,
    );
  }
  return name;
}

function parseLimit(text: string): number {
  const limit = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new UsageError(`--limit expects a whole number between 1 and ${MAX_LIMIT}, got ${JSON.stringify(text)}`);
  return limit;
}
