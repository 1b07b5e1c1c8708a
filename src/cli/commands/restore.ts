import path from 'node:path';
import { AppError } from '../../errors.js';
import type { RestoreOutcome } from '../../restore/restorer.js';
import { statSnapshotIfPresent } from '../../snapshot/scan.js';
import type { Command } from '../args.js';
import { buildSyncGraph, type CommandContext, type SyncGraph } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { formatBytes } from '../format.js';
import { pollProgress } from '../progress.js';

/**
 * `memsync download [NAME]` and `memsync restore NAME`: SyncOperations.download / .restore,
 * as POST /sync/download and /sync/restore run them: staged, verified, fsynced, renamed into
 * place, never overwriting. Without --yes: what would happen, and nothing written.
 */

type RestoreCommand = Extract<Command, { name: 'download' | 'restore' }>;

export async function runRestore(command: RestoreCommand, context: CommandContext): Promise<number> {
  // A download needs neither the agent's upload identity nor its digest cache: no agent file is read.
  const graph = buildSyncGraph(context, { state: undefined, hashCache: undefined });
  if (!command.yes) {
    context.out(await describePlan(command, graph, context));
    context.progress.log('memsync: nothing was written; repeat with --yes to do it');
    return EXIT.usage;
  }
  const stopProgress = pollProgress(context.progress, () =>
    graph.restorer.active().map((p) => ({ id: p.snapshot, label: `download ${p.snapshot}`, doneBytes: p.receivedBytes, totalBytes: p.totalBytes })),
  );
  try {
    if (command.name === 'restore') {
      const result = await graph.operations.restore(command.snapshot);
      context.out(`${outcomeText(result.restore, context)}\n${result.message}`);
    } else {
      context.out(outcomeText(await graph.operations.download(command.snapshot), context));
    }
  } finally {
    stopProgress();
    await graph.stop();
  }
  return EXIT.ok;
}

async function describePlan(command: RestoreCommand, graph: SyncGraph, context: CommandContext): Promise<string> {
  const { config, store } = context;
  // Without a name the target is the latest by time, resolved against a fresh listing as the download would.
  const target = await graph.operations.resolveDownloadTarget(command.snapshot);
  const index = command.snapshot === undefined ? graph.agent.remoteIndex : await graph.agent.refreshRemoteIndex();
  const remote = index.snapshots.get(target);
  if (remote === undefined) throw new AppError('not_found', `no remote snapshot named ${target} in ${store.location}`);
  const destination = path.join(config.backupDir, target);
  const check = remote.complete ? 'complete: every file checked against the SHA-256 in its manifest' : 'unverified: no manifest, files checked against their ETags and sizes';
  const lines = [
    `would download ${target}${command.snapshot === undefined ? ' (the latest remote snapshot by time)' : ''}: ${remote.fileCount} files, ${formatBytes(remote.bytes)}, ${check}`,
    `  from ${store.location}`,
    `  into ${destination}`,
    (await statSnapshotIfPresent(config.backupDir, target)) === undefined
      ? '  staged in a hidden directory, verified and fsynced, then renamed into place'
      : `  ${destination} exists: identical content is left as it is, different content is refused (never overwritten)`,
  ];
  if (command.name === 'restore') {
    lines.push(
      config.memoryService === undefined
        ? '  then left there for you to apply (MEMORY_SERVICE_URL is not set)'
        : `  then the memory service at ${config.memoryService.url} is asked to restore its live state from it`,
    );
  }
  return lines.join('\n');
}

function outcomeText(outcome: RestoreOutcome, context: CommandContext): string {
  const destination = path.join(context.config.backupDir, outcome.snapshot);
  if (outcome.outcome === 'already-present') return `${outcome.snapshot} is already in ${destination} with the same content; nothing was written`;
  const how =
    outcome.verification === 'sha256'
      ? 'every file matches the SHA-256 in the manifest'
      : outcome.verification === 'etag'
        ? 'no manifest: every file matches its ETag (unverified snapshot)'
        : 'no manifest: some files could only be checked by size (unverified snapshot)';
  return `downloaded ${outcome.snapshot} into ${destination}: ${outcome.files} files, ${formatBytes(outcome.bytes)}; ${how}`;
}
