// The Dockerfile, read as Docker would read it, checked against the repository: pinned bases,
// a build stage and a production-only runtime stage, a build context that holds what COPY
// needs, the entrypoint the build produces, and a healthcheck command that really works.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { KNOWN_VARIABLES, loadConfig } from '../../src/config.js';
import {
  dockerignoreMatcher,
  execForm,
  healthcheckArgv,
  parseDockerfile,
  runNodeCommand,
  splitFlags,
  stageEnv,
  words,
  type Instruction,
  type Stage,
} from '../helpers/dockerfile.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const stages = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
const isExcluded = dockerignoreMatcher(readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));
const runtime = stages.at(-1) as Stage;
const PINNED_NODE_IMAGE = /^node:(\d+)\.(\d+)\.(\d+)-bookworm-slim(?:@sha256:[0-9a-f]{64})?$/;

interface Copy {
  instruction: Instruction;
  from: string | undefined;
  sources: string[];
  destination: string;
}

function copies(stage: Stage): Copy[] {
  return stage.instructions
    .filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')
    .map((instruction) => {
      const { flags, rest } = splitFlags(instruction.args);
      const parts = execForm(rest) ?? words(rest);
      expect(parts.length, `line ${instruction.line}: COPY needs a source and a destination`).toBeGreaterThanOrEqual(2);
      return { instruction, from: flags.from, sources: parts.slice(0, -1), destination: parts.at(-1) as string };
    });
}

function runs(stage: Stage): string[] {
  return stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
}

/** WORKDIR in force at `line` in `stage` (absolute, as Docker resolves relative ones). */
function workdirAt(stage: Stage, line = Number.POSITIVE_INFINITY): string {
  let dir = '/';
  for (const i of stage.instructions) if (i.keyword === 'WORKDIR' && i.line < line) dir = path.posix.resolve(dir, i.args.trim());
  return dir;
}

