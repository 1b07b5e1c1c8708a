import { asAppError } from '../errors.js';
import type { FileBody } from '../remote/store.js';
import { md5OfRangeOnThread } from '../snapshot/md5-offload.js';

/**
 * The MD5s a composition's copied parts are checked against: the same ranges of the local file,
 * read once more. The server's copies do not wait for them (see delta-transfer.ts), so they are
 * taken while the server copies, on a thread, leaving the main thread free.
 */

export interface FileRange {
  start: number;
  length: number;
}

/**
 * MD5s (hex) of ranges of a local file, one promise per range, each settled once known; stopped
 * (rejected) when `signal` aborts. The caller handles every rejection.
 */
export type RangeMd5s = (body: FileBody, ranges: readonly FileRange[], signal: AbortSignal) => Promise<string>[];

interface Pending {
  promise: Promise<string>;
  resolve: (md5Hex: string) => void;
  reject: (error: unknown) => void;
}

function pending(): Pending {
  let resolve!: (md5Hex: string) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<string>((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  return { promise, resolve, reject };
}

/**
 * One range after another, in the order given, on one hashing thread at a time: the first copied
 * part, which the server finishes first, is checkable first, and the digest work of other files
 * keeps the other core. A failed read fails the range and every one after it.
 */
export const rangeMd5sOnThread: RangeMd5s = (body, ranges, signal) => {
  const results = ranges.map(pending);
  void (async () => {
    for (const [index, range] of ranges.entries()) {
      const result = results[index] as Pending;
      try {
        result.resolve(await md5OfRangeOnThread((target, position) => body.read(target, position), range.start, range.length, signal));
      } catch (error) {
        const failure = asAppError(error, 'local_io', `MD5 of the local file's bytes ${range.start}-${range.start + range.length - 1}`);
        for (const rest of results.slice(index)) rest.reject(failure);
        return;
      }
    }
  })();
  return results.map((result) => result.promise);
};
