// Case 7: a store that changes by a few bytes between backups. The memory service copies its whole
// store into every backup folder, so each new folder holds a 200 MB metadata.json and a 1 GiB
// index.faiss that differ from the previous folder's by one record. Each backup is uploaded by:
// - memsync: the agent as deployed, one long-running process per link over one state directory:
//   each backup folder is dropped (renamed) into its backup directory and timed to its 'snapshot
//   uploaded' line; BENCH_DELTA_MEMSYNC=cli runs `memsync upload` per backup instead (see DeltaBench);
// - restic: `restic backup DIR` into one S3 repository on the same server (chunk deduplication);
// - the AWS CLI: `aws s3 cp` of the files that changed, as a plain script would.
// Twice: straight to the server (loopback) and through a link shaped to 100 Mbit/s each way
// (bench/lib/shaped-link.ts), which every tool's endpoint points at. The first backup is set-up:
// uploaded by memsync and restic before anything is measured, and once with `aws s3 cp
// --recursive` over each link as the plain upload the goals are stated against.
import { randomFillSync } from 'node:crypto';
import { copyFile, mkdir, open, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PROJECT_DIR, memsyncCommandArgs, memsyncEnv, memsyncNodeArgs, type AgentRun, type LogLine } from '../lib/agent.js';
import { alternate, log, type BenchContext } from '../lib/context.js';
import { backupName, writeRandomFile } from '../lib/data.js';
import { TreeSampler, timeCommand, type CommandResult, type Usage } from '../lib/measure.js';
import { AWS } from '../lib/peers.js';
import { ShapedLink } from '../lib/shaped-link.js';
import { formatBytes, formatMs, markdownTable, median } from '../lib/stats.js';
import { seededRandom } from '../../test/helpers/random.js';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const RUN_TIMEOUT_MS = 20 * 60_000;
const LINK_BITS_PER_S = 100_000_000;
const RESTIC = '/usr/bin/restic';
const RESTIC_PASSWORD = 'bench-repository-password';
/** index.faiss header: magic, dimension, record count (u64), reserved. */
const INDEX_HEADER_BYTES = 64;
const VECTOR_BYTES = 384 * 4;
const SNAPSHOT_PREFIX = 'auto';
/**
 * Backup folders left in the backup directory, as the memory service leaves them: it keeps about
 * its 10 newest. An earlier folder still on disk is what lets memsync prove an unchanged copy with
 * one SHA-256 pass; BENCH_DELTA_KEEP=1 leaves only the newest (each backup is then read in full).
 */
const DEFAULT_KEPT_FOLDERS = 10;
/** How often the agent's CPU and memory are sampled while it uploads a backup. */
const SAMPLE_MS = 50;
const FIRST_TIME = new Date('2026-12-01T02:00:00Z');

type DeltaTool = 'memsync' | 'restic' | 'aws';
const TOOLS: readonly DeltaTool[] = ['memsync', 'restic', 'aws'];

interface Step {
  id: string;
  label: string;
  /** Makes `dir` from a copy of `previous`; returns the files that changed. */
  apply: (previous: string, dir: string, random: () => number) => Promise<string[]>;
}

interface LinkSpec {
  name: 'loopback' | '100 Mbit/s';
  endpoint: string;
  link: ShapedLink | undefined;
}

interface Measured extends Usage {
  /** What the tool says it sent (memsync bytesSent, restic "stored", aws the files' sizes). */
  sentBytes: number;
  /** Client -> server bytes counted by the shaped link (undefined on loopback). */
  wireUpBytes: number | undefined;
  requests: number | undefined;
  detail: string;
}

interface Result {
  link: LinkSpec['name'];
  step: string;
  tool: DeltaTool | 'aws (plain, whole folder)' | 'memsync (setup, whole folder)' | 'restic (setup, whole folder)';
  rep: number;
  run: Measured;
}

function sizes(ctx: BenchContext): { metadataBytes: number; indexBytes: number } {
  return ctx.scale.name === 'full' ? { metadataBytes: 200 * 1000 * 1000, indexBytes: 1 * GIB } : { metadataBytes: 40 * 1000 * 1000, indexBytes: 64 * MIB };
}

// --- data --------------------------------------------------------------------------------------

