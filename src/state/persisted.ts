import type { z } from 'zod';
import type { Logger } from '../log.js';
import { describeError } from '../errors.js';
import { readJsonFile, writeFileAtomic } from './atomic-file.js';
import { rename } from 'node:fs/promises';

/**
 * A JSON document in the state directory, validated on load and saved atomically. Saves are
 * coalesced: many changes in a burst cost one write, and flush() forces it (on stop).
 * Without a file path the document lives in memory only: a CLI command works on its own
 * copy of the agent's state, because a running agent owns the files and would overwrite
 * (or be overwritten by) a second writer.
 */
/** Whether the document's last save reached the disk; a failure stays until a save succeeds. */
export interface SaveHealth {
  ok: boolean;
  lastFailure: { atMs: number; file: string; message: string } | undefined;
  /** Saves that failed since the process started. */
  failures: number;
}

export interface PersistedJsonOptions {
  /** Changes within this window are saved together (default 500 ms). */
  saveDelayMs?: number;
  /** After a failed save, the next attempt comes this much later even without a new change (default 5 s). */
  retryDelayMs?: number;
  now?: () => number;
  /** Replaces the atomic file write (tests of a state directory that refuses writes, which root cannot make). */
  write?: (filePath: string, content: string) => Promise<void>;
}

export class PersistedJson<T> {
  private value: T;
  private dirty = false;
  private loadedFromDisk = false;
  private saveHealth: SaveHealth = { ok: true, lastFailure: undefined, failures: 0 };
  private timer: NodeJS.Timeout | undefined;
  private saving: Promise<void> = Promise.resolve();

  constructor(
    private readonly filePath: string | undefined,
    private readonly schema: z.ZodType<T>,
    private readonly initial: () => T,
    private readonly log: Logger,
    private readonly options: PersistedJsonOptions = {},
  ) {
    this.value = initial();
  }

  get current(): T {
    return this.value;
  }

  /** True once load() found a valid document on disk: its values have survived a restart before. */
  get wasLoaded(): boolean {
    return this.loadedFromDisk;
  }

  get health(): SaveHealth {
    return { ...this.saveHealth };
  }

  /** Loads the file; a corrupt one is set aside (never silently overwritten) and replaced by a fresh value. */
  async load(): Promise<T> {
    if (this.filePath === undefined) return this.value;
    let raw: unknown;
    try {
      raw = await readJsonFile(this.filePath);
    } catch (error) {
      raw = { corrupt: describeError(error) };
    }
    if (raw === undefined) return this.value;
    const parsed = this.schema.safeParse(raw);
    if (parsed.success) {
      this.value = parsed.data;
      this.loadedFromDisk = true;
    } else {
      const aside = `${this.filePath}.corrupt-${Date.now()}`;
      await rename(this.filePath, aside).catch(() => undefined);
      this.log.warn('state file unreadable, starting fresh', { file: this.filePath, setAside: aside });
    }
    return this.value;
  }

  update(change: (value: T) => void): void {
    change(this.value);
    if (this.filePath === undefined) return;
    this.dirty = true;
    this.scheduleSave(this.options.saveDelayMs ?? 500);
  }

  private scheduleSave(delayMs: number): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
    // A pending retry must not keep a stopping process alive; stop() flushes explicitly.
    this.timer.unref();
  }

  /** Saves now and throws if the document did not reach the disk (flush() only logs). */
  async saveNow(): Promise<void> {
    if (this.filePath === undefined) return;
    this.dirty = true;
    await this.flush();
    const failure = this.saveHealth.lastFailure;
    if (!this.saveHealth.ok && failure !== undefined) throw new Error(failure.message);
  }

  async flush(): Promise<void> {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    // Saves run one after another so an older snapshot of the state never lands last.
    const filePath = this.filePath;
    this.saving = this.saving.then(async () => {
      if (!this.dirty || filePath === undefined) return;
      this.dirty = false;
      try {
        await (this.options.write ?? writeFileAtomic)(filePath, JSON.stringify(this.value));
        if (!this.saveHealth.ok) this.log.info('state saved again', { file: filePath, failuresMeanwhile: this.saveHealth.failures });
        this.saveHealth = { ...this.saveHealth, ok: true, lastFailure: undefined };
      } catch (error) {
        this.dirty = true;
        const message = describeError(error);
        this.saveHealth = { ok: false, lastFailure: { atMs: (this.options.now ?? Date.now)(), file: filePath, message }, failures: this.saveHealth.failures + 1 };
        this.log.error('cannot save state', { file: filePath, error: message, hint: 'memsync keeps its agent id, counters and conflicts there: make the state directory writable' });
        this.scheduleSave(this.options.retryDelayMs ?? 5_000);
      }
    });
    return this.saving;
  }
}
