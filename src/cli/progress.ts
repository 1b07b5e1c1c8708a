import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import { formatBytes } from './format.js';

/**
 * Progress of long transfers on stderr, so stdout stays the command's answer (and parseable
 * with --json). In a terminal: one bar per transfer (cli-progress). Elsewhere (a pipe, a log
 * file, CI): a plain line per transfer every few seconds, and none for a transfer that ends
 * before the first, so short runs stay quiet.
 */

export interface Transfer {
  id: string;
  label: string;
  doneBytes: number;
  totalBytes: number;
}

export interface ProgressDisplay {
  /** The transfers in progress now; one absent since the last call has ended. */
  show(transfers: readonly Transfer[]): void;
  /** A line (a warning, a result) printed without tearing the bars. */
  log(line: string): void;
  stop(): void;
}

export interface ProgressOptions {
  /** Bars when stdout and stderr are both terminals; plain lines otherwise. */
  interactive: boolean;
  stream: NodeJS.WritableStream & { isTTY?: boolean };
  now?: () => number;
  /** Plain mode: at most one line per transfer this often. */
  lineIntervalMs?: number;
}

const DEFAULT_LINE_INTERVAL_MS = 5000;
/** How often pollers sample progress: smooth enough for a bar, negligible cost. */
export const PROGRESS_POLL_MS = 200;

export function createProgressDisplay(options: ProgressOptions): ProgressDisplay {
  return options.interactive ? new BarDisplay(options.stream) : new LineDisplay(options.stream, options.now ?? Date.now, options.lineIntervalMs ?? DEFAULT_LINE_INTERVAL_MS);
}

/** Samples `poll` until the returned function is called; used where progress is state to read (uploads, restores). */
export function pollProgress(display: ProgressDisplay, poll: () => readonly Transfer[], intervalMs = PROGRESS_POLL_MS): () => void {
  const timer = setInterval(() => display.show(poll()), intervalMs);
  return () => {
    clearInterval(timer);
    display.show([]);
  };
}

export function transferLine(transfer: Transfer): string {
  const percent = transfer.totalBytes === 0 ? 100 : Math.floor((Math.max(0, transfer.doneBytes) / transfer.totalBytes) * 100);
  return `${transfer.label}: ${percent}% (${formatBytes(Math.max(0, transfer.doneBytes))} of ${formatBytes(transfer.totalBytes)})`;
}

class LineDisplay implements ProgressDisplay {
  /** When each transfer in progress was first seen and last reported. */
  private readonly seen = new Map<string, { lastLineMs: number }>();

  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly now: () => number,
    private readonly intervalMs: number,
  ) {}

  show(transfers: readonly Transfer[]): void {
    const nowMs = this.now();
    const current = new Set(transfers.map((t) => t.id));
    for (const id of this.seen.keys()) if (!current.has(id)) this.seen.delete(id);
    for (const transfer of transfers) {
      const seen = this.seen.get(transfer.id);
      if (seen === undefined) this.seen.set(transfer.id, { lastLineMs: nowMs });
      else if (nowMs - seen.lastLineMs >= this.intervalMs) {
        seen.lastLineMs = nowMs;
        this.stream.write(`${transferLine(transfer)}\n`);
      }
    }
  }

  log(line: string): void {
    this.stream.write(`${line}\n`);
  }

  stop(): void {
    this.seen.clear();
  }
}

class BarDisplay implements ProgressDisplay {
  private multibar: MultiBar | undefined;
  private readonly bars = new Map<string, SingleBar>();

  constructor(private readonly stream: NodeJS.WritableStream) {}

  show(transfers: readonly Transfer[]): void {
    const current = new Set(transfers.map((t) => t.id));
    for (const [id, bar] of this.bars) {
      if (current.has(id)) continue;
      this.multibar?.remove(bar);
      this.bars.delete(id);
    }
    if (transfers.length === 0) {
      this.stop();
      return;
    }
    // Created on demand and stopped when idle: an idle MultiBar would hold the cursor hidden.
    this.multibar ??= new MultiBar(
      {
        stream: this.stream,
        format: '{label} |{bar}| {percentage}% {done} of {size}',
        hideCursor: true,
        clearOnComplete: true,
        autopadding: true,
        barsize: 30,
        // memsync handles SIGINT/SIGTERM itself and stops the display there.
        gracefulExit: false,
      },
      Presets.shades_classic,
    );
    for (const transfer of transfers) {
      const payload = { label: transfer.label, done: formatBytes(Math.max(0, transfer.doneBytes)), size: formatBytes(transfer.totalBytes) };
      const total = Math.max(1, transfer.totalBytes);
      const value = Math.min(total, Math.max(0, transfer.doneBytes));
      const bar = this.bars.get(transfer.id);
      if (bar === undefined) this.bars.set(transfer.id, this.multibar.create(total, value, payload));
      else {
        bar.setTotal(total);
        bar.update(value, payload);
      }
    }
  }

  log(line: string): void {
    if (this.multibar === undefined) {
      this.stream.write(`${line}\n`);
      return;
    }
    // Logged lines wait for the next redraw; redraw now so none is lost if the display stops first.
    this.multibar.log(`${line}\n`);
    this.multibar.update();
  }

  stop(): void {
    this.multibar?.stop();
    this.multibar = undefined;
    this.bars.clear();
  }
}