const WORDS = (
  'the user prefers to travel by train and likes quiet carriages she mentioned her sister lives in Lyon works as a nurse night shifts ' +
  'allergic to peanuts and shellfish favourite book is a long novel about a lighthouse keeper wants reminders for meetings on Monday ' +
  'project deadline moved to the end of the month asked about budget spreadsheets prefers metric units dislikes long emails uses a ' +
  'standing desk in the morning drinks green tea plays chess online on weekends learning Spanish with a tutor twice a week daughter ' +
  'starts school in September the team meets on Thursdays at ten recommended a recipe for lentil soup runs five kilometres most days ' +
  'birthday is in April prefers window seats booked a dentist appointment renewing the passport next spring interested in astronomy ' +
  'telescope purchase considered garden has tomatoes and basil cat named Pixel vet visit overdue mortgage rate question follow up'
).split(' ');
const TAGS = ['travel', 'health', 'family', 'work', 'food', 'hobby', 'finance', 'schedule', 'preference', 'pets'];

function word(random: () => number): string {
  return WORDS[Math.floor(random() * WORDS.length)] as string;
}

/** One memory record, one line of JSON (about 300 to 600 bytes). */
function record(i: number, random: () => number): string {
  const words: string[] = [];
  const n = 12 + Math.floor(random() * 60);
  for (let w = 0; w < n; w += 1) words.push(word(random));
  const hex = Math.floor(random() * 2 ** 52).toString(16).padStart(13, '0');
  const day = new Date(Date.UTC(2025, 0, 1) + Math.floor(random() * 600 * 86_400_000)).toISOString();
  const tags = [TAGS[i % TAGS.length], TAGS[Math.floor(random() * TAGS.length)]];
  return JSON.stringify({
    id: `mem_${hex}${i.toString(36)}`,
    user_id: `user_${Math.floor(random() * 40)}`,
    created_at: day,
    text: `${words.join(' ')}.`,
    tags,
    importance: Math.round(random() * 1000) / 1000,
    vector_id: i,
  });
}

const METADATA_HEAD = '{"version":3,"memories":[\n';
const METADATA_TAIL = '\n]}\n';

/** metadata.json: one record per line, records separated by ",\n"; at least `sizeBytes`. Returns the record count. */
async function writeMetadata(file: string, sizeBytes: number, random: () => number): Promise<number> {
  const handle = await open(file, 'w');
  let count = 0;
  try {
    let written = 0;
    let batch: string[] = [METADATA_HEAD];
    let batchBytes = METADATA_HEAD.length;
    while (written + batchBytes < sizeBytes) {
      const line = `${count === 0 ? '' : ',\n'}${record(count, random)}`;
      batch.push(line);
      batchBytes += Buffer.byteLength(line);
      count += 1;
      if (batchBytes > MIB) {
        await handle.write(batch.join(''));
        written += batchBytes;
        batch = [];
        batchBytes = 0;
      }
    }
    batch.push(METADATA_TAIL);
    await handle.write(batch.join(''));
  } finally {
    await handle.close();
  }
  return count;
}

function indexHeader(count: number): Buffer {
  const header = Buffer.alloc(INDEX_HEADER_BYTES);
  header.write('IxFlat01', 0, 'latin1');
  header.writeUInt32LE(VECTOR_BYTES / 4, 8);
  header.writeBigUInt64LE(BigInt(count), 16);
  return header;
}

async function writeIndex(file: string, sizeBytes: number): Promise<void> {
  await writeRandomFile(file, sizeBytes);
  const handle = await open(file, 'r+');
  try {
    await handle.write(indexHeader(Math.floor((sizeBytes - INDEX_HEADER_BYTES) / VECTOR_BYTES)), 0, INDEX_HEADER_BYTES, 0);
  } finally {
    await handle.close();
  }
}

/** A copy with the source's mtime, as `cp -p` makes it (the service copies its store this way). */
async function copyKeepingTime(from: string, to: string): Promise<void> {
  await copyFile(from, to);
  const { atime, mtime } = await stat(from);
  await utimes(to, atime, mtime);
}

/** The byte range [start, end) of the record line nearest the middle of metadata.json (no separators). */
async function middleRecord(file: string): Promise<{ start: number; end: number; text: string }> {
  const { size } = await stat(file);
  const handle = await open(file, 'r');
  try {
    const window = Buffer.alloc(64 * 1024);
    const at = Math.floor(size / 2);
    const { bytesRead } = await handle.read(window, 0, window.length, at);
    const text = window.subarray(0, bytesRead).toString('latin1');
    const first = text.indexOf(',\n{');
    const next = text.indexOf(',\n', first + 2);
    if (first < 0 || next < 0) throw new Error('no record found in the middle of metadata.json');
    const start = at + first + 2;
    const end = at + next;
    const raw = await readRange(handle, start, end - start);
    return { start, end, text: raw.toString('utf8') };
  } finally {
    await handle.close();
  }
}

async function readRange(handle: Awaited<ReturnType<typeof open>>, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buffer, 0, length, position);
  return buffer.subarray(0, bytesRead);
}

