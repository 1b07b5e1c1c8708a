import { listRemoteIndex } from '../../remote/remote-index.js';
import { DEFAULT_RETRY } from '../../retry.js';
import { completeSnapshotsNewestFirst, summarize, type SnapshotVerification } from '../../verify/report.js';
import { RemoteVerifier } from '../../verify/verifier.js';
import type { Command } from '../args.js';
import type { CommandContext } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { formatBytes } from '../format.js';

/** `memsync verify [NAME]`: RemoteVerifier over every complete snapshot (or NAME), one at a time, newest first. */

export async function runVerify(command: Extract<Command, { name: 'verify' }>, context: CommandContext): Promise<number> {
  const { config, store } = context;
  const keyring = context.encryption?.keyring;
  const verifier = new RemoteVerifier({ store, retry: DEFAULT_RETRY, concurrency: config.concurrency, log: context.log, now: context.now, ...(keyring === undefined ? {} : { keyring }) });
  const names = command.snapshot === undefined ? completeSnapshotsNewestFirst(await listRemoteIndex(store, context.now)) : [command.snapshot];
  const results: SnapshotVerification[] = [];
  for (const name of names) {
    const result = await verifier.verifySnapshot(name, {
      onProgress: (p) => context.progress.show([{ id: name, label: `verify ${name}`, doneBytes: p.checkedBytes, totalBytes: p.totalBytes }]),
    });
    context.progress.show([]);
    results.push(result);
    // One line per snapshot as it is done: a long run shows its findings as it goes.
    if (!command.json) context.out(resultText(result));
  }
  const summary = summarize(results);
  if (command.json) context.out(JSON.stringify({ location: store.location, snapshots: results, summary }, null, 2));
  else if (results.length === 0) context.out(`no complete snapshots in ${store.location}`);
  else context.out(`${summary.snapshots} checked: ${summary.ok} ok, ${summary.unverified} unverified, ${summary.failed} failed (${store.location})`);
  return summary.failed > 0 ? EXIT.verificationFailed : EXIT.ok;
}

const CHECKED_BY = { sha256: 'SHA-256', etag: 'ETag', 'size-only': 'size only' } as const;

function resultText(result: SnapshotVerification): string {
  const label = result.status === 'failed' ? 'FAILED' : result.status;
  if (result.status !== 'failed') {
    const how = result.verification === undefined ? '' : `, checked by ${CHECKED_BY[result.verification]}`;
    return `${label.padEnd(10)}  ${result.snapshot}  ${result.files} files, ${formatBytes(result.bytes)}${how}${result.manifest === true ? '' : ' (no manifest)'}`;
  }
  const failures = result.failures.map((f) => `${' '.repeat(12)}${f.path ?? '(snapshot)'}: ${f.reason}`);
  return [`${label.padEnd(10)}  ${result.snapshot}  ${result.failures.length} of ${Math.max(result.files, result.failures.length)} files failed`, ...failures].join('\n');
}
