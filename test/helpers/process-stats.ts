// Resident memory and open file descriptors of a process (Linux /proc), sampled on a timer, to
// tell a process that holds steady from one that leaks over a long run.
import { readdir, readFile } from 'node:fs/promises';

export interface ProcessSample {
  atMs: number;
  rssBytes: number;
  openFds: number;
}

const KIB = 1024;

/** One sample of `pid`, or undefined when the process is gone (or /proc is not there). */
export async function sampleProcess(pid: number): Promise<ProcessSample | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const rssKib = Number(/^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1] ?? Number.NaN);
    const openFds = (await readdir(`/proc/${pid}/fd`)).length;
    if (!Number.isFinite(rssKib)) return undefined;
    return { atMs: Date.now(), rssBytes: rssKib * KIB, openFds };
  } catch {
    return undefined;
  }
}

export interface SampleSummary {
  first: ProcessSample;
  last: ProcessSample;
  maxRssBytes: number;
  maxOpenFds: number;
  count: number;
}

/** Samples a process every `intervalMs` until stopped; samples are kept in order. */
export class ProcessSampler {
  readonly samples: ProcessSample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly pid: number,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    const tick = (): void => {
      this.pending = this.sampleNow().then(() => undefined);
    };
    tick();
    this.timer = setInterval(tick, this.intervalMs);
  }

  async sampleNow(): Promise<ProcessSample | undefined> {
    const sample = await sampleProcess(this.pid);
    if (sample !== undefined) this.samples.push(sample);
    return sample;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.pending;
  }

  /** Summary of the samples taken at or after `fromMs` (all by default). */
  summary(fromMs = 0): SampleSummary | undefined {
    const samples = this.samples.filter((s) => s.atMs >= fromMs);
    const first = samples[0];
    const last = samples[samples.length - 1];
    if (first === undefined || last === undefined) return undefined;
    return {
      first,
      last,
      maxRssBytes: Math.max(...samples.map((s) => s.rssBytes)),
      maxOpenFds: Math.max(...samples.map((s) => s.openFds)),
      count: samples.length,
    };
  }
}

export function mib(bytes: number): string {
  return `${(bytes / (KIB * KIB)).toFixed(1)} MiB`;
}