/** Writes `to` as `from` with bytes [start, end) replaced by `replacement`, streamed in 8 MiB pieces. */
async function rewriteRange(from: string, to: string, start: number, end: number, replacement: Buffer): Promise<void> {
  const { size } = await stat(from);
  const input = await open(from, 'r');
  const output = await open(to, 'w');
  try {
    const buffer = Buffer.allocUnsafe(8 * MIB);
    const copy = async (position: number, until: number): Promise<void> => {
      for (let p = position; p < until; ) {
        const { bytesRead } = await input.read(buffer, 0, Math.min(buffer.length, until - p), p);
        if (bytesRead === 0) throw new Error(`${from}: short read at ${p}`);
        await output.write(buffer, 0, bytesRead);
        p += bytesRead;
      }
    };
    await copy(0, start);
    await output.write(replacement);
    await copy(end, size);
  } finally {
    await input.close();
    await output.close();
  }
}

/** Copies every file of `previous` into `dir` except `changed`, which the step writes itself. */
async function copyFolder(previous: string, dir: string, changed: readonly string[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const file of ['config.json', 'metadata.json', 'index.faiss']) if (!changed.includes(file)) await copyKeepingTime(path.join(previous, file), path.join(dir, file));
}

const STEPS: readonly Step[] = [
  {
    id: 'append',
    label: 'one record appended to metadata.json',
    apply: async (previous, dir, random) => {
      await copyFolder(previous, dir, ['metadata.json']);
      const file = path.join(dir, 'metadata.json');
      await copyFile(path.join(previous, 'metadata.json'), file);
      const { size } = await stat(file);
      const handle = await open(file, 'r+');
      try {
        await handle.write(`,\n${record(10_000_000 + Math.floor(random() * 1e6), random)}${METADATA_TAIL}`, size - METADATA_TAIL.length);
      } finally {
        await handle.close();
      }
      return ['metadata.json'];
    },
  },
  {
    id: 'edit',
    label: 'one record in the middle of metadata.json edited (longer)',
    apply: async (previous, dir, random) => {
      await copyFolder(previous, dir, ['metadata.json']);
      const from = path.join(previous, 'metadata.json');
      const found = await middleRecord(from);
      const parsed = JSON.parse(found.text) as { text: string; importance: number };
      parsed.text = `${parsed.text} Update: ${word(random)} ${word(random)} ${word(random)} ${word(random)}.`;
      parsed.importance = Math.round(random() * 1000) / 1000;
      await rewriteRange(from, path.join(dir, 'metadata.json'), found.start, found.end, Buffer.from(JSON.stringify(parsed)));
      return ['metadata.json'];
    },
  },
  {
    id: 'delete',
    label: 'one record in the middle of metadata.json deleted',
    apply: async (previous, dir) => {
      await copyFolder(previous, dir, ['metadata.json']);
      const from = path.join(previous, 'metadata.json');
      const found = await middleRecord(from);
      // The record and the ",\n" after it.
      await rewriteRange(from, path.join(dir, 'metadata.json'), found.start, found.end + 2, Buffer.alloc(0));
      return ['metadata.json'];
    },
  },
  {
    id: 'index',
    label: 'one vector appended to index.faiss (1,536 bytes), its header count updated',
    apply: async (previous, dir) => {
      await copyFolder(previous, dir, ['index.faiss']);
      const file = path.join(dir, 'index.faiss');
      await copyFile(path.join(previous, 'index.faiss'), file);
      const handle = await open(file, 'r+');
      try {
        const header = await readRange(handle, 0, INDEX_HEADER_BYTES);
        const count = Number(header.readBigUInt64LE(16));
        const { size } = await handle.stat();
        const vector = Buffer.allocUnsafe(VECTOR_BYTES);
        randomFillSync(vector);
        await handle.write(vector, 0, VECTOR_BYTES, size);
        await handle.write(indexHeader(count + 1), 0, INDEX_HEADER_BYTES, 0);
      } finally {
        await handle.close();
      }
      return ['index.faiss'];
    },
  },
];

// --- tools -------------------------------------------------------------------------------------

/** Requests the server handled, from its log ("req done" lines at the default debug level 1). */
class RequestCounter {
  private readonly file: string;
  private offset = 0;

  constructor(rgwStateDir: string) {
    this.file = path.join(rgwStateDir, 'log', 'client.rgw.local.log');
  }

  async mark(): Promise<void> {
    this.offset = await stat(this.file).then((s) => s.size, () => 0);
  }

