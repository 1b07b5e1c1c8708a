import type { LogLevel } from '../config.js';
import type { Logger } from '../log.js';

/**
 * The Logger the agent's modules write to, for a command run by a person: one readable line
 * per event on stderr, through the progress display so bars are not torn. Errors always show
 * (an unreachable store, a failed upload); warnings (retries, conflicts, which the command's
 * answer reports again) and the rest only with --verbose.
 */

const SEVERITY: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface CliLoggerOptions {
  /** Most detailed level shown. */
  level: LogLevel;
  write: (line: string) => void;
}

export function createCliLogger(options: CliLoggerOptions, fields: Record<string, unknown> = {}): Logger {
  const emit = (level: LogLevel, message: string, extra: Record<string, unknown> | undefined): void => {
    if (SEVERITY[level] > SEVERITY[options.level]) return;
    options.write(`memsync: ${level}: ${message}${formatFields({ ...fields, ...extra })}`);
  };
  return {
    error: (message, extra) => emit('error', message, extra),
    warn: (message, extra) => emit('warn', message, extra),
    info: (message, extra) => emit('info', message, extra),
    debug: (message, extra) => emit('debug', message, extra),
    child: (more) => createCliLogger(options, { ...fields, ...more }),
  };
}

/** Which levels a command shows: errors, or with --verbose what LOG_LEVEL asks for (at least info). */
export function cliLogLevel(verbose: boolean, configured: LogLevel): LogLevel {
  if (!verbose) return 'error';
  return SEVERITY[configured] >= SEVERITY.info ? configured : 'info';
}

function formatFields(fields: Record<string, unknown>): string {
  // Which module logged matters in the agent's log, not to someone running a command.
  const entries = Object.entries(fields).filter(([key, value]) => key !== 'component' && value !== undefined);
  if (entries.length === 0) return '';
  return ` ${entries.map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`).join(' ')}`;
}
