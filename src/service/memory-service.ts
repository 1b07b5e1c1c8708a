import { AppError } from '../errors.js';
import { isSnapshotName } from '../snapshot/naming.js';

/**
 * The memory service's own backup and restore endpoints, for when memsync is told where the
 * service is: a manual sync asks it for a fresh backup, a restore asks it to apply one.
 */
export interface MemoryServiceClientOptions {
  url: string;
  apiKey: string | undefined;
  requestTimeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 120_000;

export class MemoryServiceClient {
  constructor(private readonly options: MemoryServiceClientOptions) {}

  get url(): string {
    return this.options.url;
  }

  /** POST /backup?prefix=...; returns the new backup's name, read from the path the service answers with. */
  async createBackup(prefix = 'manual'): Promise<string> {
    const body = await this.call('POST', `/backup?prefix=${encodeURIComponent(prefix)}`, undefined);
    const name = findBackupName(body, prefix);
    if (name === undefined) throw new AppError('remote_unavailable', `memory service answered POST /backup without a backup name: ${JSON.stringify(body).slice(0, 200)}`, { retryable: false });
    return name;
  }

  /** POST /restore {"backup_name": name}: the service restores its live state from that backup. */
  async applyRestore(name: string): Promise<unknown> {
    return this.call('POST', '/restore', { backup_name: name });
  }

  private async call(method: string, pathAndQuery: string, json: unknown): Promise<unknown> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (json !== undefined) headers['content-type'] = 'application/json';
    if (this.options.apiKey !== undefined) headers['x-api-key'] = this.options.apiKey;
    let response: Response;
    try {
      response = await fetch(`${this.options.url}${pathAndQuery}`, {
        method,
        headers,
        body: json === undefined ? undefined : JSON.stringify(json),
        signal: AbortSignal.timeout(this.options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS),
      });
    } catch (error) {
      throw new AppError('remote_unavailable', `memory service ${method} ${pathAndQuery.split('?')[0] ?? ''}: unreachable`, { cause: error, hint: 'check MEMORY_SERVICE_URL and that the service is running' });
    }
    const text = await response.text();
    if (!response.ok) {
      const kind = response.status === 401 || response.status === 403 ? 'remote_rejected' : response.status >= 500 ? 'remote_unavailable' : 'remote_rejected';
      throw new AppError(kind, `memory service ${method} ${pathAndQuery.split('?')[0] ?? ''}: HTTP ${response.status} ${text.slice(0, 200)}`, {
        hint: response.status === 401 || response.status === 403 ? 'check MEMORY_SERVICE_API_KEY' : undefined,
      });
    }
    try {
      return text.length === 0 ? {} : (JSON.parse(text) as unknown);
    } catch {
      return { text };
    }
  }
}

/** The service answers with the backup's path somewhere in its JSON; take the last path segment that is a backup name. */
export function findBackupName(body: unknown, prefix: string): string | undefined {
  const strings: string[] = [];
  const collect = (value: unknown): void => {
    if (typeof value === 'string') strings.push(value);
    else if (Array.isArray(value)) value.forEach(collect);
    else if (typeof value === 'object' && value !== null) Object.values(value).forEach(collect);
  };
  collect(body);
  const pattern = new RegExp(`(?:^|/)(${prefix.replace(/[^A-Za-z0-9_-]/g, '_')}_\\d{8}_\\d{6})/?$`);
  for (const value of strings) {
    const match = pattern.exec(value);
    if (match?.[1] !== undefined && isSnapshotName(match[1])) return match[1];
  }
  return undefined;
}