  async since(): Promise<number | undefined> {
    const handle = await open(this.file, 'r').catch(() => undefined);
    if (handle === undefined) return undefined;
    try {
      const { size } = await handle.stat();
      if (size - this.offset > 256 * MIB) return undefined;
      const text = (await readRange(handle, this.offset, size - this.offset)).toString('latin1');
      return text.split('\n').filter((line) => line.includes('req done')).length;
    } finally {
      await handle.close();
    }
  }
}

function resticEnv(ctx: BenchContext): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  // Without AWS_CA_BUNDLE and the rest of the shell's AWS settings: the server is plain HTTP.
  for (const [key, value] of Object.entries(process.env)) if (!/^(AWS_|RESTIC_)/.test(key)) env[key] = value;
  return {
    ...env,
    AWS_ACCESS_KEY_ID: ctx.rgw.accessKey,
    AWS_SECRET_ACCESS_KEY: ctx.rgw.secretKey,
    RESTIC_PASSWORD,
    RESTIC_CACHE_DIR: ctx.dir('c7', 'restic-cache'),
  };
}

function resticArgs(ctx: BenchContext, endpoint: string, ...rest: string[]): string[] {
  return ['-r', `s3:${endpoint}/${ctx.bucket}/c7/restic`, '-o', `s3.region=${ctx.rgw.region}`, ...rest];
}

const UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: MIB, GiB: GIB, TiB: 1024 * GIB };

/** "Added to the repository: 1.234 MiB (456.789 KiB stored)" -> bytes of both. */
function resticAdded(stdout: string): { added: number; stored: number } {
  const match = /Added to the repository: ([\d.]+) (\w+) \(([\d.]+) (\w+) stored\)/.exec(stdout);
  if (match === null) throw new Error(`restic printed no "Added to the repository" line:\n${stdout.slice(-2000)}`);
  const bytes = (value: string | undefined, unit: string | undefined): number => Number(value) * (UNITS[unit ?? ''] ?? Number.NaN);
  return { added: bytes(match[1], match[2]), stored: bytes(match[3], match[4]) };
}

interface MemsyncFigures {
  sent: number;
  copied: number;
  delta: number;
  composed: string[];
  warnings: string[];
}

function memsyncFigures(result: CommandResult): MemsyncFigures {
  const text = `${result.stdout}\n${result.stderr}`;
  const summary = /bytes sent (\d+), copied server-side (\d+), composed from earlier versions (\d+)/.exec(text);
  if (summary === null) throw new Error(`memsync printed no byte summary:\n${text.slice(-3000)}`);
  const composed: string[] = [];
  const warnings: string[] = [];
  // The command's --verbose lines: "memsync: LEVEL: MESSAGE key=value ...".
  for (const line of text.split('\n')) {
    if (line.includes('file composed from its previous version')) composed.push(line.replace(/^memsync: info: file composed from its previous version /, ''));
    if (/^memsync: (warn|error):/.test(line) || line.includes('whole')) warnings.push(line);
  }
  return { sent: Number(summary[1]), copied: Number(summary[2]), delta: Number(summary[3]), composed, warnings };
}

/** The same figures from the agent's JSON log: its 'snapshot uploaded' line and what it logged since the drop. */
function agentFigures(uploaded: LogLine, lines: readonly LogLine[], name: string): MemsyncFigures {
  const composed: string[] = [];
  const warnings: string[] = [];
  for (const line of lines) {
    if (line.message === 'file composed from its previous version' && line.snapshot === name) {
      composed.push(`snapshot=${name} file=${String(line.file)} base=${String(line.base)} bytesSent=${String(line.bytesSent)} bytesDelta=${String(line.bytesDelta)} parts=${String(line.parts)}`);
    }
    if (line.level === 'warn' || line.level === 'error') warnings.push(JSON.stringify(line));
  }
  return { sent: Number(uploaded.bytesSent), copied: Number(uploaded.bytesCopied), delta: Number(uploaded.bytesDelta), composed, warnings };
}

class DeltaBench {
  readonly results: Result[] = [];
  /** What each memsync run printed (progress lines left out), kept with the results. */
  readonly memsyncLog: string[] = [];
  private readonly counter: RequestCounter;
  private readonly stateDir: string;
  private readonly backupsDir: string;
  /** Where a backup is written before it is dropped into the watched directory. */
  readonly stagingDir: string;
  /** The running agent (agent mode), for one link at a time. */
  private agent: { link: LinkSpec['name']; run: AgentRun; sampler: TreeSampler } | undefined;
  readonly mode: 'agent' | 'cli';

