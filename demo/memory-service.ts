// A stand-in for the memory service, for the demo and the tests: its live data in a data
// directory, backups written into the backup directory the way the real service writes them
// (demo/backup-writer.ts), pruned to the newest 10, and the admin endpoints memsync calls:
// POST /backup?prefix=..., POST /restore {"backup_name"}, GET /backups, behind X-API-Key.
import { readFile, readdir, stat, writeFile, mkdir, copyFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { memoryFileSet, prune, writeBackup, type BackupFile } from './backup-writer.js';

export interface MemoryServiceOptions {
  dataDir: string;
  backupDir: string;
  apiKey?: string;
  /** 0 (default): any free port. Always on 127.0.0.1. */
  port?: number;
  /** Backups kept by pruning; default 10, as the service does. */
  keep?: number;
}

export interface MemoryService {
  url: string;
  apiKey: string;
  /** Names of the backups this service wrote, in order. */
  backups: string[];
  /** Names it was asked to restore from, in order. */
  restored: string[];
  /** Adds memories to the live data, as users talking to the assistant do. */
  remember(count: number): Promise<void>;
  /** Writes a backup of the live data now and prunes; returns its name. */
  backup(prefix: string): Promise<string>;
  close(): Promise<void>;
}

const LIVE_FILES = ['metadata.json', 'config.json', 'index.faiss'] as const;
const NAME_PREFIX = /^[A-Za-z0-9_-]{1,40}$/;

export async function startMemoryService(options: MemoryServiceOptions): Promise<MemoryService> {
  const { dataDir, backupDir } = options;
  const apiKey = options.apiKey ?? 'demo-memory-service-key';
  const keep = options.keep ?? 10;
  await mkdir(dataDir, { recursive: true });
  await mkdir(backupDir, { recursive: true });
  let memoryCount = 0;
  if ((await stat(path.join(dataDir, 'metadata.json')).catch(() => undefined)) === undefined) {
    await writeLive(memoryFileSet({ memories: 1, indexBytes: 1536, seed: 'first' }));
    memoryCount = 1;
  }
  const backups: string[] = [];
  const restored: string[] = [];
  // One backup at a time, as the service serialises them.
  let writing: Promise<unknown> = Promise.resolve();

  async function writeLive(files: BackupFile[]): Promise<void> {
    for (const file of files) await writeFile(path.join(dataDir, file.name), file.bytes);
  }

  async function readLive(): Promise<BackupFile[]> {
    const files: BackupFile[] = [];
    for (const name of LIVE_FILES) {
      const bytes = await readFile(path.join(dataDir, name)).catch(() => undefined);
      if (bytes !== undefined) files.push({ name, bytes });
    }
    return files;
  }

  const service: MemoryService = {
    url: '',
    apiKey,
    backups,
    restored,
    remember: async (count) => {
      memoryCount += count;
      // The index grows with the memories (384 float32 dimensions each), like a flat FAISS index.
      await writeLive(memoryFileSet({ memories: memoryCount, indexBytes: memoryCount * 1536, seed: `m${memoryCount}` }));
    },
    backup: (prefix) => {
      const next = writing.then(async () => {
        const written = await writeBackup(backupDir, { prefix, files: await readLive() });
        backups.push(written.name);
        await prune(backupDir, keep);
        return written.name;
      });
      writing = next.catch(() => undefined);
      return next;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };

  const server = createServer((request, response) => {
    void handle(request, response).catch((error: unknown) => send(response, 500, { detail: String(error) }));
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://memory-service');
    if (request.method === 'GET' && url.pathname === '/health') return send(response, 200, { status: 'ok' });
    if (request.headers['x-api-key'] !== apiKey) return send(response, 401, { detail: 'Invalid API key' });
    const body = await readBody(request);
    if (request.method === 'POST' && url.pathname === '/backup') {
      const prefix = url.searchParams.get('prefix') ?? 'manual';
      if (!NAME_PREFIX.test(prefix)) return send(response, 400, { detail: 'invalid prefix' });
      const name = await service.backup(prefix);
      return send(response, 200, { success: true, backup_path: path.join(backupDir, name) });
    }
    if (request.method === 'POST' && url.pathname === '/restore') {
      const name = parseBackupName(body);
      const source = name === undefined ? undefined : path.join(backupDir, name);
      if (name === undefined || source === undefined || path.dirname(source) !== backupDir) return send(response, 400, { detail: 'backup_name required' });
      if ((await stat(path.join(source, 'metadata.json')).catch(() => undefined)) === undefined) return send(response, 404, { detail: `backup ${name} not found` });
      await service.backup('pre_restore');
      for (const file of LIVE_FILES) await copyFile(path.join(source, file), path.join(dataDir, file)).catch(() => undefined);
      restored.push(name);
      return send(response, 200, { success: true, restored_from: name });
    }
    if (request.method === 'GET' && url.pathname === '/backups') return send(response, 200, { backups: (await readdir(backupDir)).sort() });
    return send(response, 404, { detail: 'Not Found' });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  service.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return service;
}

function send(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

async function readBody(request: IncomingMessage): Promise<string> {
  let raw = '';
  for await (const chunk of request as AsyncIterable<Buffer>) {
    raw += chunk.toString('utf8');
    if (raw.length > 64 * 1024) throw new Error('request body too large');
  }
  return raw;
}

function parseBackupName(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as unknown;
    const name = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>).backup_name : undefined;
    return typeof name === 'string' && name !== '' ? name : undefined;
  } catch {
    return undefined;
  }
}
