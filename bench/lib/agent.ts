// The memsync agent as the bench runs it: the built program (`node dist/main.js`, with the node
// arguments its shebang line gives the installed command), JSON logs parsed as they arrive and
// stamped with the bench's clock, bounded waits on them, and a stop that always ends with the
// process gone.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MEMSYNC_MAIN = path.join(PROJECT_DIR, 'dist/main.js');
/** Variables memsync reads: never inherited from the shell the bench runs in. */
const OWN_VARIABLES = /^(CLOUD_SYNC_|MEMORY_SERVICE_|LOG_LEVEL$|LOG_FORMAT$|NODE_ENV$)/;

/** The node arguments of a `#!/usr/bin/env -S node ARGS` line: those after `node`. */
export function shebangNodeArgs(firstLine: string): string[] {
  if (!firstLine.startsWith('#!')) return [];
  const words = firstLine.slice(2).trim().split(/\s+/);
  const node = words.findIndex((word) => word === 'node' || word.endsWith('/node'));
  return node < 0 ? [] : words.slice(node + 1);
}

let nodeArgsInUse: string[] | undefined;

/**
 * Node's arguments for every memsync process the bench starts: by default those of the built
 * dist/main.js's shebang, as the installed command and the image run it (the V8 young generation
 * cap); BENCH_MEMSYNC_NODE_ARGS (space-separated, empty for none) replaces them in experiments.
 */
export function memsyncNodeArgs(): string[] {
  if (nodeArgsInUse !== undefined) return nodeArgsInUse;
  const override = process.env.BENCH_MEMSYNC_NODE_ARGS;
  if (override !== undefined) nodeArgsInUse = override.trim() === '' ? [] : override.trim().split(/\s+/);
  else nodeArgsInUse = shebangNodeArgs(readFileSync(MEMSYNC_MAIN, 'utf8').split('\n', 1)[0] ?? '');
  return nodeArgsInUse;
}

/** `node [memsync's node arguments] dist/main.js ARGS`: a memsync command as deployed. */
export function memsyncCommandArgs(args: readonly string[]): string[] {
  return [...memsyncNodeArgs(), MEMSYNC_MAIN, ...args];
}

export interface LogLine {
  message: string;
  /** performance.now() of the bench when the line arrived. */
  atMs: number;
  [field: string]: unknown;
}

export function memsyncEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!OWN_VARIABLES.test(key)) env[key] = value;
  return { ...env, LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...vars };
}

/** A free TCP port on 127.0.0.1 (for the agent's HTTP API, which the bench does not use). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export class AgentRun {
  readonly logs: LogLine[] = [];
  readonly startedAtMs = performance.now();
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;
  private partial = '';
  private stderr = '';
  private readonly listeners = new Set<() => void>();
  private gone = false;

  /** `extraNodeArgs` come after memsync's own node arguments (profiling). */
  constructor(env: NodeJS.ProcessEnv, extraNodeArgs: string[] = []) {
    this.child = spawn(process.execPath, [...memsyncNodeArgs(), ...extraNodeArgs, MEMSYNC_MAIN], { cwd: PROJECT_DIR, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => this.onStdout(chunk));
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.stderr = (this.stderr + chunk).slice(-20_000)));
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code) => {
        this.gone = true;
        this.notify();
        resolve(code);
      });
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error('agent did not start');
    return this.child.pid;
  }

  private onStdout(chunk: string): void {
    const atMs = performance.now();
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (typeof entry.message === 'string') this.logs.push({ ...entry, message: entry.message, atMs });
      } catch {
        // not a log line
      }
    }
    this.notify();
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  count(message: string): number {
    return this.logs.reduce((n, line) => n + (line.message === message ? 1 : 0), 0);
  }

  /** The first line from index `since` on that matches; rejects after `timeoutMs` or when the agent exits. */
  waitFor(predicate: (line: LogLine) => boolean, timeoutMs: number, what: string, since = 0): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      let scanned = since;
      const check = (): void => {
        for (; scanned < this.logs.length; scanned += 1) {
          const line = this.logs[scanned] as LogLine;
          if (line.level === 'error') process.stderr.write(`[bench] agent error: ${JSON.stringify(line)}\n`);
          if (predicate(line)) return finish(() => resolve(line));
        }
        if (this.gone) finish(() => reject(new Error(`agent exited before ${what}\n${this.tail()}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`agent: no ${what} within ${timeoutMs} ms\n${this.tail()}`))), timeoutMs);
      const finish = (then: () => void): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
        then();
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Waits until `count` lines with `message` have arrived in total. */
  waitForCount(message: string, count: number, timeoutMs: number): Promise<LogLine> {
    let seen = 0;
    return this.waitFor((line) => line.message === message && ++seen >= count, timeoutMs, `${count} x "${message}"`);
  }

  tail(): string {
    return [...this.logs.slice(-15).map((l) => JSON.stringify(l)), this.stderr.slice(-2000)].join('\n');
  }

  /** SIGTERM, then SIGKILL after `timeoutMs`; by PID, this process only. */
  async stop(timeoutMs = 20_000): Promise<void> {
    if (this.gone) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited.finally(() => clearTimeout(timer));
  }
}