  constructor(private readonly ctx: BenchContext) {
    this.counter = new RequestCounter(ctx.rgw.stateDir);
    this.stateDir = ctx.dir('c7', 'memsync-state');
    this.backupsDir = ctx.dir('c7', 'backups');
    this.stagingDir = ctx.dir('c7', 'staging');
    const mode = process.env.BENCH_DELTA_MEMSYNC ?? 'agent';
    if (mode !== 'agent' && mode !== 'cli') throw new Error(`BENCH_DELTA_MEMSYNC must be agent or cli, not ${mode}`);
    this.mode = mode;
  }

  private vars(link: LinkSpec): Promise<Record<string, string>> {
    return this.ctx.memsyncVars({ backupDir: this.backupsDir, stateDir: this.stateDir, prefix: 'c7/memsync/', settleMs: 100, extra: { CLOUD_SYNC_ENDPOINT: link.endpoint } });
  }

  /**
   * The agent uploading over `link`, started when first asked for. Agents of two links never run
   * at once: they share the state directory and the backup directory, as one deployment would.
   */
  private async agentFor(link: LinkSpec): Promise<{ run: AgentRun; sampler: TreeSampler }> {
    if (this.agent?.link === link.name) return this.agent;
    await this.stopAgent();
    const { agent } = await this.ctx.startAgent(await this.vars(link), `c7-${link.link === undefined ? 'loopback' : 'shaped'}`, RUN_TIMEOUT_MS);
    this.agent = { link: link.name, run: agent, sampler: new TreeSampler(agent.pid, SAMPLE_MS).start() };
    return this.agent;
  }

  async stopAgent(): Promise<void> {
    const agent = this.agent;
    this.agent = undefined;
    if (agent === undefined) return;
    agent.sampler.stop();
    await agent.run.stop();
  }

  /** memsync's turn for a backup staged at `staged`: where the folder is afterwards (in the backup directory). */
  async memsync(link: LinkSpec, name: string, staged: string): Promise<{ run: Measured; dir: string }> {
    const dir = this.folder(name);
    if (this.mode === 'cli') {
      if (staged !== dir) await rename(staged, dir);
      return { run: await this.memsyncCommand(link, name), dir };
    }
    return { run: await this.memsyncAgent(link, name, staged), dir };
  }

  /**
   * The running agent: the folder, complete, is renamed into the backup directory (as a backup
   * that settles at once would appear) and timed to the agent's 'snapshot uploaded' line, which
   * it writes after every object was verified and the manifest stored. CPU is the agent's in that
   * window, peak RSS its peak in that window (the kernel's high-water mark, reset at the drop).
   */
  private async memsyncAgent(link: LinkSpec, name: string, staged: string): Promise<Measured> {
    const { run, sampler } = await this.agentFor(link);
    const since = run.logs.length;
    return this.measure(link, async () => {
      sampler.resetPeak();
      sampler.mark();
      const t0 = performance.now();
      await rename(staged, this.folder(name));
      const uploaded = await run.waitFor((l) => l.message === 'snapshot uploaded' && l.snapshot === name, RUN_TIMEOUT_MS, `upload of ${name}`, since);
      const usage = sampler.window();
      const lines = run.logs.slice(since);
      const figures = agentFigures(uploaded, lines, name);
      this.memsyncLog.push(`=== ${link.name} ${name}`, ...lines.map((line) => JSON.stringify(line)));
      for (const warning of figures.warnings) log(`memsync ${name}: ${warning}`);
      const detail = `sent ${figures.sent}, copied ${figures.copied}, delta ${figures.delta}; ${figures.composed.join('; ') || 'nothing composed'}`;
      return { usage: { ...usage, wallMs: uploaded.atMs - t0 }, sentBytes: figures.sent, detail };
    });
  }

  folder(name: string): string {
    return path.join(this.backupsDir, name);
  }

  /** Runs `body` between two readings of the server's request count and the link's byte count. */
  private async measure(link: LinkSpec, body: () => Promise<{ usage: Usage; sentBytes: number; detail: string }>): Promise<Measured> {
    await this.counter.mark();
    const before = link.link?.counters();
    const { usage, sentBytes, detail } = await body();
    const after = link.link?.counters();
    return {
      wallMs: usage.wallMs,
      cpuS: usage.cpuS,
      peakRssBytes: usage.peakRssBytes,
      sentBytes,
      wireUpBytes: before === undefined || after === undefined ? undefined : after.up - before.up,
      requests: await this.counter.since(),
      detail,
    };
  }

