// memsync's V8 young generation cap (--max-semi-space-size) is a start-up flag of node, so every
// way memsync is launched must give it: the installed command (the shebang of src/main.ts, which
// tsc keeps in dist/main.js), the image's ENTRYPOINT, `npm start`, any deploy example that runs
// node itself, and the bench (it reads the built shebang). A launch without it lets the young
// generation grow with the host's RAM; a launch with another value is not what was measured.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { shebangNodeArgs } from '../../bench/lib/agent.js';
import { execForm, parseDockerfile, words, type Stage } from '../helpers/dockerfile.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN_SOURCE = readFileSync(path.join(ROOT, 'src', 'main.ts'), 'utf8');
const SHEBANG = MAIN_SOURCE.split('\n', 1)[0] as string;
const BUILT_MAIN = 'dist/main.js';
/** `#!/usr/bin/env -S node ARGS`: -S splits ARGS into words (plain `env node ARGS` looks for a program named "node ARGS"). */
const SHEBANG_FORM = /^#!\/usr\/bin\/env -S node((?: +\S+)+)$/;

/** The node arguments the shebang gives; the one stated value every other launch must repeat. */
function statedNodeArgs(): string[] {
  const match = SHEBANG_FORM.exec(SHEBANG);
  if (match === null) throw new Error(`src/main.ts's first line is not "#!/usr/bin/env -S node ARGS": ${SHEBANG}`);
  return (match[1] as string).trim().split(/ +/);
}

/** `node ARGS dist/main.js ...` -> ARGS; undefined when argv does not start memsync with node. */
function nodeArgsOf(argv: readonly string[]): string[] | undefined {
  const main = argv.indexOf(BUILT_MAIN);
  if (argv[0] !== 'node' || main < 0) return undefined;
  return argv.slice(1, main);
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

/** Every place in the repository that starts memsync with node, and the argv it uses. */
async function launches(): Promise<{ where: string; argv: string[] }[]> {
  const runtime = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')).at(-1) as Stage;
  const entrypoint = runtime.instructions.filter((i) => i.keyword === 'ENTRYPOINT').at(-1);
  const packageJson = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const found = [
    { where: 'Dockerfile ENTRYPOINT', argv: execForm(entrypoint?.args ?? '') ?? [] },
    { where: 'npm start', argv: words(packageJson.scripts.start ?? '') },
  ];
  // The examples run the image; one that starts node itself (a command: override) must repeat the cap.
  for (const { where, line } of await deployLines()) {
    if (!line.includes(BUILT_MAIN)) continue;
    const argv = (line.match(/[^\s"',[\]]+/g) ?? []).filter((word) => !word.endsWith(':'));
    found.push({ where, argv: argv.slice(Math.max(0, argv.indexOf('node'))) });
  }
  return found;
}

async function deployLines(): Promise<{ where: string; line: string }[]> {
  const lines: { where: string; line: string }[] = [];
  for (const file of await filesUnder(path.join(ROOT, 'deploy'))) {
    if (file.includes(`${path.sep}secrets${path.sep}`)) continue;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, index) => lines.push({ where: `${path.relative(ROOT, file)}:${index + 1}`, line }));
  }
  return lines;
}

describe('the young generation cap on every launch path', () => {
  it('is stated once, in src/main.ts\'s shebang, as a whole number of MiB', () => {
    const args = statedNodeArgs();
    const cap = args.map((arg) => /^--max-semi-space-size=(\d+)$/.exec(arg)?.[1]).find((value) => value !== undefined);
    expect(cap, `--max-semi-space-size=N in ${SHEBANG}`).toBeDefined();
    expect(Number(cap)).toBeGreaterThanOrEqual(1);
    expect(Number(cap)).toBeLessThanOrEqual(64);
  });

  it('survives compilation: tsc keeps the shebang as dist/main.js\'s first line', () => {
    const output = ts.transpileModule(MAIN_SOURCE, { compilerOptions: { module: ts.ModuleKind.NodeNext, target: ts.ScriptTarget.ES2023 } }).outputText;
    expect(output.split('\n', 1)[0]).toBe(SHEBANG);
  });

  it('reaches node when the script is run as a command (env -S splits the arguments)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'memsync-shebang-'));
    try {
      const script = path.join(dir, 'memsync-probe.mjs');
      await writeFile(script, `${SHEBANG}\nprocess.stdout.write(JSON.stringify(process.execArgv));\n`);
      await chmod(script, 0o755);
      // The node running this test, found first on PATH as `env` looks it up.
      const env = { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}` };
      const { stdout } = await promisify(execFile)(script, [], { env });
      expect(JSON.parse(stdout)).toEqual(statedNodeArgs());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('is what the image, npm start and the deploy examples give node', async () => {
    const stated = statedNodeArgs();
    for (const { where, argv } of await launches()) expect(nodeArgsOf(argv), `${where}: ${argv.join(' ')}`).toEqual(stated);
  });

  it('is the value the deploy examples name when they explain it', async () => {
    const stated = statedNodeArgs().find((arg) => arg.startsWith('--max-semi-space-size='));
    for (const { where, line } of await deployLines()) {
      for (const named of line.match(/--max-semi-space-size=\d+/g) ?? []) expect(named, where).toBe(stated);
    }
  });

  it('is what the bench gives the memsync processes it starts (read from the built shebang)', () => {
    expect(shebangNodeArgs(SHEBANG)).toEqual(statedNodeArgs());
  });
});
