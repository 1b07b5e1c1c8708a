// One `memsync <command>` as its own process, from the sources, to its end (bounded): what the
// command-line tests run. The environment is the test runner's without any variable memsync
// reads, plus the ones given.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PROJECT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Variables memsync reads: never inherited from the environment the tests run in. */
const OWN_VARIABLES = /^(CLOUD_SYNC_|MEMORY_SERVICE_|AZURE_STORAGE_|LOG_LEVEL$|LOG_FORMAT$|NODE_ENV$)/;
const COMMAND_TIMEOUT_MS = 90_000;

export interface CommandRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

const running = new Set<ChildProcess>();

export function runMemsync(args: string[], env: Record<string, string | undefined>): Promise<CommandRun> {
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!OWN_VARIABLES.test(key)) childEnv[key] = value;
  for (const [key, value] of Object.entries(env)) if (value !== undefined) childEnv[key] = value;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: PROJECT_DIR, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise<CommandRun>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`memsync ${args.join(' ')} did not end within ${COMMAND_TIMEOUT_MS} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, COMMAND_TIMEOUT_MS);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Kills every command still running (a test that failed half-way). */
export function killRunningCommands(): void {
  for (const child of running) child.kill('SIGKILL');
}
