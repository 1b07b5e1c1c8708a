#!/usr/bin/env -S node --max-semi-space-size=4
import { runCli } from './cli/run.js';
import { describeError } from './errors.js';

/**
 * The `memsync` command. Without arguments, or with `serve`, it is the agent, exactly as
 * `node dist/main.js` has always run it; other commands (snapshots, status, upload, download,
 * restore, verify) run once against the same configuration. See `memsync --help`.
 */
runCli(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`memsync: fatal: ${describeError(error)}\n`);
  process.exit(1);
});
