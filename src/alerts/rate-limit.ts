/**
 * At most one message per key (an event type, a warning) per interval; what is held back is
 * counted and reported with the next message that goes out. Pure: the caller keeps the slots.
 */

export interface RateSlot {
  lastSentMs: number;
  /** Messages held back since the last one sent. */
  suppressed: number;
}

export type RateVerdict = { send: true; suppressed: number; slot: RateSlot } | { send: false; slot: RateSlot };

export function admit(slot: RateSlot | undefined, nowMs: number, intervalMs: number): RateVerdict {
  // A clock stepping back (NTP) must not silence a key for the size of the step.
  if (slot === undefined || nowMs - slot.lastSentMs >= intervalMs || nowMs < slot.lastSentMs) {
    return { send: true, suppressed: slot?.suppressed ?? 0, slot: { lastSentMs: nowMs, suppressed: 0 } };
  }
  return { send: false, slot: { lastSentMs: slot.lastSentMs, suppressed: slot.suppressed + 1 } };
}

/** A keyed limiter around admit(), for callers that do not need to see the slots. */
export class RateLimiter {
  private readonly slots = new Map<string, RateSlot>();

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number,
  ) {}

  /** The number of messages suppressed since the last one, when this one may go out; undefined when it may not. */
  take(key: string): number | undefined {
    const verdict = admit(this.slots.get(key), this.now(), this.intervalMs);
    this.slots.set(key, verdict.slot);
    return verdict.send ? verdict.suppressed : undefined;
  }
}