function filesUnder(relative: string): string[] {
  const absolute = path.join(ROOT, relative);
  if (!statSync(absolute).isDirectory()) return [relative];
  return readdirSync(absolute, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(ROOT, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'));
}

interface TsConfig {
  extends?: string;
  compilerOptions?: { outDir?: string; rootDir?: string };
}

/** outDir and rootDir of a tsconfig, following `extends` (options of the extending file win). */
function tsOptions(file: string): { outDir?: string; rootDir?: string } {
  const config = JSON.parse(readFileSync(path.join(ROOT, file), 'utf8')) as TsConfig;
  const base = config.extends === undefined ? {} : tsOptions(path.join(path.dirname(file), config.extends));
  return { ...base, ...config.compilerOptions };
}

describe('Dockerfile', () => {
  it('has a build stage and a runtime stage on one Node 24 LTS bookworm-slim image pinned to an exact version', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const stageNames = new Set<string>();
    const bases = new Set<string>();
    for (const stage of stages) {
      if (!stageNames.has(stage.image)) {
        expect(stage.image, `stage ${stage.index} base`).toMatch(PINNED_NODE_IMAGE);
        bases.add(stage.image);
      }
      if (stage.name !== undefined) stageNames.add(stage.name);
    }
    // The build output must run on the Node it was built with.
    expect([...bases]).toHaveLength(1);
    const [, major, minor] = PINNED_NODE_IMAGE.exec([...bases][0] as string) as RegExpExecArray;
    expect(Number(major)).toBe(24);
    const engines = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    const [, minMajor, minMinor] = /^>=\s*(\d+)(?:\.(\d+))?/.exec(engines) ?? [];
    expect(minMajor, `engines.node ${engines} is not of the form >=X.Y`).toBeDefined();
    expect(Number(major) * 1000 + Number(minor)).toBeGreaterThanOrEqual(Number(minMajor) * 1000 + Number(minMinor ?? 0));
  });

  it('is on the Node release that CI fetches and tests with', () => {
    const [base] = stages.map((s) => s.image).filter((image) => PINNED_NODE_IMAGE.test(image));
    const imageVersion = /^node:(\d+\.\d+\.\d+)-/.exec(base ?? '')?.[1];
    const ciVersion = /^NODE_VERSION=(\d+\.\d+\.\d+)$/m.exec(readFileSync(path.join(ROOT, '.ci/run'), 'utf8'))?.[1];
    expect(ciVersion, '.ci/run sets NODE_VERSION=X.Y.Z').toBeDefined();
    expect(imageVersion).toBe(ciVersion);
  });

  it('copies from the build context only files that exist and that .dockerignore lets through', () => {
    const contextCopies = stages.flatMap(copies).filter((c) => c.from === undefined);
    expect(contextCopies.length).toBeGreaterThan(0);
    for (const { sources, instruction } of contextCopies) {
      for (const source of sources) {
        expect(source, `line ${instruction.line}: globs are not checked here`).not.toMatch(/[*?[]/);
        expect(existsSync(path.join(ROOT, source)), `line ${instruction.line}: ${source} exists`).toBe(true);
        const files = filesUnder(source);
        expect(files.length, `${source} has files`).toBeGreaterThan(0);
        expect(files.filter(isExcluded), `line ${instruction.line}: files of ${source} excluded by .dockerignore`).toEqual([]);
      }
    }
    // What must never reach the daemon: local builds, dependencies, history, and deploy/'s local secrets.
    for (const file of ['node_modules/zod/package.json', 'dist/main.js', '.git/HEAD', 'test/unit/dockerfile.test.ts', 'deploy/secrets/s3-secret-key', '.env']) {
      expect(isExcluded(file), `${file} excluded`).toBe(true);
    }
  });

  it('copies from earlier stages only, by name', () => {
    const names = new Map(stages.map((s) => [s.name, s.index]));
    for (const stage of stages) {
      for (const { from, instruction } of copies(stage).filter((c) => c.from !== undefined)) {
        expect(names.get(from), `line ${instruction.line}: --from=${from} names a stage`).toBeDefined();
        expect(names.get(from) as number, `line ${instruction.line}: --from=${from} is an earlier stage`).toBeLessThan(stage.index);
      }
    }
  });

  it('installs every dependency and builds in the build stage, and only production dependencies in the runtime stage', () => {
    const build = stages.find((s) => runs(s).some((r) => /\bnpm run build\b/.test(r)));
    expect(build, 'a stage runs npm run build').toBeDefined();
    expect(build).not.toBe(runtime);
    const buildInstalls = runs(build as Stage).filter((r) => /\bnpm ci\b/.test(r));
    expect(buildInstalls.length).toBeGreaterThan(0);
    expect(buildInstalls.every((r) => !/--omit[= ]dev|--production/.test(r)), 'the build stage has its dev dependencies').toBe(true);

    const runtimeInstalls = runs(runtime).filter((r) => /\bnpm (ci|install|i)\b/.test(r));
    expect(runtimeInstalls.length).toBeGreaterThan(0);
    for (const run of runtimeInstalls) {
      expect(run).toMatch(/\bnpm ci\b/); // the lockfile, exactly
      expect(run).toMatch(/--omit[= ]dev\b/);
    }
    expect(runs(runtime).some((r) => /\bnpm run build\b|\btsc\b/.test(r)), 'no compiler in the runtime stage').toBe(false);
    // From the context the runtime stage takes the manifests only: sources come from the build stage.
    const runtimeSources = copies(runtime).filter((c) => c.from === undefined).flatMap((c) => c.sources);
    expect(runtimeSources.sort()).toEqual(['package-lock.json', 'package.json']);
  });

  it('runs the dist/main.js that the build produces, copied from the build stage', () => {
    const { outDir, rootDir } = tsOptions('tsconfig.build.json');
    expect(outDir).toBeDefined();
    expect(rootDir).toBeDefined();
    const mainSource = path.posix.join(rootDir as string, 'main.ts');
    expect(existsSync(path.join(ROOT, mainSource)), `${mainSource} exists`).toBe(true);
    const built = path.posix.join(outDir as string, path.posix.relative(rootDir as string, mainSource)).replace(/\.ts$/, '.js');
    expect(built).toBe('dist/main.js');

    const build = stages.find((s) => runs(s).some((r) => /\bnpm run build\b/.test(r))) as Stage;
    const buildLine = build.instructions.find((i) => i.keyword === 'RUN' && /\bnpm run build\b/.test(i.args))?.line;
    const builtDir = path.posix.resolve(workdirAt(build, buildLine), outDir as string);
    const runtimeDir = workdirAt(runtime);
    const shipped = copies(runtime).filter((c) => c.from === build.name);
    expect(shipped.map((c) => c.sources.map((s) => path.posix.resolve(workdirAt(build), s)))).toContainEqual([builtDir]);
    const destination = shipped.find((c) => path.posix.resolve(workdirAt(build), c.sources[0] as string) === builtDir)?.destination as string;
    expect(path.posix.resolve(runtimeDir, destination)).toBe(path.posix.resolve(runtimeDir, outDir as string));

    const entrypoint = runtime.instructions.filter((i) => i.keyword === 'ENTRYPOINT').at(-1);
    expect(entrypoint, 'ENTRYPOINT').toBeDefined();
    const argv = execForm((entrypoint as Instruction).args);
    expect(argv, 'ENTRYPOINT in exec form, so node gets SIGTERM itself').toBeDefined();
    // Node's own flags between the two: test/unit/young-generation-cap.test.ts checks them.
    expect(argv?.[0]).toBe('node');
    expect(argv?.at(-1)).toBe(built);
    expect(runtime.instructions.some((i) => i.keyword === 'CMD'), 'no CMD: arguments go to memsync').toBe(false);
  });

  it('runs as a non-root user in production mode, with an environment memsync accepts', () => {
    const user = runtime.instructions.filter((i) => i.keyword === 'USER').at(-1)?.args.trim();
    expect(user, 'USER in the runtime stage').toBeDefined();
    const [name] = (user as string).split(':');
    expect(['root', '0']).not.toContain(name);
    expect(name).toBe('node'); // uid 1000 in the node images

    const env = stageEnv(runtime);
    expect(env.get('NODE_ENV')).toBe('production');
    for (const key of env.keys()) expect(KNOWN_VARIABLES, `ENV ${key}`).toContain(key);
    const config = loadConfig(Object.fromEntries(env));
    expect(config.log.format).toBe('json');
    // The default state dir (dirname(backup dir)/.memsync-state) would be on the image's own layer.
    expect(env.get('CLOUD_SYNC_STATE_DIR')).toBeDefined();
    expect(config.stateDir).not.toBe(path.join(path.dirname(config.backupDir), '.memsync-state'));
    // Both exist in the image, owned by the runtime user, so fresh named volumes inherit that.
    const chown = runs(runtime).find((r) => /\bchown\b/.test(r)) ?? '';
    expect(chown).toContain(config.backupDir);
    expect(chown).toContain(config.stateDir);
    expect(chown).toMatch(new RegExp(`chown (-R )?${name}(:${name})? `));
  });

  it('declares a healthcheck on /healthz and SIGTERM as the stop signal', () => {
    const healthchecks = runtime.instructions.filter((i) => i.keyword === 'HEALTHCHECK');
    expect(healthchecks).toHaveLength(1);
    // Exec form: the slim image has no curl, and no shell is needed.
    expect(healthcheck()[0]).toBe('node');
    expect(healthcheck().join(' ')).toContain('/healthz');
    expect(runtime.instructions.filter((i) => i.keyword === 'STOPSIGNAL').map((i) => i.args.trim())).toEqual(['SIGTERM']);
  });

  describe('the healthcheck command', () => {
    let server: Server | undefined;
    afterEach(async () => {
      await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
      server = undefined;
    });

    async function serve(status: number): Promise<{ port: number; paths: string[] }> {
      const paths: string[] = [];
      server = createServer((request, response) => {
        paths.push(request.url ?? '');
        response.writeHead(status, { 'content-type': 'application/json' }).end('{}');
      });
      await new Promise<void>((resolve) => (server as Server).listen(0, '127.0.0.1', resolve));
      return { port: (server.address() as AddressInfo).port, paths };
    }

    it('exits 0 when /healthz answers 200, on the port in CLOUD_SYNC_PORT', async () => {
      const { port, paths } = await serve(200);
      expect(await runHealthcheck(port)).toBe(0);
      expect(paths).toEqual(['/healthz']);
    });

    it('exits 1 when /healthz answers an error', async () => {
      const { port } = await serve(503);
      expect(await runHealthcheck(port)).toBe(1);
    });

    it('exits 1 when nothing listens', async () => {
      const { port } = await serve(200);
      await new Promise<void>((resolve) => (server as Server).close(() => resolve()));
      server = undefined;
      expect(await runHealthcheck(port)).toBe(1);
    });
  });
});

function healthcheck(): string[] {
  return healthcheckArgv(runtime);
}

/** Runs the Dockerfile's HEALTHCHECK command against `port`; resolves its exit code. */
function runHealthcheck(port: number): Promise<number | null> {
  return runNodeCommand(healthcheck(), { CLOUD_SYNC_PORT: String(port) });
}
