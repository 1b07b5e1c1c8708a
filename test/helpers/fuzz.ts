import { AppError, type ErrorKind } from '../../src/errors.js';
import { seededRandom } from './random.js';

/**
 * Seeded generation of hostile inputs. Every run picks a fresh seed unless FUZZ_SEED gives one,
 * and every failure names the seed and the case, so a failing input can be made again exactly:
 * `FUZZ_SEED=<seed> npx vitest run --project unit test/unit/<file>`.
 */

/** FUZZ_SEED when given, else a fresh one. */
export function fuzzSeed(): number {
  const given = Number(process.env.FUZZ_SEED);
  return Number.isInteger(given) && given > 0 ? given : 1 + Math.floor(Math.random() * (2 ** 31 - 1));
}

export class Fuzz {
  private readonly next: () => number;

  constructor(readonly seed: number) {
    this.next = seededRandom(seed);
  }

  /** In [0, 1). */
  float(): number {
    return this.next();
  }

  /** An integer in [0, below). */
  int(below: number): number {
    return Math.floor(this.next() * below);
  }

  /** An integer in [low, high], both included. */
  between(low: number, high: number): number {
    return low + this.int(high - low + 1);
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from nothing');
    return items[this.int(items.length)] as T;
  }

  bytes(length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    for (let i = 0; i < length; i += 1) out[i] = this.int(256);
    return out;
  }

  /** Text of `length` characters drawn from `alphabet`. */
  text(length: number, alphabet: string): string {
    const characters = [...alphabet];
    let out = '';
    for (let i = 0; i < length; i += 1) out += this.pick(characters);
    return out;
  }

  /** A string meant to break whatever reads it: control characters, lone surrogates, other scripts, separators, dots. */
  hostileText(maxLength: number): string {
    const pieces = ['..', '.', '/', '\\', '\u0000', '\u001f', '\u007f', '\ud800', '\udfff', '\u202e', '\ufeff', 'é', '日本', '🧠', ' ', '%2e%2e', '&amp;', '"', "'", '<', '>', '__proto__', 'constructor', 'latest', '_20991231_235959'];
    let out = '';
    const target = this.between(0, maxLength);
    while (out.length < target) out += this.chance(0.5) ? this.pick(pieces) : this.text(this.between(1, 8), 'abcXYZ019_-.');
    return out.slice(0, maxLength);
  }
}

export interface FuzzFailure {
  seed: number;
  caseIndex: number;
  input: string;
  problem: string;
}

/** A short, printable account of an input, for failure messages. */
export function preview(input: unknown, maxChars = 300): string {
  let text: string;
  if (Buffer.isBuffer(input)) text = `${input.length} bytes: ${JSON.stringify(input.subarray(0, maxChars).toString('latin1'))}`;
  else if (typeof input === 'string') text = `${input.length} chars: ${JSON.stringify(input.slice(0, maxChars))}`;
  else text = JSON.stringify(input) ?? String(input);
  return text.length > maxChars + 40 ? `${text.slice(0, maxChars + 40)}...` : text;
}

/** Why `error` is not a failure of one of `kinds`, or undefined when it is. */
export function unexpectedFailure(error: unknown, kinds: readonly ErrorKind[]): string | undefined {
  if (error instanceof AppError) return kinds.includes(error.kind) ? undefined : `AppError of kind ${error.kind} (expected ${kinds.join(' or ')}): ${error.message.slice(0, 300)}`;
  const name = error instanceof Error ? error.constructor.name : typeof error;
  return `raw ${name} instead of an AppError: ${error instanceof Error ? `${error.message.slice(0, 300)}\n${(error.stack ?? '').split('\n').slice(1, 6).join('\n')}` : String(error)}`;
}

/** One message for every failed case, led by the seed that replays them. */
export function describeFailures(failures: readonly FuzzFailure[], total: number): string {
  if (failures.length === 0) return '';
  const first = failures[0] as FuzzFailure;
  const lines = failures.slice(0, 5).map((f) => `  case ${f.caseIndex}: ${f.problem}\n    input ${f.input}`);
  return `${failures.length} of ${total} cases failed; replay with FUZZ_SEED=${first.seed}\n${lines.join('\n')}`;
}
