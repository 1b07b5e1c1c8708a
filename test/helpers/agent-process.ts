// The memsync agent as a real process (`node --import tsx src/main.ts`), as it runs in production:
// its JSON log lines parsed as they arrive, bounded waits on them, and a guaranteed cleanup.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, type TestContext } from 'vitest';

export interface LogEntry {
  level: string;
  message: string;
  timestamp?: string;
  [field: string]: unknown;
}

export interface ExitResult {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartOptions {
  /** Variables on top of a clean copy of this process's environment (memsync's own variables removed). */
  env: Record<string, string | undefined>;
  /** Shown in failure messages. */
  label?: string;
  /** Node arguments; default: the agent (`--import tsx src/main.ts`). */
  nodeArgs?: string[];
  /** In a process group of its own, so a test can signal it the way a terminal's Ctrl-C does. */
  detached?: boolean;
  /** Run as this user and group (the test runs as root): file permissions then apply to the agent. */
  runAs?: { uid: number; gid: number };
}

const PROJECT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Prefixes of variables memsync reads: never inherited from the environment the tests run in. */
const OWN_VARIABLES = /^(CLOUD_SYNC_|MEMORY_SERVICE_|LOG_LEVEL$|LOG_FORMAT$|NODE_ENV$)/;
const DEFAULT_STOP_TIMEOUT_MS = 30_000;

const running = new Set<AgentProcess>();

export class AgentProcess {
  /** Every parsed JSON line of stdout, in order. */
  readonly logs: LogEntry[] = [];
  /** stdout lines that are not JSON log entries. */
  readonly otherStdout: string[] = [];
  stderr = '';
  readonly label: string;
  readonly startedAtMs = Date.now();
  readonly exited: Promise<ExitResult>;
  private readonly child: ChildProcess;
  private exit: ExitResult | undefined;
  private readonly listeners = new Set<() => void>();
  private partialLine = '';
  private readonly detached: boolean;

