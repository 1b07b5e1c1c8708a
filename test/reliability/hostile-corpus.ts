// The inputs of scenario 6 (hostile-input.test.ts): bad HTTP requests and bad configurations,
// each with the answer memsync must give, and how one bad configuration is tried and judged.
import type { AgentProcess, StartOptions } from '../helpers/agent-process.js';
import type { RawRequest } from '../helpers/raw-http.js';

export interface HttpCase {
  label: string;
  request: RawRequest;
  status: number;
  /** The `error` field of the JSON answer, when it is one of memsync's own kinds. */
  error?: string;
}

/** Every answer is checked for these; none of the requests may write anything anywhere. */
export function httpCorpus(token: string, escape: string): HttpCase[] {
  const auth = { authorization: `Bearer ${token}` };
  const post = (path: string, headers: Record<string, string> = auth): RawRequest => ({ method: 'POST', path, headers });
  const get = (path: string, headers: Record<string, string> = auth): RawRequest => ({ method: 'GET', path, headers });
  const validLongName = `a${'b'.repeat(183)}_20240101_000000`; // 200 characters: the longest valid name
  const cases: HttpCase[] = [
    // Missing, wrong and misplaced tokens: 401 on every protected route, nothing done.
    { label: 'no token', request: get('/sync/status', {}), status: 401, error: 'unauthenticated' },
    { label: 'wrong token', request: get('/sync/status', { authorization: 'Bearer wrong-token-0123456789abcdef' }), status: 401, error: 'unauthenticated' },
    { label: 'Basic instead of Bearer', request: get('/sync/status', { authorization: `Basic ${Buffer.from(`memsync:${token}`).toString('base64')}` }), status: 401, error: 'unauthenticated' },
    { label: 'empty Bearer', request: get('/sync/status', { authorization: 'Bearer ' }), status: 401, error: 'unauthenticated' },
    { label: 'token plus one character', request: get('/sync/status', { authorization: `Bearer ${token}x` }), status: 401, error: 'unauthenticated' },
    { label: 'token prefix', request: get('/sync/status', { authorization: `Bearer ${token.slice(0, 16)}` }), status: 401, error: 'unauthenticated' },
    { label: 'token in the query', request: get(`/sync/status?token=${token}`, {}), status: 401, error: 'unauthenticated' },
    { label: 'upload without token', request: post('/sync/upload', {}), status: 401, error: 'unauthenticated' },
    { label: 'download without token', request: post('/sync/download?confirm=true', {}), status: 401, error: 'unauthenticated' },
    { label: 'restore without token', request: post('/sync/restore/auto_20240101_000000?confirm=true', {}), status: 401, error: 'unauthenticated' },
    { label: 'snapshots without token', request: get('/sync/snapshots', {}), status: 401, error: 'unauthenticated' },
    { label: 'docs without token', request: get('/docs', {}), status: 401, error: 'unauthenticated' },
    { label: 'metrics without token', request: get('/metrics', {}), status: 401, error: 'unauthenticated' },
    { label: 'unknown /sync route without token', request: get('/sync/nothing', {}), status: 401, error: 'unauthenticated' },
    // Encoded spellings of protected paths: the router decodes them, so the guard must too.
    { label: 'encoded /sync/status without token', request: get('/%73ync/status', {}), status: 401, error: 'unauthenticated' },
    { label: 'encoded /sync/snapshots without token', request: get('/%73ync/snapshots', {}), status: 401, error: 'unauthenticated' },
    { label: 'encoded /docs without token', request: get('/%64ocs', {}), status: 401, error: 'unauthenticated' },
    { label: 'encoded /metrics without token', request: get('/%6detrics', {}), status: 401, error: 'unauthenticated' },
    { label: 'encoded upload without token', request: post('/%73ync/upload', {}), status: 401, error: 'unauthenticated' },
    { label: 'encoded download without token', request: post('/%73ync/download?confirm=true', {}), status: 401, error: 'unauthenticated' },
    { label: 'encoded restore without token', request: post('/%73ync/restore/auto_20240101_000000?confirm=true', {}), status: 401, error: 'unauthenticated' },
    { label: 'mid-word encoding without token', request: post('/sy%6Ec/upload', {}), status: 401, error: 'unauthenticated' },
    { label: 'a foreign Origin with the token', request: post('/sync/upload', { ...auth, origin: 'http://attacker.example' }), status: 403, error: 'forbidden' },
    { label: '20 KB Authorization header', request: get('/sync/status', { authorization: `Bearer ${'x'.repeat(20_000)}` }), status: 431 },

    // Traversal in /sync/restore/{name}.
    { label: 'restore ../../', request: post(`/sync/restore/../../${escape}?confirm=true`), status: 400, error: 'bad_input' },
    { label: 'restore ..%2f', request: post(`/sync/restore/..%2f..%2f${escape}?confirm=true`), status: 400, error: 'bad_input' },
    { label: 'restore %2e%2e%2f', request: post(`/sync/restore/%2e%2e%2f%2e%2e%2f${escape}?confirm=true`), status: 400, error: 'bad_input' },
    { label: 'restore %2E%2E', request: post('/sync/restore/%2E%2E?confirm=true'), status: 400, error: 'bad_input' },
    { label: 'restore ..%5c (backslashes)', request: post(`/sync/restore/..%5c..%5c${escape}?confirm=true`), status: 400, error: 'bad_input' },
    { label: 'restore encoded absolute path', request: post(`/sync/restore/%2Ftmp%2F${escape}?confirm=true`), status: 400, error: 'bad_input' },
    { label: 'restore absolute path', request: post(`/sync/restore//tmp/${escape}?confirm=true`), status: 404, error: 'not_found' },
    { label: 'restore NUL in a name', request: post('/sync/restore/auto_20240101_000000%00.tar?confirm=true'), status: 400, error: 'bad_input' },
    { label: 'restore a lone NUL', request: post('/sync/restore/%00?confirm=true'), status: 400, error: 'bad_input' },
    { label: 'restore a staging name', request: post('/sync/restore/.memsync-staging-x?confirm=true'), status: 400, error: 'bad_input' },
    { label: 'restore double-encoded ../', request: post(`/sync/restore/%252e%252e%252f${escape}?confirm=true`), status: 400, error: 'bad_input' },
    { label: 'restore malformed percent-encoding', request: post('/sync/restore/%E0%A4%A?confirm=true'), status: 400, error: 'bad_input' },
    { label: 'restore a 300-character name', request: post(`/sync/restore/${'a'.repeat(300)}?confirm=true`), status: 400, error: 'bad_input' },
    { label: 'restore a 2000-character name', request: post(`/sync/restore/${'a'.repeat(2000)}?confirm=true`), status: 400, error: 'bad_input' },
    { label: 'restore the longest valid name (unknown)', request: post(`/sync/restore/${validLongName}?confirm=true`), status: 404, error: 'not_found' },
    { label: 'restore without confirm', request: post('/sync/restore/auto_20240101_000000'), status: 400, error: 'bad_input' },

    // Traversal in /sync/download?name=.
    { label: 'download name=../../', request: post(`/sync/download?confirm=true&name=../../${escape}`), status: 400, error: 'bad_input' },
    { label: 'download name=%2e%2e%2f', request: post(`/sync/download?confirm=true&name=%2e%2e%2f${escape}`), status: 400, error: 'bad_input' },
    { label: 'download name=/tmp/...', request: post(`/sync/download?confirm=true&name=/tmp/${escape}`), status: 400, error: 'bad_input' },
    { label: 'download name=%2Ftmp%2F...', request: post(`/sync/download?confirm=true&name=%2Ftmp%2F${escape}`), status: 400, error: 'bad_input' },
    { label: 'download name with NUL', request: post('/sync/download?confirm=true&name=auto%00x'), status: 400, error: 'bad_input' },
    { label: 'download name=..%5c', request: post(`/sync/download?confirm=true&name=..%5c${escape}`), status: 400, error: 'bad_input' },
    { label: 'download empty name', request: post('/sync/download?confirm=true&name='), status: 400, error: 'bad_input' },
    { label: 'download name twice', request: post('/sync/download?confirm=true&name=a&name=b'), status: 400, error: 'bad_input' },
    { label: 'download backup_name=..', request: post('/sync/download?confirm=true&backup_name=..'), status: 400, error: 'bad_input' },
    { label: 'download confirm=maybe', request: post('/sync/download?confirm=maybe'), status: 400, error: 'bad_input' },
    { label: 'download unknown snapshot', request: post('/sync/download?confirm=true&name=nothing_20240101_000000'), status: 404, error: 'not_found' },

    // Other routes, methods and paths.
    { label: 'GET /sync/upload', request: get('/sync/upload'), status: 404, error: 'not_found' },
    { label: 'DELETE /sync/status', request: { method: 'DELETE', path: '/sync/status', headers: auth }, status: 404, error: 'not_found' },
    { label: 'PUT /sync/restore/{name}', request: { method: 'PUT', path: '/sync/restore/auto_20240101_000000', headers: auth }, status: 404, error: 'not_found' },
    { label: 'PATCH /sync/snapshots', request: { method: 'PATCH', path: '/sync/snapshots', headers: auth }, status: 404, error: 'not_found' },
    { label: 'GET /sync/download', request: get('/sync/download?confirm=true'), status: 404, error: 'not_found' },
    { label: 'POST /sync/status', request: post('/sync/status'), status: 404, error: 'not_found' },
    { label: 'OPTIONS /sync/status', request: { method: 'OPTIONS', path: '/sync/status', headers: auth }, status: 404, error: 'not_found' },
    { label: 'an unknown method', request: { method: 'BREW', path: '/sync/status', headers: auth }, status: 400 },
    { label: 'unknown /sync route', request: get('/sync/nothing'), status: 404, error: 'not_found' },
    { label: 'dot segments to a protected route', request: get('/healthz/../sync/status', {}), status: 400, error: 'bad_input' },
    { label: 'encoded dot segments at the root', request: get('/%2e%2e/etc/passwd', {}), status: 400, error: 'bad_input' },

    // Bodies: none is needed, none is used.
    { label: 'malformed JSON', request: { method: 'POST', path: '/sync/upload', headers: { ...auth, 'content-type': 'application/json' }, body: '{"a":' }, status: 400, error: 'bad_input' },
    { label: '2 MiB JSON body', request: { method: 'POST', path: '/sync/upload', headers: { ...auth, 'content-type': 'application/json' }, body: Buffer.alloc(2 * 1024 * 1024, 0x20) }, status: 413, error: 'bad_input' },
    {
      label: '1 MiB chunked body',
      request: { method: 'POST', path: '/sync/upload', headers: { ...auth, 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, body: Buffer.alloc(1024 * 1024, 0x20) },
      status: 413,
      error: 'bad_input',
    },
    { label: 'XML body', request: { method: 'POST', path: '/sync/upload', headers: { ...auth, 'content-type': 'text/xml' }, body: '<sync/>' }, status: 415, error: 'bad_input' },
    { label: 'malformed JSON to restore', request: { method: 'POST', path: '/sync/restore/auto_20240101_000000?confirm=true', headers: { ...auth, 'content-type': 'application/json' }, body: '{"backup_name": "../../x"' }, status: 400, error: 'bad_input' },
    {
      label: 'a body cannot confirm a download',
      request: { method: 'POST', path: '/sync/download', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ confirm: true, name: `../../${escape}` }) },
      status: 400,
      error: 'bad_input',
    },
    { label: 'non-numeric Content-Length', request: { method: 'POST', path: '/sync/upload', rawHead: `POST /sync/upload HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\ncontent-length: abc\r\nconnection: close\r\n\r\n` }, status: 400 },
    { label: 'a header without a colon', request: { method: 'GET', path: '/sync/status', rawHead: 'GET /sync/status HTTP/1.1\r\nhost: x\r\nthis is not a header\r\nconnection: close\r\n\r\n' }, status: 400 },
    { label: 'garbage request line', request: { method: 'GET', path: '/', rawHead: 'GARBAGE\r\n\r\n' }, status: 400 },

    // Pagination.
    { label: 'limit=1000000', request: get('/sync/snapshots?limit=1000000'), status: 400, error: 'bad_input' },
    { label: 'limit=99999999999999999999999', request: get('/sync/snapshots?limit=99999999999999999999999'), status: 400, error: 'bad_input' },
    { label: 'limit=1e400', request: get('/sync/snapshots?limit=1e400'), status: 400, error: 'bad_input' },
    { label: 'limit=-1', request: get('/sync/snapshots?limit=-1'), status: 400, error: 'bad_input' },
    { label: 'limit=0', request: get('/sync/snapshots?limit=0'), status: 400, error: 'bad_input' },
    { label: 'limit=1.5', request: get('/sync/snapshots?limit=1.5'), status: 400, error: 'bad_input' },
    { label: 'limit=abc', request: get('/sync/snapshots?limit=abc'), status: 400, error: 'bad_input' },
    { label: 'limit twice', request: get('/sync/snapshots?limit=10&limit=20'), status: 400, error: 'bad_input' },
    { label: 'cursor=garbage', request: get('/sync/snapshots?cursor=garbage'), status: 400, error: 'bad_input' },
    { label: 'cursor naming ../x', request: get(`/sync/snapshots?cursor=${Buffer.from('[1,"../x"]').toString('base64url')}`), status: 400, error: 'bad_input' },
    { label: 'cursor of an object', request: get(`/sync/snapshots?cursor=${Buffer.from('{"a":1}').toString('base64url')}`), status: 400, error: 'bad_input' },
    { label: 'cursor with an infinite time', request: get(`/sync/snapshots?cursor=${Buffer.from('[1e400,"auto_20240101_000000"]').toString('base64url')}`), status: 400, error: 'bad_input' },
    { label: '5000-character cursor', request: get(`/sync/snapshots?cursor=${'A'.repeat(5000)}`), status: 400, error: 'bad_input' },
    { label: 'cursor=%00', request: get('/sync/snapshots?cursor=%00'), status: 400, error: 'bad_input' },
    { label: 'cursor twice', request: get('/sync/snapshots?cursor=a&cursor=b'), status: 400, error: 'bad_input' },
  ];
  return cases;
}