  /** `memsync upload` as a command of its own for this backup. */
  private async memsyncCommand(link: LinkSpec, name: string): Promise<Measured> {
    const vars = await this.vars(link);
    let figures: MemsyncFigures | undefined;
    const run = await this.measure(link, async () => {
      // `memsync upload` without a name: its sweep lists the bucket, which is what tells memsync
      // the earlier snapshots (bases). A command keeps no digest cache of its own (the agent owns
      // it), so every earlier folder still on disk is read again to be compared: with folders kept,
      // its figures include that. `memsync upload NAME` does not list the bucket, so it finds no
      // base and sends every file.
      const args = process.env.BENCH_DELTA_UPLOAD_NAMED === '1' ? ['upload', '--verbose', name] : ['upload', '--verbose'];
      const usage = await timeCommand(process.execPath, memsyncCommandArgs(args), { env: memsyncEnv(vars), cwd: PROJECT_DIR, timeoutMs: RUN_TIMEOUT_MS, timeFile: this.ctx.timeFile() });
      figures = memsyncFigures(usage);
      const lines = `${usage.stdout}\n${usage.stderr}`.split('\n').filter((line) => line.trim() !== '' && !line.includes('upload progress'));
      this.memsyncLog.push(`=== ${link.name} ${name}`, ...lines.slice(0, 200));
      const detail = `sent ${figures.sent}, copied ${figures.copied}, delta ${figures.delta}; ${figures.composed.join('; ') || 'nothing composed'}`;
      return { usage, sentBytes: figures.sent, detail };
    });
    if (figures === undefined) throw new Error('unreachable');
    for (const warning of figures.warnings) log(`memsync ${name}: ${warning}`);
    return run;
  }

  async restic(link: LinkSpec, dir: string): Promise<Measured> {
    return this.measure(link, async () => {
      const usage = await timeCommand(RESTIC, resticArgs(this.ctx, link.endpoint, 'backup', '--host', 'bench', dir), { env: resticEnv(this.ctx), timeoutMs: RUN_TIMEOUT_MS, timeFile: this.ctx.timeFile() });
      const { added, stored } = resticAdded(usage.stdout);
      return { usage, sentBytes: stored, detail: `added ${formatBytes(added)} (${formatBytes(stored)} stored)` };
    });
  }

  /** `aws s3 cp` of each changed file (one command per file, as a script would), summed. */
  async aws(link: LinkSpec, dir: string, files: readonly string[]): Promise<Measured> {
    return this.measure(link, async () => {
      let total: CommandResult | undefined;
      let bytes = 0;
      for (const file of files) {
        const source = path.join(dir, file);
        bytes += (await stat(source)).size;
        const usage = await timeCommand(AWS, ['--endpoint-url', link.endpoint, 's3', 'cp', '--only-show-errors', source, `s3://${this.ctx.bucket}/c7/aws/${path.basename(dir)}/${file}`], {
          env: this.ctx.peers.awsEnv,
          timeoutMs: RUN_TIMEOUT_MS,
          timeFile: this.ctx.timeFile(),
        });
        total = total === undefined ? usage : { ...usage, wallMs: total.wallMs + usage.wallMs, cpuS: total.cpuS + usage.cpuS, peakRssBytes: Math.max(total.peakRssBytes, usage.peakRssBytes) };
      }
      if (total === undefined) throw new Error('no changed file');
      return { usage: total, sentBytes: bytes, detail: files.join(', ') };
    });
  }

  async awsWholeFolder(link: LinkSpec, dir: string, prefix: string): Promise<Measured> {
    return this.measure(link, async () => {
      let bytes = 0;
      for (const file of ['config.json', 'metadata.json', 'index.faiss']) bytes += (await stat(path.join(dir, file))).size;
      const usage = await timeCommand(AWS, ['--endpoint-url', link.endpoint, 's3', 'cp', '--recursive', '--only-show-errors', dir, `s3://${this.ctx.bucket}/${prefix}`], {
        env: this.ctx.peers.awsEnv,
        timeoutMs: RUN_TIMEOUT_MS,
        timeFile: this.ctx.timeFile(),
      });
      return { usage, sentBytes: bytes, detail: 'aws s3 cp --recursive' };
    });
  }
}

// --- the case ----------------------------------------------------------------------------------

function keptFolders(): number {
  const value = Number(process.env.BENCH_DELTA_KEEP ?? DEFAULT_KEPT_FOLDERS);
  if (!Number.isInteger(value) || value < 1) throw new Error('BENCH_DELTA_KEEP must be a whole number of at least 1');
  return value;
}

