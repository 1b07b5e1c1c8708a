import { cp, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { backupName } from './memory-service-sim.js';

/**
 * A small stand-in for the memory service's /backup and /restore, behaving as
 * MEMORY_SERVICE.md describes: backups are real directories named {prefix}_{UTC time},
 * restore requires metadata.json in the named backup and takes a pre_restore backup first.
 */
export interface StandIn {
  url: string;
  apiKey: string;
  restored: string[];
  backups: string[];
  close(): Promise<void>;
}

export async function startMemoryServiceStandIn(dataDir: string, backupDir: string, apiKey = 'standin-key'): Promise<StandIn> {
  await mkdir(dataDir, { recursive: true });
  await writeFile(path.join(dataDir, 'metadata.json'), JSON.stringify({ memories: [{ id: 1, text: 'first memory' }] }));
  await writeFile(path.join(dataDir, 'config.json'), '{"model":"test"}');
  const restored: string[] = [];
  const backups: string[] = [];

  const makeBackup = async (prefix: string): Promise<string> => {
    const name = backupName(prefix.replace(/[^A-Za-z0-9_-]/g, '_'), new Date());
    const dir = path.join(backupDir, name);
    await mkdir(dir, { recursive: true });
    for (const file of ['metadata.json', 'config.json']) await cp(path.join(dataDir, file), path.join(dir, file), { preserveTimestamps: true });
    backups.push(name);
    return dir;
  };

  const server: Server = createServer((request, response) => {
    const send = (status: number, body: unknown): void => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    if (request.headers['x-api-key'] !== apiKey) return send(401, { detail: 'Invalid API key' });
    const url = new URL(request.url ?? '/', 'http://standin');
    let raw = '';
    request.on('data', (chunk: Buffer) => (raw += chunk.toString('utf8')));
    request.on('end', () => {
      void (async () => {
        if (request.method === 'POST' && url.pathname === '/backup') {
          const dir = await makeBackup(url.searchParams.get('prefix') ?? 'manual');
          return send(200, { success: true, backup_path: dir });
        }
        if (request.method === 'POST' && url.pathname === '/restore') {
          const name = (JSON.parse(raw) as { backup_name?: string }).backup_name ?? '';
          const source = path.join(backupDir, name, 'metadata.json');
          if (!(await stat(source).catch(() => undefined))) return send(404, { detail: `backup ${name} not found` });
          await makeBackup('pre_restore');
          await cp(source, path.join(dataDir, 'metadata.json'));
          restored.push(name);
          return send(200, { success: true, restored_from: name });
        }
        if (request.method === 'GET' && url.pathname === '/backups') return send(200, { backups: await readdir(backupDir) });
        return send(404, { detail: 'Not Found' });
      })().catch((error: unknown) => send(500, { detail: String(error) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, apiKey, restored, backups, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
