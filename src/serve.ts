import { buildMemsync, type Memsync } from './app.js';
import { loadConfig, redactedConfig, unknownVariables, type Config } from './config.js';
import { storageClassRetentionWarning } from './storage-class-warning.js';
import { AppError, describeError } from './errors.js';
import { errorText, hintFor } from './cli/error-text.js';
import { createLogger, type Logger } from './log.js';

/**
 * `memsync serve`, the default: the agent as a long-running process. Configuration errors and
 * refusals become clear messages and exit codes, SIGTERM/SIGINT a graceful stop (exit 0), a
 * second signal an immediate exit.
 */

/** 2: configuration an operator must fix; 3: a store that refuses memsync (credentials, bucket). */
const EXIT_CONFIG = 2;
const EXIT_REMOTE_REJECTED = 3;

export async function serve(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    fail(EXIT_CONFIG, describeError(error));
  }
  const log = createLogger(config.log);
  log.info('memsync starting', { pid: process.pid, config: redactedConfig(config) });
  for (const { variable, nearest } of unknownVariables(process.env)) {
    log.warn('unknown configuration variable, ignored', { variable, hint: nearest === undefined ? 'see the README for the variables memsync reads' : `did you mean ${nearest}?` });
  }
  const billing = storageClassRetentionWarning(config.s3.atRest.storageClass, config.retention?.policy, Date.now());
  if (billing !== undefined) log.warn(billing, { variables: 'CLOUD_SYNC_STORAGE_CLASS, CLOUD_SYNC_RETENTION' });
  let memsync: Memsync | undefined;
  try {
    memsync = await buildMemsync(config, log);
    installSignalHandlers(log, memsync);
    await memsync.start();
  } catch (error) {
    const code = error instanceof AppError && error.kind === 'remote_rejected' ? EXIT_REMOTE_REJECTED : error instanceof AppError && error.kind === 'config' ? EXIT_CONFIG : 1;
    log.error('cannot start', { error: describeError(error), hint: hintFor(error) });
    await memsync?.stop().catch(() => undefined);
    process.stderr.write(errorText(error));
    process.exit(code);
  }
}

function fail(code: number, message: string): never {
  process.stderr.write(`memsync: ${message}\n`);
  process.exit(code);
}

function installSignalHandlers(log: Logger, memsync: Memsync): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    log.info('stopping', { signal });
    memsync.stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        log.error('error while stopping', { error: describeError(error) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
