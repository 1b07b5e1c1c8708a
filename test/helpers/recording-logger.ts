import type { Logger } from '../../src/log.js';

export interface LogLine {
  level: string;
  message: string;
  fields: Record<string, unknown>;
}

/** A Logger that appends every line to `lines`, children's fields included, for assertions on what was logged. */
export function recordingLogger(lines: LogLine[], bound: Record<string, unknown> = {}): Logger {
  const at = (level: string) => (message: string, fields: Record<string, unknown> = {}) => void lines.push({ level, message, fields: { ...bound, ...fields } });
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), child: (fields) => recordingLogger(lines, { ...bound, ...fields }) };
}
