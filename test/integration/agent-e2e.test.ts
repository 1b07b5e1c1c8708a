// End to end: the memsync agent as a real process (node --import tsx src/main.ts) against the
// real S3 server of the test run, fed by a simulator of how the memory service writes backups.
// Each test has its own bucket, backup directory and state directory, and bounds every wait.
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { manifestDigest, MANIFEST_FILE_NAME, serializeManifest } from '../../src/snapshot/manifest.js';
import { mapConcurrent } from '../helpers/concurrent.js';
import { startAgent, type AgentProcess } from '../helpers/agent-process.js';
import { START_TIMEOUT_MS, stopCleanly, useSandboxes, type Sandbox } from '../helpers/agent-sandbox.js';
import {
  backupName,
  memoryFileSet,
  prune,
  SOURCE_MTIME,
  startHalfWrittenFile,
  writeBackup,
  type BackupFile,
  type WrittenBackup,
} from '../helpers/memory-service-sim.js';
import { eventually, manifestFor, sha256 } from '../helpers/remote-bucket.js';
import { skipUnless, testServer } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';

const server = testServer();
const PREFIX = 'memories/';
const SETTLE_MS = 400;
const MIB = 1024 * 1024;
/** Bounds for single waits on the agent: generous for two shared cores, finite always. */
const UPLOAD_TIMEOUT_MS = 45_000;

const { sandbox, agentEnv, startAndSweep, remoteOf } = useSandboxes(server, { prefix: PREFIX, settleMs: SETTLE_MS, label: 'agent-e2e' });

async function localFiles(dir: string): Promise<Map<string, { sha256: string; mtimeMs: number }>> {
  const result = new Map<string, { sha256: string; mtimeMs: number }>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const absolute = path.join(entry.parentPath, entry.name);
    result.set(path.relative(dir, absolute), { sha256: sha256(await readFile(absolute)), mtimeMs: (await stat(absolute)).mtimeMs });
  }
  return result;
}

function uploadedNames(agent: AgentProcess): string[] {
  return agent.find('snapshot uploaded').map((entry) => String(entry.snapshot));
}