export async function runDelta(ctx: BenchContext): Promise<void> {
  const { metadataBytes, indexBytes } = sizes(ctx);
  const keep = keptFolders();
  /** Folders on disk, oldest first; the oldest go once there are more than `keep`. */
  const folders: string[] = [];
  const bench = new DeltaBench(ctx);
  const random = seededRandom(7007);
  let time = FIRST_TIME.getTime();
  const nextName = (): string => {
    time += 60_000;
    return backupName(SNAPSHOT_PREFIX, new Date(time));
  };

  // The store.
  const t0 = performance.now();
  let name = nextName();
  let dir = path.join(bench.stagingDir, name);
  await mkdir(dir, { recursive: true });
  const records = await writeMetadata(path.join(dir, 'metadata.json'), metadataBytes, random);
  await writeIndex(path.join(dir, 'index.faiss'), indexBytes);
  await writeFile(path.join(dir, 'config.json'), JSON.stringify({ embedding_model: 'all-MiniLM-L6-v2', dimension: 384, index: 'IndexFlatIP' }, null, 2));
  const storeBytes = (await stat(path.join(dir, 'metadata.json'))).size + indexBytes;
  log(`c7: wrote ${name}: metadata.json ${formatBytes(storeBytes - indexBytes)} (${records} records), index.faiss ${formatBytes(indexBytes)} in ${formatMs(performance.now() - t0)}`);

  const shaped = await new ShapedLink(Number(new URL(ctx.rgw.endpoint).port), LINK_BITS_PER_S).start();
  const links: LinkSpec[] = [
    { name: 'loopback', endpoint: ctx.rgw.endpoint, link: undefined },
    { name: '100 Mbit/s', endpoint: shaped.endpoint, link: shaped },
  ];
  const loopback = links[0] as LinkSpec;
  try {
    // Set-up on loopback: memsync's first (whole) upload, restic's repository and first snapshot.
    const first = await bench.memsync(loopback, name, dir);
    const setup = first.run;
    dir = first.dir;
    folders.push(dir);
    bench.results.push({ link: 'loopback', step: 'first backup (set-up)', tool: 'memsync (setup, whole folder)', rep: 0, run: setup });
    await timeCommand(RESTIC, resticArgs(ctx, ctx.rgw.endpoint, 'init'), { env: resticEnv(ctx), timeoutMs: RUN_TIMEOUT_MS, timeFile: ctx.timeFile() });
    const resticSetup = await bench.restic(loopback, dir);
    bench.results.push({ link: 'loopback', step: 'first backup (set-up)', tool: 'restic (setup, whole folder)', rep: 0, run: resticSetup });
    log(`c7 set-up: memsync ${formatMs(setup.wallMs)}, restic ${formatMs(resticSetup.wallMs)}`);
    // The plain upload the goals compare with: the whole folder, over each link.
    if (process.env.BENCH_DELTA_PLAIN !== '0') {
      for (const link of links) {
        const plain = await bench.awsWholeFolder(link, dir, `c7/plain/${link.link === undefined ? 'loopback' : 'shaped'}/${name}`);
        bench.results.push({ link: link.name, step: 'whole store (plain upload)', tool: 'aws (plain, whole folder)', rep: 0, run: plain });
        log(`c7 plain upload over ${link.name}: ${formatMs(plain.wallMs)}${plain.wireUpBytes === undefined ? '' : `, ${formatBytes(plain.wireUpBytes)} on the wire`}`);
      }
    }

    for (let rep = 0; rep < ctx.scale.reps; rep += 1) {
      for (const link of links) {
        for (const [s, step] of STEPS.entries()) {
          const previous = dir;
          name = nextName();
          // Written aside, then dropped into the backup directory on memsync's turn; the peers read it where it is.
          dir = path.join(bench.stagingDir, name);
          const changed = await step.apply(previous, dir, random);
          // The service prunes before the next backup is taken; memsync sees the directory as it is then.
          for (const old of folders.splice(0, Math.max(0, folders.length - (keep - 1)))) await rm(old, { recursive: true, force: true });
          for (const tool of alternate(TOOLS, rep + s)) {
            let run: Measured;
            if (tool === 'memsync') {
              const turn = await bench.memsync(link, name, dir);
              run = turn.run;
              dir = turn.dir;
            } else {
              run = tool === 'restic' ? await bench.restic(link, dir) : await bench.aws(link, dir, changed);
            }
            bench.results.push({ link: link.name, step: step.id, tool, rep: rep + 1, run });
            log(
              `c7 rep ${rep + 1} ${link.name} ${step.id} ${tool}: ${formatMs(run.wallMs)}, sent ${formatBytes(run.sentBytes)}` +
                `${run.wireUpBytes === undefined ? '' : ` (wire ${formatBytes(run.wireUpBytes)})`}, ${run.requests ?? '?'} requests, ` +
                `${run.cpuS.toFixed(1)} s CPU, ${formatBytes(run.peakRssBytes)}; ${run.detail}`,
            );
          }
          folders.push(dir);
        }
      }
    }
  } finally {
    await bench.stopAgent();
    await shaped.stop();
    await rm(ctx.dir('c7'), { recursive: true, force: true });
  }
  recordRows(ctx, bench.results, storeBytes, bench.mode);
  await writeReport(ctx, bench.results, storeBytes, records, bench.memsyncLog);
}

