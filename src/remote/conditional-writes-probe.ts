import type { Logger } from '../log.js';
import { configureConditionalWrites, type ConditionalWrites } from './conditional-writes.js';
import type { RemoteStore } from './store.js';

/**
 * The conditional-write probe (conditional-writes.ts) until it has an answer. It runs at start;
 * when the store could not be reached then, it runs again before each upload until it answers,
 * so no upload relies on a guess (a server that refuses If-None-Match would fail every upload,
 * and the manifest check depends on whether the header is honoured). Concurrent callers share
 * one probe, and an answer is final for the life of the process.
 */
export class ConditionalWritesProbe {
  private found: ConditionalWrites | undefined;
  private running: Promise<ConditionalWrites | undefined> | undefined;

  constructor(
    private readonly store: RemoteStore,
    private readonly log: Logger,
  ) {}

  /** Undefined until a probe reached the store. */
  get mode(): ConditionalWrites | undefined {
    return this.found;
  }

  /** The mode, probing first when no probe has reached the store yet; never throws. */
  ensure(): Promise<ConditionalWrites | undefined> {
    if (this.found !== undefined) return Promise.resolve(this.found);
    this.running ??= configureConditionalWrites(this.store, this.log)
      .then((mode) => {
        this.found = mode;
        return mode;
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }
}
