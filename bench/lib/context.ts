// What every case shares: the server, the peers, the scale, where data lives, and the results.
import { CreateBucketCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { AgentRun, freePort, memsyncEnv } from './agent.js';
import { loadAverage, type Usage } from './measure.js';
import type { Peers } from './peers.js';
import type { Rgw } from './rgw.js';
import type { Scale } from '../scale.js';

export type Tool = 'memsync' | 'memsync status' | 'aws' | 'rclone';

export interface Row {
  caseName: string;
  tool: string;
  runs: Usage[];
  /** Units moved per run, for the throughput column. */
  work: { bytes: number } | { objects: number } | undefined;
  /** Replaces the throughput column (latency, idle). */
  throughputText?: string;
  /** Lower is better; compared against the best peer of the same case. */
  peer: boolean;
}

export interface CaseLoad {
  caseName: string;
  before: string;
  after: string;
  wallS: number;
}

export class BenchContext {
  readonly rows: Row[] = [];
  readonly notes: string[] = [];
  readonly loads: CaseLoad[] = [];
  readonly s3: S3Client;
  bucket = 'bench';
  private nextTimeFile = 0;

  constructor(
    readonly scale: Scale,
    readonly rgw: Rgw,
    readonly peers: Peers,
    readonly workDir: string,
    readonly settleMs: number,
    readonly cpuProfDir: string | undefined,
    /** BENCH_MEMSYNC_ENV: extra CLOUD_SYNC_* settings for every memsync run (experiments). */
    readonly memsyncOverrides: Record<string, string> = {},
  ) {
    this.s3 = new S3Client({
      endpoint: rgw.endpoint,
      region: rgw.region,
      forcePathStyle: true,
      credentials: { accessKeyId: rgw.accessKey, secretAccessKey: rgw.secretKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  /** On a reused server, a fresh bucket per run: earlier runs' objects would be found by sweeps. */
  async createBucket(unique: boolean): Promise<void> {
    if (unique) this.bucket = `bench-${Date.now()}`;
    await this.s3.send(new CreateBucketCommand({ Bucket: this.bucket }));
  }

  dir(...parts: string[]): string {
    return path.join(this.workDir, ...parts);
  }

  timeFile(): string {
    this.nextTimeFile += 1;
    return this.dir(`time-${this.nextTimeFile}.txt`);
  }

  note(text: string): void {
    this.notes.push(text);
    log(`note: ${text}`);
  }

  record(row: Row): void {
    this.rows.push(row);
  }

  /** Runs one case between two load-average readings. */
  async timedCase(caseName: string, body: () => Promise<void>): Promise<void> {
    const before = loadAverage();
    const t0 = performance.now();
    log(`=== ${caseName} (load ${before})`);
    try {
      await body();
    } finally {
      const after = loadAverage();
      this.loads.push({ caseName, before, after, wallS: (performance.now() - t0) / 1000 });
      log(`=== ${caseName} done in ${((performance.now() - t0) / 1000).toFixed(0)} s (load ${after})`);
    }
  }

  /** A fresh state directory and HTTP port for an agent or a command. */
  async memsyncVars(options: { backupDir: string; stateDir: string; prefix: string; settleMs?: number; extra?: Record<string, string> }): Promise<Record<string, string>> {
    await mkdir(options.backupDir, { recursive: true });
    await mkdir(options.stateDir, { recursive: true });
    return {
      CLOUD_SYNC_ENABLED: 'true',
      CLOUD_SYNC_BUCKET: this.bucket,
      CLOUD_SYNC_ENDPOINT: this.rgw.endpoint,
      CLOUD_SYNC_REGION: this.rgw.region,
      CLOUD_SYNC_ACCESS_KEY: this.rgw.accessKey,
      CLOUD_SYNC_SECRET_KEY: this.rgw.secretKey,
      CLOUD_SYNC_BACKUP_DIR: options.backupDir,
      CLOUD_SYNC_STATE_DIR: options.stateDir,
      CLOUD_SYNC_PREFIX: options.prefix,
      CLOUD_SYNC_SETTLE_MS: String(options.settleMs ?? this.settleMs),
      CLOUD_SYNC_PORT: String(await freePort()),
      ...this.memsyncOverrides,
      ...options.extra,
    };
  }

  /** Starts the agent and waits for its start sweep to finish. */
  async startAgent(vars: Record<string, string>, label: string, sweepTimeoutMs = 120_000): Promise<{ agent: AgentRun; sweep: Record<string, unknown> }> {
    const nodeArgs = this.cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', this.cpuProfDir, '--cpu-prof-name', `${label}-${Date.now()}.cpuprofile`];
    const agent = new AgentRun(memsyncEnv(vars), nodeArgs);
    try {
      const sweep = await agent.waitFor((l) => l.message === 'sweep finished' && l.reason === 'start', sweepTimeoutMs, `start sweep (${label})`);
      return { agent, sweep };
    } catch (error) {
      await agent.stop();
      throw error;
    }
  }

  async headExists(key: string): Promise<boolean> {
    try {
      await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch {
      return false;
    }
  }

  /** Objects under a prefix (bounded: at most 1,000 pages). */
  async countObjects(prefix: string): Promise<{ objects: number; bytes: number }> {
    let objects = 0;
    let bytes = 0;
    let token: string | undefined;
    for (let page = 0; page < 1000; page += 1) {
      const answer = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const item of answer.Contents ?? []) {
        objects += 1;
        bytes += item.Size ?? 0;
      }
      if (answer.IsTruncated !== true) break;
      token = answer.NextContinuationToken;
    }
    return { objects, bytes };
  }
}

/** Tool order of repetition `rep`: rotated, so each tool goes first in turn (cache and load drift even out). */
export function alternate<T>(tools: readonly T[], rep: number): T[] {
  const k = rep % tools.length;
  return [...tools.slice(k), ...tools.slice(0, k)];
}

export function log(text: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${text}\n`);
}
