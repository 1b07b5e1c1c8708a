import type { CommandName } from './args.js';

/** What `memsync --help` and `memsync <command> --help` print. */

export interface CommandDoc {
  synopsis: string;
  summary: string;
  help: string;
}

const VERBOSE_HELP = '  -v, --verbose  also show warnings and the progress log (LOG_LEVEL sets how much)';
const HELP_HELP = '  -h, --help     show this help';

export const COMMAND_DOCS: Record<CommandName, CommandDoc> = {
  serve: {
    synopsis: 'serve',
    summary: 'run the agent (the default): watch, upload, HTTP API',
    help: `Usage: memsync serve

Runs the agent exactly as \`node dist/main.js\` without arguments: watches the backup
directory, uploads settled snapshots, sweeps on the schedule, serves the HTTP API.
Stops gracefully on SIGTERM or SIGINT (exit 0).

Options:
${HELP_HELP}`,
  },
  snapshots: {
    synopsis: 'snapshots [--limit N] [--json]',
    summary: 'list remote snapshots, newest first',
    help: `Usage: memsync snapshots [--limit N] [--json]

Lists the snapshots in the bucket, newest first by the time in their name (or their newest
object), with file count, size, and whether memsync's manifest is there: "complete" (every
file was verified and has a SHA-256 in the manifest) or "unverified" (written by another
tool; restorable, checked against ETags and sizes only).

Options:
  -n, --limit N  show at most N snapshots (default: all)
      --json     print JSON: {snapshots: [{name, time, files, bytes, complete}], total, listedAt}
${HELP_HELP}`,
  },
  status: {
    synopsis: 'status [--json]',
    summary: 'compare local and remote, show conflicts and reachability',
    help: `Usage: memsync status [--json]

Compares the backup directory with the bucket now: snapshots in sync, pending upload, still
being written, only remote, newer remote; the conflicts and last upload/error the agent has
recorded in its state directory; whether the store is reachable. Reads only: it writes no
state and no object. Exits 0 when the store answered, 3 when it refused memsync (the store
line says REFUSED), 4 when it could not be reached (UNREACHABLE).

Options:
      --json     print JSON
${VERBOSE_HELP}
${HELP_HELP}`,
  },
  upload: {
    synopsis: 'upload [NAME]',
    summary: 'upload local snapshots not yet remote (or only NAME)',
    help: `Usage: memsync upload [NAME]

Uploads every local snapshot that is not complete in the bucket, or only NAME, through the
agent's own upload path: streamed, verified, manifest last. Snapshots still being written
are waited for (up to CLOUD_SYNC_SETTLE_MS + 60 s). A remote snapshot of the same name with
different content is a conflict: nothing is overwritten and the exit code is 5. It does not
ask the memory service for a fresh backup (POST /sync/upload does).

Options:
${VERBOSE_HELP}
${HELP_HELP}`,
  },
  download: {
    synopsis: 'download [NAME] --yes',
    summary: 'fetch a snapshot (default: the latest) into the backup dir',
    help: `Usage: memsync download [NAME] --yes

Downloads NAME, or the latest remote snapshot by time, into the backup directory: staged in a
hidden directory, every file verified, fsynced, then renamed into place. A local snapshot of
that name is never overwritten: identical content is reported, different content refused
(exit 5). Without --yes, says what it would do, writes nothing and exits 2.

Options:
  -y, --yes      do it
${VERBOSE_HELP}
${HELP_HELP}`,
  },
  restore: {
    synopsis: 'restore NAME --yes',
    summary: 'download NAME, then have the memory service apply it',
    help: `Usage: memsync restore NAME --yes

Downloads NAME as \`download\` does; when MEMORY_SERVICE_URL is set, then asks the memory
service to restore its live state from it (POST /restore). Without the service, says how
to apply it. Without --yes, says what it would do, writes nothing and exits 2.

Options:
  -y, --yes      do it
${VERBOSE_HELP}
${HELP_HELP}`,
  },
  verify: {
    synopsis: 'verify [NAME] [--json]',
    summary: 're-read remote objects, check them against manifests',
    help: `Usage: memsync verify [NAME] [--json]

Re-reads every object of every complete remote snapshot (or of NAME) and checks its size and
SHA-256 against the snapshot's manifest. Objects without a manifest (written by other tools)
are checked against their ETag and size and reported as unverified. Bodies are streamed and
hashed, never stored. Prints ok / unverified / FAILED per snapshot with the failing file;
exits 6 when any snapshot failed.

Options:
      --json     print JSON: {snapshots: [...], summary: {snapshots, ok, unverified, failed}}
${VERBOSE_HELP}
${HELP_HELP}`,
  },
};

export const EXIT_CODES_HELP = `Exit codes:
  0    done
  1    failed (local disk, unknown snapshot, an upload that failed for another reason)
  2    usage error, invalid configuration (a backup directory that is a file),
       or confirmation needed (--yes)
  3    the store refused memsync (credentials, bucket): "REFUSED" on stderr
  4    the store is unreachable: "UNREACHABLE" on stderr
  5    conflict: a snapshot of that name exists with different content; nothing was overwritten
  6    verification failed: a remote object does not match its manifest or ETag
  130  interrupted`;

export function generalUsage(): string {
  const width = Math.max(...Object.values(COMMAND_DOCS).map((spec) => spec.synopsis.length));
  const lines = Object.values(COMMAND_DOCS).map((spec) => `  ${spec.synopsis.padEnd(width)}  ${spec.summary}`);
  return `Usage: memsync [command] [options]

Keeps the memory service's backups in S3-compatible storage. Configuration comes from the
environment (CLOUD_SYNC_*, MEMORY_SERVICE_*, LOG_*), the same variables as the agent.

Commands:
${lines.join('\n')}

Run \`memsync <command> --help\` for a command's options.

${EXIT_CODES_HELP}`;
}
