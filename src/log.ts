import winston from 'winston';
import type { LogFormat, LogLevel } from './config.js';

/** The logging surface the rest of memsync depends on; winston stays behind it. */
export interface Logger {
  error(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  debug(message: string, fields?: Record<string, unknown>): void;
  /** A logger whose every line carries these fields (component, snapshot...). */
  child(fields: Record<string, unknown>): Logger;
}

class WinstonLogger implements Logger {
  constructor(private readonly inner: winston.Logger) {}
  error(message: string, fields?: Record<string, unknown>): void {
    this.inner.error(message, fields);
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.inner.warn(message, fields);
  }
  info(message: string, fields?: Record<string, unknown>): void {
    this.inner.info(message, fields);
  }
  debug(message: string, fields?: Record<string, unknown>): void {
    this.inner.debug(message, fields);
  }
  child(fields: Record<string, unknown>): Logger {
    return new WinstonLogger(this.inner.child(fields));
  }
}

const prettyLine = winston.format.printf((info) => {
  const { timestamp, level, message, component, ...rest } = info;
  const fields = Object.entries(rest)
    .filter(([key]) => typeof key === 'string')
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
  const where = typeof component === 'string' ? ` [${component}]` : '';
  return `${String(timestamp)} ${level}${where} ${String(message)}${fields.length > 0 ? ` ${fields}` : ''}`;
});

export function createLogger(options: { level: LogLevel; format: LogFormat }): Logger {
  const format =
    options.format === 'json'
      ? winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: false }), winston.format.json())
      : winston.format.combine(winston.format.timestamp({ format: 'HH:mm:ss.SSS' }), winston.format.colorize(), prettyLine);
  const inner = winston.createLogger({
    level: options.level,
    format,
    // Everything to stdout: containers collect one stream, and stderr is kept for crashes.
    transports: [new winston.transports.Console()],
  });
  return new WinstonLogger(inner);
}

/** A logger that drops everything, for unit tests. */
export const silentLogger: Logger = {
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
  child: () => silentLogger,
};
