import { describeError, isAppError } from '../errors.js';
import type { Logger } from '../log.js';
import { statSnapshot, type SnapshotStat } from '../snapshot/scan.js';
import { judgeSettle, type SettleState } from './settle.js';

export interface SettlerOptions {
  backupDir: string;
  settleMs: number;
  now: () => number;
  log: Logger;
  onSettled: (stat: SnapshotStat) => void;
  onGone: (name: string) => void;
}

interface Tracked {
  state: SettleState | undefined;
  timer: NodeJS.Timeout | undefined;
  checking: boolean;
  recheck: boolean;
}

/** A first look shortly after activity batches the burst of events one file copy produces. */
const FIRST_CHECK_DELAY_MS = 50;
/** Names already reported gone, remembered so one prune is one event; bounded, oldest forgotten first. */
const MAX_REMEMBERED_GONE = 10_000;

/**
 * Turns activity on snapshot names into "settled" and "gone" events, re-statting each
 * active snapshot on a timer until it has been quiet for the settle window.
 */
export class Settler {
  private readonly tracked = new Map<string, Tracked>();
  /**
   * A recursive delete produces one event per file and directory, each of which finds the
   * snapshot gone: "gone" is reported once, until the name is seen to exist again.
   */
  private readonly reportedGone = new Set<string>();
  private stopped = false;

  constructor(private readonly options: SettlerOptions) {}

  /** Something happened to this snapshot (an event, a sweep, a retry): find out whether it is settled. */
  touch(name: string): void {
    if (this.stopped) return;
    let tracked = this.tracked.get(name);
    if (tracked === undefined) {
      tracked = { state: undefined, timer: undefined, checking: false, recheck: false };
      this.tracked.set(name, tracked);
    }
    if (tracked.checking) tracked.recheck = true;
    else if (tracked.timer === undefined) this.schedule(name, tracked, FIRST_CHECK_DELAY_MS);
  }

  isSettling(name: string): boolean {
    return this.tracked.has(name);
  }

  get settlingCount(): number {
    return this.tracked.size;
  }

  stop(): void {
    this.stopped = true;
    for (const tracked of this.tracked.values()) clearTimeout(tracked.timer);
    this.tracked.clear();
  }

  private schedule(name: string, tracked: Tracked, delayMs: number): void {
    clearTimeout(tracked.timer);
    tracked.timer = setTimeout(() => {
      tracked.timer = undefined;
      void this.check(name, tracked);
    }, delayMs);
  }

  private async check(name: string, tracked: Tracked): Promise<void> {
    if (this.stopped || this.tracked.get(name) !== tracked) return;
    tracked.checking = true;
    tracked.recheck = false;
    let stat: SnapshotStat;
    try {
      stat = await statSnapshot(this.options.backupDir, name);
    } catch (error) {
      tracked.checking = false;
      if (this.tracked.get(name) !== tracked) return;
      this.tracked.delete(name);
      if (isAppError(error, 'snapshot_gone')) this.reportGone(name);
      // A link or a special file where a snapshot would be: the same warning the sweep gives.
      else if (isAppError(error, 'bad_input')) this.options.log.warn('skipping entry in backup directory', { entry: name, reason: error.message });
      else this.options.log.error('cannot read snapshot', { snapshot: name, error: describeError(error) });
      return;
    }
    tracked.checking = false;
    this.reportedGone.delete(name);
    if (this.stopped || this.tracked.get(name) !== tracked) return;
    const now = this.options.now();
    const { verdict, state } = judgeSettle(tracked.state, stat, now, this.options.settleMs);
    tracked.state = state;
    if (tracked.recheck && verdict.verdict !== 'wait') {
      // Activity arrived while statting: look again before declaring anything.
      this.schedule(name, tracked, FIRST_CHECK_DELAY_MS);
      return;
    }
    if (verdict.verdict === 'settled') {
      this.tracked.delete(name);
      this.options.onSettled(stat);
    } else if (verdict.verdict === 'wait') {
      this.schedule(name, tracked, verdict.checkAtMs - now);
    } else {
      this.tracked.delete(name);
      this.options.log.debug('snapshot has no files yet', { snapshot: name });
    }
  }

  private reportGone(name: string): void {
    if (this.reportedGone.has(name)) return;
    this.reportedGone.add(name);
    if (this.reportedGone.size > MAX_REMEMBERED_GONE) {
      const oldest = this.reportedGone.values().next().value;
      if (oldest !== undefined) this.reportedGone.delete(oldest);
    }
    this.options.onGone(name);
  }
}