describe(`memsync agent end to end (${server.kind})`, () => {
  it('uploads every settled snapshot byte-identical, with a manifest whose SHA-256s match', async () => {
    const box = await sandbox('settled');
    const { agent, sweep } = await startAndSweep(box, 'agent');
    expect(sweep).toMatchObject({ local: 0, remote: 0, queued: 0 });

    const t0 = Date.UTC(2024, 4, 1, 8, 0, 0);
    const backups: WrittenBackup[] = [];
    backups.push(await writeBackup(box.backupDir, { prefix: 'auto', time: new Date(t0), files: memoryFileSet({ memories: 300, indexBytes: 300 * 1024 }) }));
    // Above the multipart threshold and one part (8 MiB): uploaded in parts, verified by its multipart ETag.
    backups.push(await writeBackup(box.backupDir, { prefix: 'pre_update', time: new Date(t0 + 1000), files: memoryFileSet({ memories: 20, indexBytes: 9 * MIB + 321 }) }));
    // Above the threshold but within one part: lib-storage sends it as a single PUT (plain MD5 ETag).
    backups.push(await writeBackup(box.backupDir, { prefix: 'pre_update', time: new Date(t0 + 4000), files: memoryFileSet({ memories: 21, indexBytes: 6 * MIB + 321 }) }));
    // No index yet, and a nested file: any layout below the snapshot directory is kept.
    backups.push(
      await writeBackup(box.backupDir, {
        prefix: 'manual',
        time: new Date(t0 + 2000),
        files: [...memoryFileSet({ memories: 1 }), { name: 'extra/notes.txt', bytes: Buffer.from('nested file\n') }],
        pauseBetweenFilesMs: 100,
      }),
    );
    // A single-file snapshot goes to {prefix}{name}/{name}.
    const single = { name: `${backupName('export', new Date(t0 + 3000))}.json`, bytes: Buffer.from(JSON.stringify({ memories: ['a', 'b'] })) };
    await writeFile(path.join(box.backupDir, single.name), single.bytes);

    const names = [...backups.map((b) => b.name), single.name];
    await Promise.all(names.map((name) => agent.waitFor('snapshot uploaded', { snapshot: name }, UPLOAD_TIMEOUT_MS)));

    for (const backup of backups) await remoteOf(box).expectSnapshot(backup.name, 'directory', backup.files);
    await remoteOf(box).expectSnapshot(single.name, 'file', [single]);
    // Nothing else was written to the bucket, and nothing twice.
    const all = await remoteOf(box).list();
    expect(all.every((o) => names.some((name) => o.key.startsWith(`${PREFIX}${name}/`)))).toBe(true);
    expect(uploadedNames(agent).sort()).toEqual([...names].sort());
    expect(agent.find(/^conflict:/)).toEqual([]);
    expect(agent.logs.filter((e) => e.level === 'error')).toEqual([]);
    await stopCleanly(agent);
  });

  it('never uploads a half-written file: pauses shorter than the settle window do not settle it', async () => {
    const settleMs = 1500;
    const pauseMs = 300;
    const box = await sandbox('half written');
    const { agent } = await startAndSweep(box, 'agent', { CLOUD_SYNC_SETTLE_MS: String(settleMs) });

    const time = new Date(Date.UTC(2024, 4, 2, 9, 30, 0));
    const name = backupName('auto', time);
    const base = `${PREFIX}${name}/`;
    const seen = new Set<string>();
    let polling = true;
    const poller = (async () => {
      while (polling) {
        for (const object of await remoteOf(box).list(base)) seen.add(object.key);
        await sleep(100);
      }
    })();

    const small = memoryFileSet({ memories: 100 });
    const backup = await writeBackup(box.backupDir, { prefix: 'auto', time, files: small, pauseBetweenFilesMs: pauseMs });
    await sleep(pauseMs);
    const index = randomBytes(40 * 64 * 1024 + 17); // 41 chunks of 64 KiB
    const first = index.subarray(0, 64 * 1024);
    const finish = await startHalfWrittenFile(path.join(backup.path, 'index.faiss'), first);
    await sleep(pauseMs);
    // ~12 s of writing in all, far beyond the settle window, but never quiet for as long as it.
    await finish(index.subarray(first.length), { chunkBytes: 64 * 1024, pauseBetweenChunksMs: pauseMs });
    const finishedAtMs = Date.now();
    polling = false;
    await poller;
    expect([...seen], 'objects that appeared while the snapshot was being written').toEqual([]);
    expect(uploadedNames(agent)).toEqual([]);

    const uploaded = await agent.waitFor('snapshot uploaded', { snapshot: name }, UPLOAD_TIMEOUT_MS);
    expect(Date.parse(String(uploaded.timestamp))).toBeGreaterThanOrEqual(finishedAtMs - 50);
    const files = [...small, { name: 'index.faiss', bytes: index }];
    await remoteOf(box).expectSnapshot(name, 'directory', files);
    // The final index carries the copied (old) source mtime: settling went by change time, not mtime.
    expect((await stat(path.join(backup.path, 'index.faiss'))).mtimeMs).toBe(SOURCE_MTIME.getTime());
    await sleep(settleMs);
    expect(uploadedNames(agent)).toEqual([name]);
    expect(agent.find('abandoned partial upload')).toEqual([]);
    await stopCleanly(agent);
  });

  it('uploads at the start sweep a snapshot created while memsync was stopped', async () => {
    const box = await sandbox('while stopped');
    const older = await writeBackup(box.backupDir, { prefix: 'pre_update', time: new Date(Date.UTC(2024, 4, 3, 1, 0, 0)), files: memoryFileSet({ memories: 10, indexBytes: 50_000 }) });
    const newer = await writeBackup(box.backupDir, { prefix: 'auto', time: new Date(Date.UTC(2024, 4, 3, 2, 0, 0)), files: memoryFileSet({ memories: 12, indexBytes: 60_000 }) });
    await sleep(SETTLE_MS + 200); // settled before memsync starts

    const { agent, sweep } = await startAndSweep(box, 'agent');
    expect(sweep).toMatchObject({ local: 2, remote: 0, queued: 2, inSync: 0, settling: 0 });
    await Promise.all([older, newer].map((b) => agent.waitFor('snapshot uploaded', { snapshot: b.name }, UPLOAD_TIMEOUT_MS)));
    for (const backup of [older, newer]) await remoteOf(box).expectSnapshot(backup.name, 'directory', backup.files);
    await stopCleanly(agent);
  });

  it('writes its agent id to the state directory before its first upload: killed right after, it keeps the id its objects carry', async () => {
    const box = await sandbox('agent-id');
    const backup = await writeBackup(box.backupDir, { prefix: 'auto', time: new Date(Date.UTC(2024, 4, 5, 1, 0, 0)), files: memoryFileSet({ memories: 10, indexBytes: 9 * MIB }) });
    const agent = startAgent({ env: { ...agentEnv(box), CLOUD_SYNC_MULTIPART_THRESHOLD_MB: '5' }, label: 'killed after its first write' });
    // The first object it writes for a snapshot with a large file is the name claim, carrying its id.
    const claimKey = `${PREFIX}${backup.name}/.memsync-claim`;
    let claim: { agent?: string } = {};
    await eventually(
      async () => {
        claim = JSON.parse((await remoteOf(box).get(claimKey).catch(() => Buffer.from('{}'))).toString('utf8') || '{}') as { agent?: string };
        return claim.agent !== undefined;
      },
      UPLOAD_TIMEOUT_MS,
      'a claim written',
      20,
    );
    await agent.kill();
    const state = JSON.parse(await readFile(path.join(box.stateDir, 'state.json'), 'utf8')) as { agentId: string };
    expect(claim.agent).toBe(state.agentId);
  });

  it('re-uploads nothing after a restart, with its state or without it', async () => {
    const box = await sandbox('restart');
    const backups = [
      await writeBackup(box.backupDir, { prefix: 'auto', time: new Date(Date.UTC(2024, 4, 4, 1, 0, 0)), files: memoryFileSet({ memories: 40, indexBytes: 100_000 }) }),
      await writeBackup(box.backupDir, { prefix: 'auto', time: new Date(Date.UTC(2024, 4, 4, 2, 0, 0)), files: memoryFileSet({ memories: 50, indexBytes: 6 * MIB }) }),
    ];
    const first = startAgent({ env: agentEnv(box), label: 'first run' });
    await Promise.all(backups.map((b) => first.waitFor('snapshot uploaded', { snapshot: b.name }, UPLOAD_TIMEOUT_MS)));
    await stopCleanly(first);
    const before = await remoteOf(box).list();
    expect(before).toHaveLength(backups.reduce((n, b) => n + b.files.length + 1, 0));
    await sleep(1100); // a re-upload would then show in LastModified (1 s resolution)

    const runs: [string, Sandbox][] = [
      ['second run (same state)', box],
      ['third run (state directory lost)', { ...box, stateDir: await tempDir('memsync-state-fresh') }],
    ];
    for (const [label, runBox] of runs) {
      const { agent, sweep } = await startAndSweep(runBox, label);
      expect(sweep, label).toMatchObject({ local: 2, remote: 2, queued: 0, inSync: 2, settling: 0 });
      await sleep(3 * SETTLE_MS);
      expect(uploadedNames(agent), label).toEqual([]);
      expect(agent.logs.filter((e) => e.level === 'error' || e.level === 'warn'), label).toEqual([]);
      await stopCleanly(agent);
    }
    expect(await remoteOf(box).list()).toEqual(before);
  });

  it('refuses a snapshot whose name is taken remotely by different content: conflict logged, both sides untouched', async () => {
    const box = await sandbox('conflict');
    // X: complete remotely (manifest + files) with other content.
    const timeX = new Date(Date.UTC(2024, 4, 5, 12, 0, 0));
    const nameX = backupName('auto', timeX);
    const remoteFilesX = memoryFileSet({ memories: 5, seed: 'remote-x' });
    const remoteManifestX = manifestFor(nameX, 'directory', remoteFilesX);
    for (const file of remoteFilesX) await remoteOf(box).put(`${PREFIX}${nameX}/${file.name}`, file.bytes);
    await remoteOf(box).put(`${PREFIX}${nameX}/${MANIFEST_FILE_NAME}`, serializeManifest(remoteManifestX));
    // Y: incomplete remotely (a file of another size, no manifest), written by someone else.
    const timeY = new Date(Date.UTC(2024, 4, 5, 13, 0, 0));
    const nameY = backupName('auto', timeY);
    await remoteOf(box).put(`${PREFIX}${nameY}/metadata.json`, Buffer.from('{"foreign": true}'));

    const localX = await writeBackup(box.backupDir, { prefix: 'auto', time: timeX, files: memoryFileSet({ memories: 6, seed: 'local-x' }) });
    const localY = await writeBackup(box.backupDir, { prefix: 'auto', time: timeY, files: memoryFileSet({ memories: 7, seed: 'local-y' }) });
    const remoteBefore = await remoteOf(box).list();
    const localBefore = await localFiles(box.backupDir);

    const { agent } = await startAndSweep(box, 'agent');
    const conflictX = await agent.waitFor(/^conflict:/, { snapshot: nameX }, UPLOAD_TIMEOUT_MS);
    expect(conflictX.level).toBe('warn');
    expect(conflictX.localSha256).toBe(manifestDigest(manifestFor(nameX, 'directory', localX.files)));
    expect(conflictX.remoteSha256).toBe(manifestDigest(remoteManifestX));
    expect(conflictX.remoteSha256).not.toBe(conflictX.localSha256);
    const conflictY = await agent.waitFor(/^conflict:/, { snapshot: nameY }, UPLOAD_TIMEOUT_MS);
    expect(conflictY.level).toBe('warn');
    expect(conflictY.localSha256).toBe(manifestDigest(manifestFor(nameY, 'directory', localY.files)));

    await sleep(2 * SETTLE_MS);
    expect(uploadedNames(agent)).toEqual([]);
    expect(await remoteOf(box).list()).toEqual(remoteBefore);
    for (const file of remoteFilesX) expect(sha256(await remoteOf(box).get(`${PREFIX}${nameX}/${file.name}`))).toBe(sha256(file.bytes));
    expect(await localFiles(box.backupDir)).toEqual(localBefore);
    await stopCleanly(agent);
  });

  it('lists more than 1,000 remote snapshots: 1,050 pre-seeded, one local match left alone, only the new one uploaded', async () => {
    const box = await sandbox('many remote');
    const count = 1050;
    const t0 = Date.UTC(2023, 0, 1, 0, 0, 0);
    const seeded = Array.from({ length: count }, (_, i) => {
      const name = backupName('auto', new Date(t0 + i * 3_600_000));
      const files = [{ name: 'config.json', bytes: Buffer.from(JSON.stringify({ snapshot: name, i })) }];
      return { name, files, time: new Date(t0 + i * 3_600_000) };
    });
    // Written directly with the SDK: files first, manifest last, at most 32 requests in flight.
    await mapConcurrent(seeded, 32, async ({ name, files }) => {
      for (const file of files) await remoteOf(box).put(`${PREFIX}${name}/${file.name}`, file.bytes);
      await remoteOf(box).put(`${PREFIX}${name}/${MANIFEST_FILE_NAME}`, serializeManifest(manifestFor(name, 'directory', files)));
    });
    const match = seeded[700] as (typeof seeded)[number];
    const matchBefore = await remoteOf(box).list(`${PREFIX}${match.name}/`);
    expect(matchBefore).toHaveLength(2);

    await writeBackup(box.backupDir, { prefix: 'auto', time: match.time, files: match.files });
    const fresh = await writeBackup(box.backupDir, { prefix: 'auto', time: new Date(Date.UTC(2025, 0, 1, 0, 0, 0)), files: memoryFileSet({ memories: 30, indexBytes: 20_000 }) });
    await sleep(SETTLE_MS + 200);

    const { agent, sweep } = await startAndSweep(box, 'agent');
    expect(sweep).toMatchObject({ local: 2, queued: 1, inSync: 1, settling: 0 });
    expect([count, count + 1]).toContain(sweep.remote);
    await agent.waitFor('snapshot uploaded', { snapshot: fresh.name }, UPLOAD_TIMEOUT_MS);
    await sleep(2 * SETTLE_MS);
    expect(uploadedNames(agent)).toEqual([fresh.name]);
    await remoteOf(box).expectSnapshot(fresh.name, 'directory', fresh.files);
    expect(await remoteOf(box).list(`${PREFIX}${match.name}/`)).toEqual(matchBefore);
    const manifests = (await remoteOf(box).list()).filter((o) => o.key.endsWith(`/${MANIFEST_FILE_NAME}`));
    expect(manifests).toHaveLength(count + 1);
    await stopCleanly(agent);
  });

  it('keeps up with a burst of 15 backups pruned to 10: every snapshot still present locally ends complete remotely', async () => {
    const box = await sandbox('burst');
    const { agent } = await startAndSweep(box, 'agent');
    const t0 = Date.UTC(2024, 4, 6, 0, 0, 0);
    const written = new Map<string, BackupFile[]>();
    const pruned: string[] = [];
    for (let i = 0; i < 15; i += 1) {
      const prefix = i % 5 === 2 ? 'pre_update' : 'auto';
      const backup = await writeBackup(box.backupDir, { prefix, time: new Date(t0 + i * 1000), files: memoryFileSet({ memories: 40 + i, indexBytes: 64 * 1024, seed: `burst-${i}` }) });
      written.set(backup.name, backup.files);
      pruned.push(...(await prune(box.backupDir, 10)).deleted);
      await sleep(30);
    }
    const remaining = (await readdir(box.backupDir)).sort();
    expect(remaining.length).toBeGreaterThanOrEqual(10);
    expect(remaining.length + pruned.length).toBe(15);

    await Promise.all(remaining.map((name) => agent.waitFor('snapshot uploaded', { snapshot: name }, UPLOAD_TIMEOUT_MS)));
    for (const name of remaining) await remoteOf(box).expectSnapshot(name, 'directory', written.get(name) ?? []);

    // Every pruned snapshot is accounted for: uploaded in time, or reported as removed before upload.
    const outcomeOf = (name: string): string[] => [
      ...agent.find('snapshot uploaded', { snapshot: name }).map(() => 'uploaded'),
      ...agent.find('snapshot removed before it could be uploaded', { snapshot: name }).map(() => 'removed before upload'),
    ];
    await eventually(async () => pruned.every((name) => outcomeOf(name).length > 0), 20_000, `an outcome logged for each pruned snapshot ${JSON.stringify(pruned)}`);
    await sleep(2 * SETTLE_MS);
    const outcomes = Object.fromEntries([...written.keys()].map((name) => [name, outcomeOf(name)]));
    for (const [name, logged] of Object.entries(outcomes)) expect(logged, `outcomes logged for ${name}`).toHaveLength(1);
    const uploaded = [...written.keys()].filter((name) => outcomes[name]?.[0] === 'uploaded');
    const removed = [...written.keys()].filter((name) => outcomes[name]?.[0] === 'removed before upload');
    console.info(`[agent-e2e] burst: ${written.size} written, ${pruned.length} pruned, ${uploaded.length} uploaded, ${removed.length} removed before upload`);
    expect(uploaded.length + removed.length).toBe(15);

    // A pruned snapshot leaves a complete, correct copy or nothing at all: never a partial one.
    for (const name of pruned) {
      const objects = await remoteOf(box).list(`${PREFIX}${name}/`);
      if (outcomes[name]?.[0] === 'uploaded') await remoteOf(box).expectSnapshot(name, 'directory', written.get(name) ?? []);
      else expect(objects.map((o) => o.key), `objects left of ${name}, removed before upload`).toEqual([]);
    }
    await stopCleanly(agent);

    // The persisted counters agree with the log.
    const state = JSON.parse(await readFile(path.join(box.stateDir, 'state.json'), 'utf8')) as { counters: Record<string, number> };
    expect(state.counters).toMatchObject({ snapshotsUploaded: uploaded.length, prunedBeforeUpload: removed.length, conflicts: 0 });

    // And a restart finds everything local in sync.
    const { agent: again, sweep } = await startAndSweep(box, 'restarted agent');
    expect(sweep).toMatchObject({ local: remaining.length, remote: uploaded.length, queued: 0, inSync: remaining.length });
    await stopCleanly(again);
  });

  const noMultipartListing = skipUnless('listMultipartUploads') ?? skipUnless('abortMultipart');
  it.skipIf(noMultipartListing)(
    `SIGTERM during a large multipart upload exits 0 within the shutdown timeout and leaves no multipart upload open${noMultipartListing ? ` (skipped: ${noMultipartListing})` : ''}`,
    async () => {
      const shutdownTimeoutMs = 300;
      const box = await sandbox('sigterm');
      const overrides = { CLOUD_SYNC_MULTIPART_THRESHOLD_MB: '8', CLOUD_SYNC_SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs) };
      const { agent } = await startAndSweep(box, 'agent', overrides);
      const files = memoryFileSet({ memories: 10, indexBytes: 200 * MIB });
      const backup = await writeBackup(box.backupDir, { prefix: 'auto', time: new Date(Date.UTC(2024, 4, 7, 0, 0, 0)), files, chunkBytes: MIB });

      // SIGTERM as soon as the server holds an open multipart upload of the index.
      await eventually(
        async () => {
          if (agent.find('snapshot uploaded').length > 0) throw new Error(`the upload finished before SIGTERM could be sent: use a larger file\n${agent.tail()}`);
          return (await remoteOf(box).openMultipartUploads()).some((u) => u.key === `${PREFIX}${backup.name}/index.faiss`);
        },
        UPLOAD_TIMEOUT_MS,
        'a multipart upload of index.faiss to be open',
        20,
      );
      const exit = await agent.stop(shutdownTimeoutMs + 20_000);
      expect(exit, agent.tail()).toMatchObject({ code: 0, signal: null });
      // The shutdown timeout, then at most 2 s for aborted uploads to send their abort, plus process overhead.
      expect(exit.durationMs).toBeLessThan(shutdownTimeoutMs + 2000 + 3000);
      expect(await remoteOf(box).openMultipartUploads(), `open multipart uploads after exit\n${agent.tail()}`).toEqual([]);
      // No manifest: an interrupted snapshot is not complete remotely (unless it finished in time, fully).
      const manifestKey = `${PREFIX}${backup.name}/${MANIFEST_FILE_NAME}`;
      const finishedInTime = (await remoteOf(box).list(manifestKey)).length > 0;
      if (finishedInTime) await remoteOf(box).expectSnapshot(backup.name, 'directory', files);

      // The next start finishes the job (or finds it done).
      const { agent: again, sweep } = await startAndSweep(box, 'restarted agent', overrides);
      if (finishedInTime) expect(sweep).toMatchObject({ local: 1, inSync: 1, queued: 0 });
      else await again.waitFor('snapshot uploaded', { snapshot: backup.name }, UPLOAD_TIMEOUT_MS);
      await remoteOf(box).expectSnapshot(backup.name, 'directory', files);
      await stopCleanly(again);
      expect(await remoteOf(box).openMultipartUploads()).toEqual([]);
    },
  );

  it('with CLOUD_SYNC_ENABLED unset stays up, says sync is disabled, makes no S3 call, exits 0 on SIGTERM', async () => {
    const backupDir = await tempDir('memsync-backups');
    const stateDir = await tempDir('memsync-state');
    // An endpoint that records every connection attempt (and refuses to serve any).
    const connections: string[] = [];
    const recorder: Server = createServer((socket: Socket) => {
      connections.push(`${socket.remoteAddress}:${socket.remotePort}`);
      socket.destroy();
    });
    await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
    const address = recorder.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const agent = startAgent({
        label: 'disabled agent',
        env: {
          CLOUD_SYNC_BUCKET: 'memsync-disabled',
          CLOUD_SYNC_ENDPOINT: `http://127.0.0.1:${port}`,
          CLOUD_SYNC_ACCESS_KEY: 'unused-access-key',
          CLOUD_SYNC_SECRET_KEY: 'unused-secret-key',
          CLOUD_SYNC_BACKUP_DIR: backupDir,
          CLOUD_SYNC_STATE_DIR: stateDir,
          CLOUD_SYNC_SETTLE_MS: String(SETTLE_MS),
          CLOUD_SYNC_PORT: '0',
          LOG_FORMAT: 'json',
          LOG_LEVEL: 'debug',
        },
      });
      await agent.waitFor(/cloud sync is disabled/, {}, START_TIMEOUT_MS);
      // A backup appears: nothing is to happen.
      await writeBackup(backupDir, { prefix: 'auto', files: memoryFileSet({ memories: 3 }) });
      await sleep(4 * SETTLE_MS);
      expect(agent.exitResult, agent.tail()).toBeUndefined();
      expect(connections).toEqual([]);
      expect(agent.logs.filter((e) => e.level === 'error' || e.level === 'warn')).toEqual([]);
      expect(agent.find('sweep finished')).toEqual([]);
      expect(agent.find('snapshot uploaded')).toEqual([]);
      expect(agent.stderr).toBe('');
      await stopCleanly(agent);
      expect(connections).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => recorder.close(() => resolve()));
    }
  });
});
