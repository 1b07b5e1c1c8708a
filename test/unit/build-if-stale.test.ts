// scripts/build-if-stale.mjs, the prestart step of `npm start`, run for real in a copy of the
// package layout whose `build` script is a stand-in that records its calls. File times are set
// explicitly, so "older" and "newer" never depend on the clock.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCRIPT = path.join(ROOT, 'scripts', 'build-if-stale.mjs');
const BUILT_AT = new Date('2030-01-01T12:00:00Z');
const BEFORE = new Date('2030-01-01T11:00:00Z');
const AFTER = new Date('2030-01-01T13:00:00Z');

// Records its arguments, then writes dist/main.js, unless a file named `fail` says to fail.
const FAKE_BUILD = `
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
appendFileSync('builds.log', JSON.stringify(process.argv.slice(2)) + '\\n');
if (existsSync('fail')) process.exit(3);
mkdirSync('dist', { recursive: true });
writeFileSync('dist/main.js', '');
`;

interface Package {
  dir: string;
  /** Runs the script as `npm start` would; resolves its exit code. */
  prestart(): Promise<number | null>;
  /** Arguments of each build run so far. */
  builds(): Promise<string[][]>;
  setTime(relative: string, time: Date): Promise<void>;
}

async function fakePackage(options: { withSources: boolean }): Promise<Package> {
  const dir = await tempDir('memsync-build-if-stale');
  await mkdir(path.join(dir, 'scripts'));
  await copyFile(SCRIPT, path.join(dir, 'scripts', 'build-if-stale.mjs'));
  await writeFile(path.join(dir, 'package.json'), JSON.stringify({ name: 'fake', private: true, type: 'module', scripts: { build: 'node fake-build.mjs' } }));
  await writeFile(path.join(dir, 'fake-build.mjs'), FAKE_BUILD);
  if (options.withSources) {
    await mkdir(path.join(dir, 'src', 'remote'), { recursive: true });
    for (const file of ['src/main.ts', 'src/remote/s3.ts', 'tsconfig.json', 'tsconfig.build.json']) {
      await writeFile(path.join(dir, file), '');
      await utimes(path.join(dir, file), BEFORE, BEFORE);
    }
    for (const folder of ['src/remote', 'src']) await utimes(path.join(dir, folder), BEFORE, BEFORE);
  }
  const setTime = (relative: string, time: Date): Promise<void> => utimes(path.join(dir, relative), time, time);
  return {
    dir,
    setTime,
    prestart: () =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [path.join('scripts', 'build-if-stale.mjs')], { cwd: dir, stdio: 'ignore' });
        child.once('error', reject);
        child.once('exit', (code) => resolve(code));
      }),
    builds: async () => {
      const log = path.join(dir, 'builds.log');
      if (!existsSync(log)) return [];
      return (await readFile(log, 'utf8'))
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as string[]);
    },
  };
}

/** A package built at BUILT_AT, after every source was last changed. */
async function builtPackage(options = { withSources: true }): Promise<Package> {
  const pkg = await fakePackage(options);
  await mkdir(path.join(pkg.dir, 'dist'));
  await writeFile(path.join(pkg.dir, 'dist', 'main.js'), '');
  await pkg.setTime('dist/main.js', BUILT_AT);
  return pkg;
}

describe('build-if-stale (prestart)', () => {
  it('builds when dist/ was never built, refusing to emit on type errors', async () => {
    const pkg = await fakePackage({ withSources: true });
    expect(await pkg.prestart()).toBe(0);
    expect(await pkg.builds()).toEqual([['--noEmitOnError']]);
    expect(existsSync(path.join(pkg.dir, 'dist', 'main.js'))).toBe(true);
  });

  it('does not build when dist/ is newer than every source', async () => {
    const pkg = await builtPackage();
    expect(await pkg.prestart()).toBe(0);
    expect(await pkg.builds()).toEqual([]);
  });

  it.each([
    ['a source file changed', 'src/remote/s3.ts'],
    ['the compiler options changed', 'tsconfig.build.json'],
    ['the base compiler options changed', 'tsconfig.json'],
  ])('builds when %s after the last build', async (_, file) => {
    const pkg = await builtPackage();
    await pkg.setTime(file, AFTER);
    expect(await pkg.prestart()).toBe(0);
    expect(await pkg.builds()).toHaveLength(1);
  });

  it('builds when a source file was removed or added after the last build (its folder changed)', async () => {
    const pkg = await builtPackage();
    await rm(path.join(pkg.dir, 'src', 'remote', 's3.ts'));
    await pkg.setTime('src/remote', AFTER);
    expect(await pkg.prestart()).toBe(0);
    expect(await pkg.builds()).toHaveLength(1);
  });

  it('does not build in a production install, which has dist/ and no sources', async () => {
    const pkg = await builtPackage({ withSources: false });
    expect(await pkg.prestart()).toBe(0);
    expect(await pkg.builds()).toEqual([]);
  });

  it('fails the start when the build fails, and builds again on the next start', async () => {
    const pkg = await builtPackage();
    await pkg.setTime('src/main.ts', AFTER);
    await writeFile(path.join(pkg.dir, 'fail'), '');
    expect(await pkg.prestart()).not.toBe(0);
    expect(await pkg.prestart()).not.toBe(0);
    expect(await pkg.builds()).toHaveLength(2);
  });
});
