import { loadConfig, type Config } from '../config.js';
import { AppError } from '../errors.js';
import { openEncryption, type Encryption } from '../crypto/encryption.js';
import { serve } from '../serve.js';
import { parseCommandLine, type Command } from './args.js';
import { runRestore } from './commands/restore.js';
import { runSnapshots } from './commands/snapshots.js';
import { runStatus } from './commands/status.js';
import { runUpload } from './commands/upload.js';
import { runVerify } from './commands/verify.js';
import { requireBackupDirectory } from './backup-dir.js';
import { openStore, type CommandContext } from './context.js';
import { errorText } from './error-text.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { cliLogLevel, createCliLogger } from './log.js';
import { createProgressDisplay, type ProgressDisplay } from './progress.js';

/**
 * The process around a command: parse, load the same configuration as the agent (same
 * messages, exit 2), build the context, run, turn the outcome into an exit code. `serve`
 * hands over to the agent's own process (serve.ts) and never returns here.
 */

/** Once the answer is written the process ends by itself; this only ends one kept alive by a stray handle. */
const EXIT_BACKSTOP_MS = 2000;

/** Commands that read or write the backup directory: it must be one before they start. */
const USES_BACKUP_DIR: ReadonlySet<string> = new Set(['status', 'upload', 'download', 'restore']);

export async function runCli(argv: readonly string[]): Promise<void> {
  const parsed = parseCommandLine(argv);
  if (parsed.kind === 'help') {
    process.stdout.write(`${parsed.text}\n`);
    return finish(EXIT.ok);
  }
  if (parsed.kind === 'usage-error') {
    process.stderr.write(`memsync: ${parsed.message}\n\n${parsed.usage}\n`);
    return finish(EXIT.usage);
  }
  const { command } = parsed;
  if (command.name === 'serve') return serve();

  let config: Config;
  try {
    config = loadConfig();
    if (!config.enabled) {
      throw new AppError('disabled', `cloud sync is disabled (CLOUD_SYNC_ENABLED is not true); set it and CLOUD_SYNC_BUCKET to use \`memsync ${command.name}\``);
    }
    if (USES_BACKUP_DIR.has(command.name)) await requireBackupDirectory(config.backupDir);
  } catch (error) {
    process.stderr.write(errorText(error));
    return finish(exitCodeFor(error));
  }

  // Bars only for a person at a terminal; anything piped or redirected gets plain lines.
  const progress = createProgressDisplay({ interactive: process.stdout.isTTY === true && process.stderr.isTTY === true, stream: process.stderr });
  const verbose = 'verbose' in command && command.verbose;
  const log = createCliLogger({ level: cliLogLevel(verbose, config.log.level), write: (line) => progress.log(line) });
  const controller = new AbortController();
  let encryption: Encryption | undefined;
  try {
    // The agent's salt is used when present; a command never creates files in its state directory.
    encryption = config.encryption === undefined ? undefined : await openEncryption(config.encryption, config.stateDir, false);
  } catch (error) {
    process.stderr.write(errorText(error));
    return finish(exitCodeFor(error));
  }
  const store = await openStore(config);
  const context: CommandContext = { config, store, log, progress, out: (text) => process.stdout.write(`${text}\n`), signal: controller.signal, now: Date.now, encryption };
  installInterruptHandler(command, controller, progress);
  let code: number;
  try {
    code = await runCommand(command, context);
  } catch (error) {
    progress.stop();
    process.stderr.write(errorText(error, { storeLocation: store.location }));
    code = controller.signal.aborted ? EXIT.interrupted : exitCodeFor(error);
  } finally {
    progress.stop();
    store.close();
  }
  finish(code);
}

function runCommand(command: Exclude<Command, { name: 'serve' }>, context: CommandContext): Promise<number> {
  switch (command.name) {
    case 'snapshots':
      return runSnapshots(command, context);
    case 'status':
      return runStatus(command, context);
    case 'upload':
      return runUpload(command, context);
    case 'download':
    case 'restore':
      return runRestore(command, context);
    case 'verify':
      return runVerify(command, context);
  }
}

/**
 * Ctrl-C: an upload stops its jobs first, so multipart uploads are aborted rather than left
 * billed (a second signal exits at once). Every other command only reads remote data, or, for
 * a download, writes into a hidden staging directory that never carries the snapshot's name:
 * those exit at once.
 */
function installInterruptHandler(command: Command, controller: AbortController, progress: ProgressDisplay): void {
  const onSignal = (signal: NodeJS.Signals): void => {
    if (command.name === 'upload' && !controller.signal.aborted) {
      progress.log(`memsync: ${signal}: stopping the uploads in progress (again to exit now)`);
      controller.abort(new AppError('cancelled', `interrupted by ${signal}`));
      return;
    }
    progress.stop();
    if (command.name === 'download' || command.name === 'restore') {
      process.stderr.write('memsync: interrupted; a partial download may remain in a hidden .memsync-staging-* directory of the backup directory, which the agent removes when it starts\n');
    }
    process.exit(EXIT.interrupted);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

function finish(code: number): void {
  // Not process.exit() now: stdout to a pipe is written asynchronously and would be cut short.
  process.exitCode = code;
  setTimeout(() => process.exit(code), EXIT_BACKSTOP_MS).unref();
}
