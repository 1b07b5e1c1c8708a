// Resource figures of a tool's process tree, read from /proc (Linux only):
// - one-shot commands (the peers, `memsync download|status`) run under GNU `/usr/bin/time`, whose
//   figures are exact: user+sys CPU of every waited-for descendant, and the largest max RSS of one
//   process in the tree (getrusage(RUSAGE_CHILDREN).ru_maxrss);
// - the long-running agent is sampled: /proc/PID/stat utime+stime of the process and its living
//   descendants (differences between two samples give the CPU of a window) and /proc/PID/status
//   VmRSS (polled, summed over the tree) and VmHWM (the kernel's own peak per process).
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const CLOCK_TICKS_PER_S = 100; // getconf CLK_TCK on Linux x86_64
const KIB = 1024;

export interface Usage {
  wallMs: number;
  cpuS: number;
  peakRssBytes: number;
}

export interface CommandResult extends Usage {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function loadAverage(): string {
  return os.loadavg().map((v) => v.toFixed(2)).join(' ');
}

/** Runs a command to its end under `/usr/bin/time`; rejects on a non-zero exit or after `timeoutMs`. */
export async function timeCommand(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number; timeFile: string; allowFailure?: boolean },
): Promise<CommandResult> {
  const t0 = performance.now();
  const child = spawn('/usr/bin/time', ['-f', '%U %S %M', '-o', options.timeFile, command, ...args], {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout = keepTail(stdout + chunk)));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = keepTail(stderr + chunk)));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode) => resolve(exitCode));
  }).finally(() => clearTimeout(timer));
  const wallMs = performance.now() - t0;
  const timeText = await readFile(options.timeFile, 'utf8').catch(() => '');
  await rm(options.timeFile, { force: true });
  // The last line: time writes "Command exited with non-zero status N" above it on failure.
  const figures = timeText.trim().split('\n').pop()?.split(' ').map(Number) ?? [];
  const [user = Number.NaN, sys = Number.NaN, maxRssKib = Number.NaN] = figures;
  if (code !== 0 && options.allowFailure !== true) {
    throw new Error(`${command} ${args.join(' ')} exited ${code} after ${Math.round(wallMs)} ms\n${stderr.slice(-2000)}\n${stdout.slice(-1000)}`);
  }
  return { code, stdout, stderr, wallMs, cpuS: user + sys, peakRssBytes: maxRssKib * KIB };
}

function keepTail(text: string): string {
  return text.length > 1_000_000 ? text.slice(-500_000) : text;
}

interface ProcSample {
  cpuTicks: number;
  /** Sum of the threads' /proc/PID/task/TID/schedstat run times: nanoseconds, where ticks are 10 ms. */
  cpuNs: number;
  rssBytes: number;
  hwmBytes: number;
}

function readProc(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuTicks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    let cpuNs = 0;
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        cpuNs += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // thread ended
      }
    }
    return { cpuTicks, cpuNs, rssBytes: kib('VmRSS') * KIB, hwmBytes: kib('VmHWM') * KIB };
  } catch {
    return undefined; // gone
  }
}

function descendants(pid: number): number[] {
  const found: number[] = [];
  const visit = (p: number, depth: number): void => {
    if (depth > 8) return;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const task of tasks) {
      let children: string;
      try {
        children = readFileSync(path.join(`/proc/${p}/task`, task, 'children'), 'utf8');
      } catch {
        continue;
      }
      for (const child of children.split(' ').filter((c) => c !== '').map(Number)) {
        found.push(child);
        visit(child, depth + 1);
      }
    }
  };
  visit(pid, 0);
  return found;
}

/** Samples a running process tree; `window()` gives CPU and peak RSS since `mark()`. */
export class TreeSampler {
  private timer: NodeJS.Timeout | undefined;
  private markCpuTicks = 0;
  private markMs = 0;
  private peakTreeRss = 0;
  /** Last CPU ticks seen per pid, so a child that exits between samples is still counted. */
  private readonly cpuByPid = new Map<number, number>();
  private readonly cpuNsByPid = new Map<number, number>();
  private markCpuNs = 0;
  private readonly hwmByPid = new Map<number, number>();

  constructor(
    private readonly rootPid: number,
    private readonly intervalMs: number,
  ) {}

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  sample(): void {
    let rss = 0;
    for (const pid of [this.rootPid, ...descendants(this.rootPid)]) {
      const s = readProc(pid);
      if (s === undefined) continue;
      rss += s.rssBytes;
      this.cpuByPid.set(pid, s.cpuTicks);
      this.cpuNsByPid.set(pid, s.cpuNs);
      this.hwmByPid.set(pid, Math.max(this.hwmByPid.get(pid) ?? 0, s.hwmBytes));
    }
    this.peakTreeRss = Math.max(this.peakTreeRss, rss);
  }

  private totalCpuTicks(): number {
    let total = 0;
    for (const ticks of this.cpuByPid.values()) total += ticks;
    return total;
  }

  /** CPU seconds since the tree's processes started, and the kernel's peak RSS (VmHWM) of its largest process. */
  lifetime(): Usage {
    this.sample();
    return { wallMs: Number.NaN, cpuS: this.totalCpuTicks() / CLOCK_TICKS_PER_S, peakRssBytes: Math.max(0, ...this.hwmByPid.values()) };
  }

  /**
   * Resets the kernel's high-water mark of resident memory (VmHWM) of every process in the tree
   * (`/proc/PID/clear_refs`, value 5), so the next window's peak is its own and not the largest
   * since the process started: for a long-running process measured window by window.
   */
  resetPeak(): void {
    for (const pid of [this.rootPid, ...descendants(this.rootPid)]) {
      try {
        writeFileSync(`/proc/${pid}/clear_refs`, '5');
      } catch {
        // gone, or not ours to reset: its peak then stays the lifetime one
      }
    }
    this.hwmByPid.clear();
  }

  /** Starts a measurement window: CPU from now on, peak RSS polled from now on. */
  mark(): void {
    this.sample();
    this.markCpuTicks = this.totalCpuTicks();
    this.markCpuNs = sum(this.cpuNsByPid.values());
    this.markMs = performance.now();
    this.peakTreeRss = 0;
    this.sample();
  }

  /** CPU seconds and peak RSS of the window; the peak is the larger of the polled tree sum and the kernel's VmHWM. */
  window(): Usage & { rssNowBytes: number; hwmBytes: number; cpuPreciseS: number } {
    this.sample();
    // Threads live as long as the process here (libuv pool, V8 workers), so the schedstat sum is the precise figure of a window.
    const cpuPreciseS = (sum(this.cpuNsByPid.values()) - this.markCpuNs) / 1e9;
    const hwmBytes = Math.max(0, ...this.hwmByPid.values());
    const rssNowBytes = readProc(this.rootPid)?.rssBytes ?? 0;
    return {
      wallMs: performance.now() - this.markMs,
      cpuS: (this.totalCpuTicks() - this.markCpuTicks) / CLOCK_TICKS_PER_S,
      peakRssBytes: Math.max(this.peakTreeRss, hwmBytes),
      rssNowBytes,
      hwmBytes,
      cpuPreciseS,
    };
  }
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

/** Bytes the process read through read(2) and friends, page cache included (/proc/PID/io rchar). */
export function readChars(pid: number): number | undefined {
  try {
    return Number(/^rchar:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1]);
  } catch {
    return undefined;
  }
}