// --- figures -----------------------------------------------------------------------------------

function groups(results: readonly Result[]): Map<string, Result[]> {
  const byKey = new Map<string, Result[]>();
  for (const result of results) {
    const key = `${result.link}|${result.step}|${result.tool}`;
    byKey.set(key, [...(byKey.get(key) ?? []), result]);
  }
  return byKey;
}

function medianOf(results: readonly Result[], pick: (m: Measured) => number | undefined): number | undefined {
  const values = results.map((r) => pick(r.run)).filter((v): v is number => v !== undefined && Number.isFinite(v));
  return values.length === 0 ? undefined : median(values);
}

/** Rows for the common table (wall, RSS, CPU), bytes sent in the throughput column. */
function recordRows(ctx: BenchContext, results: readonly Result[], storeBytes: number, mode: DeltaBench['mode']): void {
  for (const [key, runs] of groups(results)) {
    const [link, step, tool] = key.split('|') as [string, string, string];
    const sent = medianOf(runs, (m) => m.sentBytes);
    ctx.record({
      caseName: `7. delta ${link}: ${step}`,
      tool,
      runs: runs.map((r) => r.run),
      work: undefined,
      throughputText: `sent ${formatBytes(sent ?? Number.NaN)}`,
      peer: tool !== 'memsync',
    });
  }
  ctx.note(`case 7: store of ${formatBytes(storeBytes)}; the ${keptFolders()} newest backup folders are kept (BENCH_DELTA_KEEP); memsync ran ${mode === 'agent' ? 'as one agent per link' : `as \`memsync upload${process.env.BENCH_DELTA_UPLOAD_NAMED === '1' ? ' NAME' : ''}\` per backup`} (node ${memsyncNodeArgs().join(' ')}) with CLOUD_SYNC_SETTLE_MS=100; detailed table in bench/results/*-delta.md`);
}

async function writeReport(ctx: BenchContext, results: readonly Result[], storeBytes: number, records: number, memsyncLog: readonly string[]): Promise<void> {
  const header = ['link', 'backup', 'tool', 'bytes sent', 'on the wire (up)', 'requests', 'median wall', 'CPU s', 'peak RSS', 'runs (wall)'];
  const rows: string[][] = [];
  for (const [key, runs] of groups(results)) {
    const [link, step, tool] = key.split('|') as [string, string, string];
    const wire = medianOf(runs, (m) => m.wireUpBytes);
    const requests = medianOf(runs, (m) => m.requests);
    rows.push([
      link,
      step,
      tool,
      formatBytes(medianOf(runs, (m) => m.sentBytes) ?? Number.NaN),
      wire === undefined ? '' : formatBytes(wire),
      requests === undefined ? '' : String(requests),
      formatMs(medianOf(runs, (m) => m.wallMs) ?? Number.NaN),
      (medianOf(runs, (m) => m.cpuS) ?? Number.NaN).toFixed(2),
      formatBytes(medianOf(runs, (m) => m.peakRssBytes) ?? Number.NaN),
      runs.map((r) => formatMs(r.run.wallMs)).join(', '),
    ]);
  }
  const details = results.map((r) => `- rep ${r.rep} ${r.link} ${r.step} ${r.tool}: ${formatMs(r.run.wallMs)}, ${r.run.sentBytes} bytes sent${r.run.wireUpBytes === undefined ? '' : `, ${r.run.wireUpBytes} on the wire`}, ${r.run.requests ?? '?'} requests; ${r.run.detail}`);
  const text = [
    `case 7, scale ${ctx.scale.name}, ${ctx.scale.reps} reps, ${keptFolders()} newest backup folders kept; store ${formatBytes(storeBytes)} (metadata.json ${records} records + index.faiss)`,
    '',
    markdownTable(header, rows),
    '',
    ...details,
    '',
  ].join('\n');
  process.stdout.write(`${text}\n`);
  const resultsDir = path.join(PROJECT_DIR, 'bench', 'results');
  await mkdir(resultsDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  await writeFile(path.join(resultsDir, `${stamp}-${ctx.scale.name}-delta.md`), text);
  await writeFile(path.join(resultsDir, `${stamp}-${ctx.scale.name}-delta.json`), JSON.stringify(results, null, 2));
  await writeFile(path.join(resultsDir, `${stamp}-${ctx.scale.name}-delta-memsync.log`), `${memsyncLog.join('\n')}\n`);
}
