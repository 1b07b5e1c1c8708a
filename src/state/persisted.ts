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
export class PersistedJson<T> {
  private value: T;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private saving: Promise<void> = Promise.resolve();

  constructor(
    private readonly filePath: string | undefined,
    private readonly schema: z.ZodType<T>,
    private readonly initial: () => T,
    private readonly log: Logger,
    private readonly saveDelayMs = 500,
  ) {
    this.value = initial();
  }

  get current(): T {
    return this.value;
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
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.saveDelayMs);
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
        await writeFileAtomic(filePath, JSON.stringify(this.value));
      } catch (error) {
        this.dirty = true;
        this.log.error('cannot save state', { file: this.filePath, error: describeError(error) });
      }
    });
    return this.saving;
  }
}