  constructor(options: StartOptions) {
    this.label = options.label ?? 'agent';
    this.detached = options.detached ?? false;
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) if (!OWN_VARIABLES.test(key)) env[key] = value;
    for (const [key, value] of Object.entries(options.env)) if (value !== undefined) env[key] = value;
    this.child = spawn(process.execPath, options.nodeArgs ?? ['--import', 'tsx', 'src/main.ts'], {
      cwd: PROJECT_DIR,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: options.detached ?? false,
      // libuv also drops the supplementary groups when it changes the user.
      ...(options.runAs === undefined ? {} : { uid: options.runAs.uid, gid: options.runAs.gid }),
    });
    running.add(this);
    this.child.stdout?.setEncoding('utf8');
    this.child.stdout?.on('data', (chunk: string) => this.onStdout(chunk));
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise<ExitResult>((resolve) => {
      // 'close': all output has been read by then, so the last log lines are in `logs`.
      this.child.once('close', (code, signal) => {
        if (this.partialLine !== '') this.onLine(this.partialLine);
        this.partialLine = '';
        this.exit = { code, signal };
        running.delete(this);
        this.notify();
        resolve(this.exit);
      });
      this.child.once('error', (error) => {
        this.stderr += `spawn error: ${error.message}\n`;
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Undefined while the process runs. */
  get exitResult(): ExitResult | undefined {
    return this.exit;
  }

  private onStdout(chunk: string): void {
    const lines = (this.partialLine + chunk).split('\n');
    this.partialLine = lines.pop() ?? '';
    for (const line of lines) this.onLine(line);
    this.notify();
  }

  private onLine(line: string): void {
    if (line.trim() === '') return;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed === 'object' && parsed !== null && typeof (parsed as LogEntry).message === 'string') {
        this.logs.push(parsed as LogEntry);
        return;
      }
    } catch {
      // not JSON
    }
    this.otherStdout.push(line);
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  /** Log entries whose message is `message` (and whose fields match `fields`, if given). */
  find(message: string | RegExp, fields: Record<string, unknown> = {}): LogEntry[] {
    return this.logs.filter((entry) => matches(entry, message, fields));
  }

  /**
   * The first log entry, from index `since` on, that satisfies `predicate`: already logged or
   * still to come. Rejects after `timeoutMs`, or as soon as the process exits without it.
   */
  waitForLog(predicate: (entry: LogEntry) => boolean, timeoutMs: number, since = 0, what = 'a matching log line'): Promise<LogEntry> {
    return new Promise<LogEntry>((resolve, reject) => {
      let scanned = since;
      const check = (): void => {
        for (; scanned < this.logs.length; scanned += 1) {
          const entry = this.logs[scanned] as LogEntry;
          if (predicate(entry)) {
            done();
            resolve(entry);
            return;
          }
        }
        if (this.exit !== undefined) {
          done();
          reject(new Error(`${this.label} exited (${describeExit(this.exit)}) before logging ${what}\n${this.tail()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.label}: no ${what} within ${timeoutMs} ms\n${this.tail()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  /** waitForLog by message text (exact, or a RegExp) and field values. */
  waitFor(message: string | RegExp, fields: Record<string, unknown> = {}, timeoutMs = 30_000, since = 0): Promise<LogEntry> {
    const what = `"${String(message)}"${Object.keys(fields).length > 0 ? ` with ${JSON.stringify(fields)}` : ''}`;
    return this.waitForLog((entry) => matches(entry, message, fields), timeoutMs, since, what);
  }

  /** SIGTERM, then waits for the exit; SIGKILLs and throws when it does not come within `timeoutMs`. */
  async stop(timeoutMs = DEFAULT_STOP_TIMEOUT_MS, signal: NodeJS.Signals = 'SIGTERM'): Promise<ExitResult & { durationMs: number }> {
    const t0 = Date.now();
    if (this.exit === undefined) this.signal(signal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const result = await Promise.race([this.exited, timedOut]).finally(() => clearTimeout(timer));
    if (result === 'timeout') {
      await this.kill();
      throw new Error(`${this.label} did not exit within ${timeoutMs} ms of SIGTERM (killed)\n${this.tail()}`);
    }
    return { ...result, durationMs: Date.now() - t0 };
  }

  /** SIGKILL and wait (bounded) for the process to be gone. */
  async kill(): Promise<ExitResult | undefined> {
    if (this.exit === undefined) this.signal('SIGKILL');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), 10_000);
    });
    return Promise.race([this.exited, timedOut]).finally(() => clearTimeout(timer));
  }

  /** To the process, or to its whole group when detached (as a terminal delivers Ctrl-C). */
  private signal(signal: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (this.detached && pid !== undefined) {
      try {
        process.kill(-pid, signal);
      } catch {
        // the group is gone already
      }
    } else this.child.kill(signal);
  }

  /** Everything the process wrote: log lines (re-serialized), other stdout lines and stderr. */
  output(): string {
    return [...this.logs.map((entry) => JSON.stringify(entry)), ...this.otherStdout, this.stderr].join('\n');
  }

  /** The last log lines and stderr, for failure messages. */
  tail(lines = 40): string {
    const logLines = this.logs.slice(-lines).map((entry) => JSON.stringify(entry));
    const other = this.otherStdout.slice(-10);
    return [
      `--- last ${logLines.length} of ${this.logs.length} log lines of ${this.label} (pid ${this.pid ?? '?'}):`,
      ...logLines,
      ...(other.length > 0 ? ['--- other stdout:', ...other] : []),
      ...(this.stderr.trim() !== '' ? ['--- stderr:', this.stderr.trim().split('\n').slice(-20).join('\n')] : []),
    ].join('\n');
  }
}

export function startAgent(options: StartOptions): AgentProcess {
  return new AgentProcess(options);
}

function matches(entry: LogEntry, message: string | RegExp, fields: Record<string, unknown>): boolean {
  const messageMatches = typeof message === 'string' ? entry.message === message : message.test(entry.message);
  return messageMatches && Object.entries(fields).every(([key, value]) => JSON.stringify(entry[key]) === JSON.stringify(value));
}

function describeExit(exit: ExitResult): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `code ${exit.code}`;
}

/**
 * Kills every agent still running, showing its log tail when the test failed. Runs after each
 * test on its own; call it first in a suite's afterEach that removes what agents use (buckets).
 */
export async function killAllAgents(context?: TestContext): Promise<void> {
  const failed = context?.task.result?.state === 'fail';
  for (const agent of [...running]) {
    if (failed) console.error(`[agent-process] test "${context?.task.name}" failed with ${agent.label} still running\n${agent.tail(60)}`);
    await agent.kill();
  }
}

// Whatever a test did, no agent outlives it.
afterEach(async (context: TestContext) => killAllAgents(context));

// A worker that ends (or is torn down) with agents running must not leave them behind.
process.once('exit', () => {
  for (const agent of running) {
    try {
      if (agent.pid !== undefined) process.kill(agent.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});