export interface ConfigCase {
  /** The variable the case is about; the answer must name it. */
  variable: string;
  /** Added to (or, when undefined, removed from) a working agent environment. */
  env: Record<string, string | undefined>;
  /** 2: invalid configuration; 3: the store refused memsync; 'non-zero': any failure exit. */
  exit: 2 | 3 | 'non-zero';
  /** Also named in the answer (a second variable of a pair). */
  alsoNames?: string[];
}

export interface ConfigContext {
  /** A path where nothing exists. */
  missingFile: string;
  /** A regular file (where a directory is expected). */
  regularFile: string;
  /** A directory inside the backup directory the case runs with. */
  insideBackupDir: string;
  /** A port something else listens on. */
  busyPort: number;
  /** A secret file holding something that is not a valid value (its content is a secret). */
  invalidSecretFile: string;
  /** Random values shaped like secrets; none may appear in any output. */
  fake: { accessKey: string; secret: string; token: string; url: string; key: string; validKey: string; passphrase: string };
}

/** A wrong type, empty or out-of-range value for every variable memsync reads, and refusals by the store. */
export function configCorpus(c: ConfigContext): ConfigCase[] {
  const one = (variable: string, value: string | undefined, exit: ConfigCase['exit'] = 2): ConfigCase => ({ variable, env: { [variable]: value }, exit });
  return [
    one('CLOUD_SYNC_ENABLED', 'maybe'),
    one('CLOUD_SYNC_PROVIDER', 'gcs'),
    one('CLOUD_SYNC_BUCKET', 'Bad_Bucket!'),
    one('CLOUD_SYNC_BUCKET', ''),
    one('CLOUD_SYNC_ENDPOINT', 'ftp://127.0.0.1:21'),
    one('CLOUD_SYNC_REGION', 'US EAST 1'),
    { variable: 'CLOUD_SYNC_ACCESS_KEY', env: { CLOUD_SYNC_ACCESS_KEY: '' }, exit: 2 },
    { variable: 'CLOUD_SYNC_SECRET_KEY', env: { CLOUD_SYNC_SECRET_KEY: undefined }, exit: 2 },
    { variable: 'CLOUD_SYNC_SECRET_KEY_FILE', env: { CLOUD_SYNC_SECRET_KEY: undefined, CLOUD_SYNC_SECRET_KEY_FILE: c.missingFile }, exit: 2 },
    { variable: 'CLOUD_SYNC_ACCESS_KEY_FILE', env: { CLOUD_SYNC_ACCESS_KEY_FILE: c.invalidSecretFile }, exit: 2 },
    one('CLOUD_SYNC_FORCE_PATH_STYLE', 'sometimes'),
    one('CLOUD_SYNC_SCHEDULE', 'every day'),
    one('CLOUD_SYNC_SCHEDULE', '61 * * * *'),
    // Valid syntax, but 31 February never comes: the scheduled sweep would silently never run.
    one('CLOUD_SYNC_SCHEDULE', '0 0 31 2 *'),
    one('CLOUD_SYNC_PREFIX', 'memories/../other/'),
    one('CLOUD_SYNC_BACKUP_DIR', c.regularFile, 'non-zero'),
    one('CLOUD_SYNC_STATE_DIR', c.insideBackupDir),
    one('CLOUD_SYNC_STATE_DIR', c.regularFile, 'non-zero'),
    one('CLOUD_SYNC_SETTLE_MS', '50'),
    one('CLOUD_SYNC_CONCURRENCY', '2.5'),
    one('CLOUD_SYNC_MULTIPART_THRESHOLD_MB', '4'),
    one('CLOUD_SYNC_SERVER_SIDE_COPY', 'perhaps'),
    one('CLOUD_SYNC_SHUTDOWN_TIMEOUT_MS', '-5'),
    one('CLOUD_SYNC_STALE_MULTIPART_MINUTES', '0'),
    one('CLOUD_SYNC_FILE_DEADLINE_MS', '10'),
    one('CLOUD_SYNC_DELTA', 'maybe'),
    one('CLOUD_SYNC_DELTA_MIN_MB', '4'),
    one('CLOUD_SYNC_REFUSE_HARDLINKS', 'sometimes'),
    one('CLOUD_SYNC_CLAIM_LEASE_S', '60'),
    one('CLOUD_SYNC_S3_PROFILE', 'digitalocean'),
    one('CLOUD_SYNC_OBJECT_LOCK_MODE', 'forever'),
    one('CLOUD_SYNC_OBJECT_LOCK_DAYS', '0'),
    one('CLOUD_SYNC_BANDWIDTH_LIMIT', 'fast'),
    one('CLOUD_SYNC_STORAGE_CLASS', 'GLACIER'),
    one('CLOUD_SYNC_SSE', 'kms'),
    one('CLOUD_SYNC_SSE_KMS_KEY_ID', 'alias/memsync'),
    // Names no account key or SAS: the azure provider cannot sign a request with it.
    { variable: 'AZURE_STORAGE_CONNECTION_STRING', env: { CLOUD_SYNC_PROVIDER: 'azure', AZURE_STORAGE_CONNECTION_STRING: 'AccountName=memsync' }, exit: 2 },
    { variable: 'AZURE_STORAGE_CONNECTION_STRING_FILE', env: { CLOUD_SYNC_PROVIDER: 'azure', AZURE_STORAGE_CONNECTION_STRING_FILE: c.missingFile }, exit: 2 },
    one('CLOUD_SYNC_HOST', '0.0.0.0'),
    // An address of another machine: valid, but memsync cannot listen there.
    { variable: 'CLOUD_SYNC_HOST', env: { CLOUD_SYNC_HOST: '192.0.2.1', CLOUD_SYNC_API_TOKEN: c.fake.token }, exit: 2 },
    one('CLOUD_SYNC_PORT', '70000'),
    one('CLOUD_SYNC_PORT', String(c.busyPort)),
    one('CLOUD_SYNC_API_TOKEN', 'short'),
    one('CLOUD_SYNC_API_TOKEN_FILE', c.missingFile),
    one('CLOUD_SYNC_METRICS_OPEN', 'open'),
    one('MEMORY_SERVICE_URL', 'memories:8000'),
    one('MEMORY_SERVICE_API_KEY_FILE', c.missingFile),
    { variable: 'MEMORY_SERVICE_API_KEY', env: { MEMORY_SERVICE_API_KEY: c.fake.secret, MEMORY_SERVICE_API_KEY_FILE: c.invalidSecretFile }, exit: 2, alsoNames: ['MEMORY_SERVICE_API_KEY_FILE'] },
    one('LOG_LEVEL', 'verbose'),
    one('LOG_FORMAT', 'xml'),
    one('CLOUD_SYNC_RETENTION', 'last=0'),
    one('CLOUD_SYNC_RETENTION_DRY_RUN', 'maybe'),
    one('CLOUD_SYNC_NOTIFY_URL', `hooks.example.com/services/${c.fake.url}`),
    one('CLOUD_SYNC_NOTIFY_URL_FILE', c.invalidSecretFile),
    one('CLOUD_SYNC_HEARTBEAT_URL', `ftp://hc.example.com/${c.fake.url}`),
    one('CLOUD_SYNC_HEARTBEAT_URL_FILE', c.missingFile),
    one('CLOUD_SYNC_ENCRYPTION_KEY', c.fake.key),
    one('CLOUD_SYNC_ENCRYPTION_PASSPHRASE', 'too short'),
    one('CLOUD_SYNC_ENCRYPTION_PASSPHRASE_FILE', c.missingFile),
    one('CLOUD_SYNC_ENCRYPTION_KEY_FILE', c.missingFile),
    { variable: 'CLOUD_SYNC_ENCRYPTION_PASSPHRASE', env: { CLOUD_SYNC_ENCRYPTION_PASSPHRASE: c.fake.passphrase, CLOUD_SYNC_ENCRYPTION_KEY: c.fake.validKey }, exit: 2 },
    // Valid as configuration; the store refuses them at start.
    { variable: 'CLOUD_SYNC_SECRET_KEY', env: { CLOUD_SYNC_SECRET_KEY: c.fake.secret }, exit: 3, alsoNames: ['CLOUD_SYNC_ACCESS_KEY'] },
    { variable: 'CLOUD_SYNC_ACCESS_KEY', env: { CLOUD_SYNC_ACCESS_KEY: c.fake.accessKey }, exit: 3 },
    { variable: 'CLOUD_SYNC_BUCKET', env: { CLOUD_SYNC_BUCKET: 'memsync-no-such-bucket' }, exit: 3 },
  ];
}

