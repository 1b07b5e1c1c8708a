/**
 * Which bytes of a file being filled out of order have been written, reduced to what the
 * in-order hash needs: how long the gap-free prefix from byte 0 is. Writes land in any order
 * (parallel ranges, several writes per range); the prefix only grows once the gap before a
 * write is closed. Pure: no I/O.
 */
export class WrittenExtents {
  /** Written extents past the prefix, as start -> end (exclusive); they never overlap the prefix. */
  private readonly pending = new Map<number, number>();
  private prefix = 0;

  /** Bytes [0, prefixBytes) are all written. */
  get prefixBytes(): number {
    return this.prefix;
  }

  /** Records that [start, start + length) is written; returns the prefix after it. */
  add(start: number, length: number): number {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length) || start < 0 || length < 0) {
      throw new RangeError(`not a byte extent: ${start} + ${length}`);
    }
    if (length === 0) return this.prefix;
    if (start < this.prefix || this.pending.has(start)) throw new RangeError(`extent at ${start} written twice`);
    this.pending.set(start, start + length);
    for (let end = this.pending.get(this.prefix); end !== undefined; end = this.pending.get(this.prefix)) {
      this.pending.delete(this.prefix);
      this.prefix = end;
    }
    return this.prefix;
  }
}
