// `npm start` runs this first (prestart): it compiles only when dist/ is missing or older than
// what it is compiled from, so that a start does not spend ~10 s in tsc when nothing changed.
// Plain JavaScript with no dependencies: it must run before anything is built, and in a
// production install (no src/, no TypeScript) it has nothing to do once dist/ is there.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const built = path.join(root, 'dist', 'main.js');
const inputs = ['src', 'tsconfig.json', 'tsconfig.build.json'].map((name) => path.join(root, name));

/** The file's or directory's stats, or undefined when it does not exist. */
function statIfExists(target) {
  try {
    return statSync(target);
  } catch (error) {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Newest modification time under `target`, 0 when absent. Directories count: removing a file changes its directory's time. */
function newestChangeMs(target) {
  const stats = statIfExists(target);
  if (stats === undefined) return 0;
  if (!stats.isDirectory()) return stats.mtimeMs;
  return Math.max(stats.mtimeMs, ...readdirSync(target).map((entry) => newestChangeMs(path.join(target, entry))));
}

const builtMs = statIfExists(built)?.mtimeMs;
const changedMs = Math.max(...inputs.map(newestChangeMs));
if (builtMs !== undefined && builtMs >= changedMs) process.exit(0);

console.error(builtMs === undefined ? 'memsync: dist/ not built yet: building' : 'memsync: sources changed since the last build: building');
// --noEmitOnError: a failed build leaves dist/ as it was, older than the sources, so the next
// start tries again instead of running what the failed build wrote. npm_execpath is the npm
// running `npm start`; run it on this same node.
const npm = process.env.npm_execpath;
const args = ['run', 'build', '--', '--noEmitOnError'];
const build = npm === undefined ? spawnSync('npm', args, { cwd: root, stdio: 'inherit' }) : spawnSync(process.execPath, [npm, ...args], { cwd: root, stdio: 'inherit' });
if (build.error !== undefined) throw build.error;
process.exit(build.status ?? 1);
