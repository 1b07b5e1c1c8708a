import { createHash } from 'node:crypto';
import { asAppError } from '../errors.js';
import type { AlignedComposePart } from '../delta/plain-part-split.js';
import type { ComposePartSpec, FileBody } from '../remote/store.js';
import { md5OfRangeOnThread } from '../snapshot/md5-offload.js';
import type { PlainPartMd5s } from './kept-part-md5s.js';

/**
 * The MD5s a composition's parts are checked against, as the local file holds them. A copied part
 * that is a whole part of the file's plain layout takes the MD5 its digest pass took; any other
 * copied range is read once more. The server's copies do not wait for those (see
 * delta-transfer.ts): they are taken while the server copies, on a thread, leaving the main
 * thread free.
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

/** Reads in this size while hashing a sent part or chunking a file already on disk. */
export const READ_BYTES = 1024 * 1024;

/** Shows `onBlock` the `length` bytes of `body` from `start` on, in order, read through `buffer`. */
export async function readRange(body: FileBody, start: number, length: number, buffer: Buffer, onBlock: (bytes: Buffer) => void): Promise<void> {
  for (let offset = 0; offset < length; offset += buffer.length) {
    const view = buffer.subarray(0, Math.min(buffer.length, length - offset));
    await body.read(view, start + offset);
    onBlock(view);
  }
}

export interface PartSpecSources {
  body: FileBody;
  /** The plain layout's part MD5s from the digest pass, for the parts that are whole parts of it. */
  kept: PlainPartMd5s | undefined;
  copiedPartMd5s: RangeMd5s;
  /** Stops the MD5s still being taken. */
  stop: AbortSignal;
}

/**
 * The parts with their MD5s. A sent part's is taken here, as it is sent with it; a copied part's
 * is the kept one when it is a whole plain part, else a promise, taken on a thread while the
 * server copies. Returns how many copied parts took a kept MD5.
 */
export async function composePartSpecs(parts: readonly AlignedComposePart[], sources: PartSpecSources): Promise<{ specs: ComposePartSpec[]; reusedMd5s: number }> {
  const { body, kept, stop } = sources;
  const keptMd5Of = (part: AlignedComposePart): Buffer | undefined => (part.kind === 'copy' && part.plainPartIndex !== undefined ? kept?.md5s[part.plainPartIndex] : undefined);
  const toRead = parts.filter((part) => part.kind === 'copy' && keptMd5Of(part) === undefined);
  const readMd5s = sources.copiedPartMd5s(body, toRead.map((part) => ({ start: part.targetStart, length: part.length })), stop);
  // A composition that fails first never asks for the rest; their failure is then nobody's news.
  for (const md5 of readMd5s) md5.catch(() => undefined);
  const specs: ComposePartSpec[] = [];
  const buffer = Buffer.allocUnsafe(READ_BYTES);
  let readIndex = 0;
  let reusedMd5s = 0;
  for (const part of parts) {
    if (part.kind === 'copy') {
      const known = keptMd5Of(part);
      const md5Hex = known === undefined ? (readMd5s[readIndex++] as Promise<string>) : known.toString('hex');
      if (known !== undefined) reusedMd5s += 1;
      specs.push({ kind: 'copy', sourceStart: part.sourceStart, sourceEnd: part.sourceEnd, md5Hex });
      continue;
    }
    const md5 = createHash('md5');
    await readRange(body, part.targetStart, part.length, buffer, (bytes) => void md5.update(bytes));
    specs.push({ kind: 'send', targetStart: part.targetStart, length: part.length, md5Hex: md5.digest('hex') });
  }
  return { specs, reusedMd5s };
}
