// A small reader of the project's Dockerfile and .dockerignore, enough for tests to check what
// the image build will do without a Docker engine: instructions by stage, flags, exec forms,
// and Docker's ignore-file matching (last matching pattern wins, a match on a parent directory
// counts, `!` re-includes). And a runner for the image's HEALTHCHECK command outside a container.
import { spawn } from 'node:child_process';

export interface Instruction {
  keyword: string;
  /** Everything after the keyword, continuation lines joined. */
  args: string;
  /** 1-based line where the instruction starts. */
  line: number;
}

export interface Stage {
  index: number;
  name: string | undefined;
  /** The FROM image reference, or an earlier stage's name. */
  image: string;
  instructions: Instruction[];
}

export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  let pending: { text: string; line: number } | undefined;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const trimmed = raw.trim();
    // Comments and blank lines are dropped, also between continuation lines (as Docker does).
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const continued = trimmed.endsWith('\\');
    const body = continued ? trimmed.slice(0, -1).trim() : trimmed;
    pending = pending === undefined ? { text: body, line: index + 1 } : { text: `${pending.text} ${body}`, line: pending.line };
    if (continued) return;
    const match = /^(\S+)\s*(.*)$/.exec(pending.text);
    const instruction: Instruction = { keyword: (match?.[1] ?? '').toUpperCase(), args: match?.[2] ?? '', line: pending.line };
    pending = undefined;
    if (instruction.keyword === 'FROM') {
      const { rest } = splitFlags(instruction.args);
      const [image = '', as, name] = rest.split(/\s+/);
      stages.push({ index: stages.length, name: as?.toUpperCase() === 'AS' ? name : undefined, image, instructions: [] });
      return;
    }
    const stage = stages.at(-1);
    if (stage === undefined) {
      if (instruction.keyword === 'ARG') return; // ARGs before the first FROM
      throw new Error(`Dockerfile line ${instruction.line}: ${instruction.keyword} before any FROM`);
    }
    stage.instructions.push(instruction);
  });
  if (pending !== undefined) throw new Error(`Dockerfile ends inside a continued line (line ${pending.line})`);
  return stages;
}

/** Leading `--name=value` (or bare `--name`) flags, and the rest. */
export function splitFlags(args: string): { flags: Record<string, string>; rest: string } {
  const flags: Record<string, string> = {};
  let rest = args.trim();
  for (let match = /^--([a-z-]+)(?:=(\S*))?\s*/.exec(rest); match !== null; match = /^--([a-z-]+)(?:=(\S*))?\s*/.exec(rest)) {
    flags[match[1] as string] = match[2] ?? 'true';
    rest = rest.slice(match[0].length);
  }
  return { flags, rest };
}

/** The exec (JSON array) form of CMD/ENTRYPOINT/COPY/HEALTHCHECK CMD, or undefined for the shell form. */
export function execForm(args: string): string[] | undefined {
  const trimmed = args.trim();
  if (!trimmed.startsWith('[')) return undefined;
  const parsed: unknown = JSON.parse(trimmed);
  if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === 'string')) throw new Error(`not an array of strings: ${trimmed}`);
  return parsed as string[];
}

/** Shell-like words: whitespace separates, "double" or 'single' quotes group (KEY="a b" is one word). */
export function words(text: string): string[] {
  const out: string[] = [];
  let current = '';
  let quote: string | undefined;
  for (const ch of text.trim()) {
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
      else current += ch;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (/\s/.test(ch)) {
      if (current !== '') out.push(current);
      current = '';
    } else current += ch;
  }
  if (current !== '') out.push(current);
  return out;
}

/** ENV instructions of a stage, in order, as one map (`ENV A=1 B=2` and the legacy `ENV A 1`). */
export function stageEnv(stage: Stage): Map<string, string> {
  const env = new Map<string, string>();
  for (const { keyword, args } of stage.instructions) {
    if (keyword !== 'ENV') continue;
    const tokens = words(args);
    if (tokens.length > 0 && !(tokens[0] as string).includes('=')) {
      env.set(tokens[0] as string, tokens.slice(1).join(' '));
      continue;
    }
    for (const token of tokens) {
      const eq = token.indexOf('=');
      env.set(token.slice(0, eq), token.slice(eq + 1));
    }
  }
  return env;
}

interface IgnorePattern {
  negated: boolean;
  regex: RegExp;
}

/** Docker's .dockerignore semantics: `isExcluded('src/main.ts')` with paths relative to the context. */
export function dockerignoreMatcher(text: string): (relativePath: string) => boolean {
  const patterns: IgnorePattern[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const negated = line.startsWith('!');
    if (negated) line = line.slice(1).trim();
    line = line.replace(/^\/+/, '').replace(/^\.\//, '').replace(/\/+$/, '');
    patterns.push({ negated, regex: globToRegExp(line) });
  }
  return (relativePath: string): boolean => {
    const parts = relativePath.replace(/^\.\//, '').split('/').filter((part) => part !== '');
    // The path itself and each of its parent directories: a pattern matching a parent matches its contents.
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const pattern of patterns) {
      if (candidates.some((candidate) => pattern.regex.test(candidate))) excluded = !pattern.negated;
    }
    return excluded;
  };
}

function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i += 1) {
    const ch = glob[i] as string;
    if (ch === '*' && glob[i + 1] === '*') {
      // `**/` is any number of directories (also none); a trailing `**` is anything.
      if (glob[i + 2] === '/') {
        source += '(?:.*/)?';
        i += 2;
      } else {
        source += '.*';
        i += 1;
      }
    } else if (ch === '*') source += '[^/]*';
    else if (ch === '?') source += '[^/]';
    else source += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

/** The exec-form command of the stage's HEALTHCHECK (`HEALTHCHECK [--options] CMD ["node", ...]`). */
export function healthcheckArgv(stage: Stage): string[] {
  const instruction = stage.instructions.find((i) => i.keyword === 'HEALTHCHECK');
  if (instruction === undefined) throw new Error(`stage ${stage.name ?? stage.index} has no HEALTHCHECK`);
  const { rest } = splitFlags(instruction.args);
  const command = /^CMD\s+(.*)$/s.exec(rest)?.[1];
  const argv = command === undefined ? undefined : execForm(command);
  if (argv === undefined || argv.length === 0) throw new Error(`HEALTHCHECK on line ${instruction.line} is not CMD in exec form: ${rest}`);
  return argv;
}

/**
 * Runs a container command whose program is `node` with this Node, and only the given
 * environment (plus PATH); resolves the exit code. Killed, and rejected, after `timeoutMs`.
 */
export function runNodeCommand(argv: readonly string[], env: Record<string, string>, timeoutMs = 10_000): Promise<number | null> {
  const [program, ...args] = argv;
  if (program !== 'node') return Promise.reject(new Error(`not a node command: ${argv.join(' ')}`));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH, ...env }, stdio: 'ignore' });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${argv.join(' ')} still running after ${timeoutMs} ms (killed)`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}
