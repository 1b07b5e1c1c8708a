// Chunker throughput: `node --import tsx bench/chunker-throughput.ts`. Prints MiB/s for boundary
// detection alone and for the whole chunker (boundaries and a SHA-256 per chunk) over 512 MiB of
// seeded pseudo-random data fed in 1 MiB buffers, as a file read would, and for the chunker guided
// by the chunks of the previous version (the same data with its header changed and a record
// appended, as a memory service backup changes). A script, not a test:
// nothing here asserts a time. CHUNKER_BENCH_MIB and CHUNKER_BENCH_ROUNDS change the size (default
// 512) and the rounds per measure (default 3; the best and the median are printed).
import { BoundaryScanner } from '../src/delta/boundary-scanner.js';
import { DEFAULT_CHUNKER_PARAMS } from '../src/delta/chunker-params.js';
import { ChunkGuide } from '../src/delta/chunk-guide.js';
import { chunkBuffer, Chunker } from '../src/delta/chunker.js';
import { CHUNKER_VERSION } from '../src/delta/chunker-params.js';
import { pseudoRandomBytes } from '../test/helpers/delta-data.js';

const MIB = 1024 * 1024;
const READ_BYTES = 1 * MIB;

function option(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive whole number`);
  return value;
}

function boundariesOnly(data: Buffer): number {
  const scanner = new BoundaryScanner(DEFAULT_CHUNKER_PARAMS);
  let boundaries = 0;
  for (let start = 0; start < data.length; start += READ_BYTES) {
    const read = data.subarray(start, start + READ_BYTES);
    for (let position = scanner.scan(read, 0); position >= 0; position = scanner.scan(read, position)) boundaries += 1;
  }
  return boundaries + 1;
}

function chunksWithHashes(data: Buffer, guide?: ChunkGuide): number {
  const chunker = new Chunker(DEFAULT_CHUNKER_PARAMS, guide);
  let chunks = 0;
  for (let start = 0; start < data.length; start += READ_BYTES) chunks += chunker.push(data.subarray(start, start + READ_BYTES)).length;
  return chunks + chunker.finish().length;
}

/** Best and median of the rounds, and each round: on a shared, loaded machine the spread is the point. */
function summary(rates: number[]): string {
  const sorted = [...rates].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
  const best = sorted[sorted.length - 1] ?? 0;
  return `best ${best.toFixed(0)} MiB/s, median ${median.toFixed(0)} MiB/s (${rates.map((rate) => rate.toFixed(0)).join(', ')})`;
}

// Wall clock is what a caller sees. CPU time (user + system of this process) beside it shows whether
// the process was kept off the core by others on a shared machine: then the two figures part.
function measure(label: string, data: Buffer, rounds: number, run: (data: Buffer) => number): void {
  const wallRates: number[] = [];
  const cpuRates: number[] = [];
  let chunks = 0;
  for (let round = 0; round < rounds; round += 1) {
    const started = process.hrtime.bigint();
    const cpuBefore = process.cpuUsage();
    chunks = run(data);
    const cpu = process.cpuUsage(cpuBefore);
    wallRates.push(data.length / MIB / (Number(process.hrtime.bigint() - started) / 1e9));
    cpuRates.push(data.length / MIB / ((cpu.user + cpu.system) / 1e6));
  }
  console.log(`${label}: wall clock ${summary(wallRates)}; per CPU second ${summary(cpuRates)}; ${chunks} chunks, mean ${(data.length / chunks / 1024).toFixed(1)} KiB`);
}

const sizeMib = option('CHUNKER_BENCH_MIB', 512);
const rounds = option('CHUNKER_BENCH_ROUNDS', 3);
const data = pseudoRandomBytes(20_240_601, sizeMib * MIB);
// One unmeasured pass of each so the timed rounds run optimized code, as a long-lived agent does.
boundariesOnly(data.subarray(0, 32 * MIB));
chunksWithHashes(data.subarray(0, 32 * MIB));
console.log(`${sizeMib} MiB, ${rounds} rounds, load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')}`);
measure('boundaries only', data, rounds, boundariesOnly);
measure('boundaries + SHA-256 per chunk', data, rounds, (bytes) => chunksWithHashes(bytes));
// The previous version: this one without its last 1,536 bytes and with another header.
const previous = Buffer.from(data.subarray(0, data.length - 1536));
previous.writeUInt32LE(0xdeadbeef, 8);
const guide = ChunkGuide.from({ chunkerVersion: CHUNKER_VERSION, params: DEFAULT_CHUNKER_PARAMS, size: previous.length, sha256: '', chunks: chunkBuffer(previous) }, DEFAULT_CHUNKER_PARAMS);
measure('guided by the previous version, header changed and a record appended', data, rounds, (bytes) => chunksWithHashes(bytes, guide));
