import { scrypt } from 'node:crypto';
import type { ScryptParams } from './format.js';

/**
 * Stretching a passphrase into a master key with scrypt. A derivation holds 128 * N * r bytes
 * for as long as it runs, on a thread of the libuv pool that file reads and DNS share, and
 * every object's header names the salt to derive: these are the pieces that keep a bucket of
 * hostile headers from multiplying that cost.
 */

/** Turns a passphrase and an object's salt into its 32-byte master key. */
export type DeriveMasterKey = (passphrase: string, salt: Buffer, params: ScryptParams) => Promise<Buffer>;

export const MASTER_KEY_BYTES = 32;

export const scryptMasterKey: DeriveMasterKey = (passphrase, salt, { log2N, r, p }) => {
  const N = 2 ** log2N;
  return new Promise((resolve, reject) => {
    // maxmem must cover 128 * N * r bytes, plus headroom.
    scrypt(passphrase, salt, MASTER_KEY_BYTES, { N, r, p, maxmem: 128 * N * r * (p + 1) + 16 * 1024 * 1024 }, (error, key) => (error === null ? resolve(key) : reject(error)));
  });
};

/** Runs tasks one after another, in the order given; a failed task does not hold up the ones behind it. */
export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

/**
 * Every derivation in the process waits its turn here, whichever keyring asks: objects with
 * distinct salts (a restore, a verify and the start-up download at once, or planted ones) then
 * cost one derivation's memory and one pool thread, never one each.
 */
export const derivationQueue = new SerialQueue();

/**
 * Master keys by salt and parameters, least recently used dropped first. An entry is the
 * derivation's promise from the moment it starts, so concurrent readers of one salt share a
 * single derivation; a failed one is dropped, so the next reader tries again.
 */
export class DerivedKeyCache {
  private readonly entries = new Map<string, Promise<Buffer>>();

  constructor(private readonly maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError(`a key cache needs room for at least one salt, not ${maxEntries}`);
  }

  get(key: string, derive: () => Promise<Buffer>): Promise<Buffer> {
    const cached = this.entries.get(key);
    if (cached !== undefined) {
      // A Map iterates in insertion order: inserting again makes the first entry the least recently used.
      this.entries.delete(key);
      this.entries.set(key, cached);
      return cached;
    }
    const derived = derive();
    this.entries.set(key, derived);
    derived.catch(() => {
      if (this.entries.get(key) === derived) this.entries.delete(key);
    });
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
    return derived;
  }
}