export interface ConfigResult {
  label: string;
  /** started: memsync accepted the configuration and listens; hung: neither exited nor listened. */
  outcome: 'exited' | 'started' | 'hung';
  code: number | null;
  stderr: string;
}

/** Starts an agent with the case's environment and waits until it exits or listens (bounded). */
export async function runConfigCase(start: (options: StartOptions) => AgentProcess, env: Record<string, string | undefined>, c: ConfigCase, timeoutMs: number): Promise<ConfigResult> {
  const label = `${c.variable}=${JSON.stringify(c.env[c.variable] ?? null).slice(0, 60)}`;
  const agent = start({ env: { ...env, ...c.env }, label: `config case ${label}` });
  // The API listens before the store is probed; an accepted configuration ends with the watcher running.
  const started = await agent.waitFor('watching for backups', {}, timeoutMs).then(
    () => true,
    () => false,
  );
  if (started || agent.exitResult === undefined) {
    await agent.kill();
    return { label, outcome: started ? 'started' : 'hung', code: null, stderr: agent.stderr };
  }
  return { label, outcome: 'exited', code: agent.exitResult.code, stderr: agent.stderr };
}

/** What is wrong with how memsync answered a case, or undefined. */
export function judgeConfig(c: ConfigCase, result: ConfigResult): string | undefined {
  // memsync's own message starts with "memsync:"; runtime warnings may come before it.
  const lines = result.stderr.split('\n');
  const own = lines.findIndex((line) => line.startsWith('memsync:'));
  const said = (own < 0 ? lines.slice(-4) : lines.slice(own, own + 4)).filter((line) => line.trim() !== '').join(' | ');
  if (result.outcome !== 'exited') return `${result.label}: accepted (${result.outcome}), expected exit ${c.exit}`;
  const exitOk = c.exit === 'non-zero' ? result.code !== 0 && result.code !== null : result.code === c.exit;
  const unnamed = [c.variable, ...(c.alsoNames ?? [])].filter((variable) => !result.stderr.includes(variable));
  if (!exitOk) return `${result.label}: exit ${result.code}, expected ${c.exit}: ${said}`;
  if (unnamed.length > 0) return `${result.label}: exit ${result.code}, but the message does not name ${unnamed.join(', ')}: ${said}`;
  return undefined;
}
