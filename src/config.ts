import { readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { Cron } from 'croner';
import { azureOptionsProblems, type AzureCredentials } from './remote/azure-options.js';
import { z } from 'zod';
import { AppError } from './errors.js';
import { formatPolicy, parseRetentionPolicy, type RetentionPolicy } from './retention/policy.js';
import { parseKeyText, type KeySource } from './crypto/keys.js';
// Bandwidth limit, storage class and server-side encryption (S3).
import { formatRate, parseBandwidthLimit, type BandwidthLimit } from './remote/bandwidth-limit.js';
import { ARCHIVE_CLASSES, isStorageClass, SSE_MODES, STORAGE_CLASSES, type S3AtRest, type StorageClassName } from './remote/s3-storage-settings.js';
import type { ObjectLockSettings } from './remote/object-lock.js';
import { allowsComposedUploads, describeS3Profile, resolveS3Profile, S3_PROFILE_NAMES, type ResolvedS3Profile } from './remote/s3-profile.js';

/**
 * The only reader of process.env. Every variable is validated at start and every problem
 * is reported at once, one line each: the variable, its value (secrets masked) and what
 * was expected, so an operator fixes a deployment in one round trip.
 */

export type LogFormat = 'json' | 'pretty';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface S3Settings {
  bucket: string;
  /** Custom endpoint (MinIO, Ceph RGW, B2, R2...); undefined means AWS itself. */
  endpoint: string | undefined;
  region: string;
  /** Undefined: the AWS SDK's default chain (env, profile, web identity, instance role). */
  credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
  /** Key prefix for every object, '' or ending in '/'. */
  prefix: string;
  forcePathStyle: boolean;
  /** Bytes per second each way, shared by every transfer of the process (CLOUD_SYNC_BANDWIDTH_LIMIT). */
  bandwidthLimit: BandwidthLimit;
  /** Storage class and server-side encryption asked for on every write (CLOUD_SYNC_STORAGE_CLASS, CLOUD_SYNC_SSE). */
  atRest: S3AtRest;
  /** Object Lock on every snapshot object (CLOUD_SYNC_OBJECT_LOCK_MODE/_DAYS); undefined: none of memsync's own. */
  objectLock: ObjectLockSettings | undefined;
  /** S3 provider profile (CLOUD_SYNC_S3_PROFILE, or detected from the endpoint's host name). */
  profile: ResolvedS3Profile;
}

/**
 * Where snapshots are stored (CLOUD_SYNC_PROVIDER). The S3 settings stay in Config.s3; a provider
 * with settings of its own carries them here. See PROVIDERS for adding one.
 */
export type StorageTarget =
  | { provider: 's3' }
  | { provider: 'fs'; /** Absolute, existing. */ directory: string; /** '' or ending in '/'. */ prefix: string }
  | { provider: 'azure'; container: string; /** '' or ending in '/'. */ prefix: string; endpoint: string | undefined; credentials: AzureCredentials };

export interface Config {
  enabled: boolean;
  storage: StorageTarget;
  /** The S3 settings; `bucket` is '' unless the provider is s3. */
  s3: S3Settings;
  /** Cron expression of the scheduled sweep. */
  schedule: string;
  backupDir: string;
  stateDir: string;
  settleMs: number;
  concurrency: number;
  multipartThresholdBytes: number;
  /** Create files already stored by a complete remote snapshot with a server-side copy instead of sending them. */
  serverSideCopy: boolean;
  shutdownTimeoutMs: number;
  /** Multipart uploads under the prefix older than this, not in flight here, are aborted by sweeps. */
  staleMultipartMs: number;
  /** A local file open or read that takes longer fails its snapshot (a FIFO, a hung mount). */
  localFileDeadlineMs: number;
  /** Lease of a claim on a snapshot name; its owner renews it every third of this (CLOUD_SYNC_CLAIM_LEASE_S). */
  claimLeaseMs: number;
  /** Refuse backup files with more than one hard link (another name may lie outside the backup directory). */
  refuseHardlinks: boolean;
  /** Delta uploads of files at least this large (bytes); undefined: off (CLOUD_SYNC_DELTA=false). */
  deltaMinFileBytes: number | undefined;
  /** Restores of files at least this large take unchanged runs from an earlier local version; undefined: off (CLOUD_SYNC_DELTA=false). */
  localBaseMinFileBytes: number | undefined;
  http: { host: string; port: number; apiToken: string | undefined; metricsOpen: boolean };
  memoryService: { url: string; apiKey: string | undefined } | undefined;
  log: { level: LogLevel; format: LogFormat };
  /** Undefined: no retention, memsync never deletes a remote snapshot. */
  retention: { policy: RetentionPolicy; dryRun: boolean } | undefined;
  alerts: { notifyUrl: string | undefined; heartbeatUrl: string | undefined };
  /** Client-side encryption of uploaded files and manifests; undefined: stored as they are. */
  encryption: KeySource | undefined;
}

export type Env = Readonly<Record<string, string | undefined>>;

/** Variables whose values never appear in a message or a log line. */
export const SECRET_VARIABLES = [
  'CLOUD_SYNC_ACCESS_KEY',
  'CLOUD_SYNC_SECRET_KEY',
  'CLOUD_SYNC_API_TOKEN',
  'MEMORY_SERVICE_API_KEY',
  // Webhook and heartbeat URLs usually embed a token (Slack, Discord, healthchecks.io).
  'CLOUD_SYNC_NOTIFY_URL',
  'CLOUD_SYNC_HEARTBEAT_URL',
  'CLOUD_SYNC_ENCRYPTION_KEY',
  'AZURE_STORAGE_CONNECTION_STRING',
  'CLOUD_SYNC_ENCRYPTION_PASSPHRASE',
] as const;

/** Short passphrases fall to guessing however slow the key derivation; 12 characters is the floor. */
const MIN_PASSPHRASE_CHARS = 12;

const MIB = 1024 * 1024;
/** S3's smallest allowed non-final multipart part. */
const MIN_MULTIPART_THRESHOLD_MIB = 5;

const TRUE_WORDS = ['true', '1', 'yes', 'on'];
const FALSE_WORDS = ['false', '0', 'no', 'off', ''];
/** Every spelling of a switch people write, case-insensitively: true/false, 1/0, yes/no, on/off. */
const booleanText = z
  .string()
  .trim()
  .toLowerCase()
  .refine((v) => TRUE_WORDS.includes(v) || FALSE_WORDS.includes(v), 'expected true or false (also 1/0, yes/no, on/off)')
  .transform((v) => TRUE_WORDS.includes(v));

function integerText(min: number, max: number, unit: string) {
  return z
    .string()
    .trim()
    .regex(/^\d+$/, `expected a whole number of ${unit} between ${min} and ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `expected a whole number of ${unit} between ${min} and ${max}`);
}

const cronText = z
  .string()
  .trim()
  .superRefine((value, ctx) => {
    try {
      // Constructing a paused Cron validates the expression without scheduling anything.
      if (new Cron(value, { paused: true, timezone: 'UTC' }).nextRun() === null) {
        ctx.addIssue({ code: 'custom', message: `expected a cron expression that fires ("${value}" never does, e.g. a 31st of February)` });
      }
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      ctx.addIssue({ code: 'custom', message: `expected a cron expression like "0 2 * * *" (${reason})` });
    }
  });

// S3 bucket naming rules (virtual-host safe subset): 3-63 chars, lowercase, digits, dots, hyphens.
const bucketText = z
  .string()
  .trim()
  .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected an S3 bucket name: 3-63 lowercase letters, digits, dots or hyphens');

/** An http(s) URL; `example` shows the kind of URL the variable takes. */
function httpUrlText(example: string) {
  return z
    .string()
    .trim()
    .refine((v) => {
      try {
        const url = new URL(v);
        return url.protocol === 'http:' || url.protocol === 'https:';
      } catch {
        return false;
      }
    }, `expected an http:// or https:// URL, e.g. ${example}`);
}

const urlText = httpUrlText('http://minio:9000');

/** CLOUD_SYNC_BUCKET for the fs provider: the mounted directory the snapshots are copied into. */
const fsDirectoryText = z
  .string()
  .trim()
  .refine((v) => path.isAbsolute(v), 'expected the absolute path of an existing directory (the fs provider stores snapshots there), e.g. /mnt/backup-share')
  .transform((v) => path.resolve(v));

/**
 * The storage providers and what CLOUD_SYNC_BUCKET names for each. Adding a provider: an entry
 * here, a member of StorageTarget (with loadConfig filling it in), and a case in
 * remote/store-factory.ts.
 */
const PROVIDER_NAMES = ['s3', 'fs', 'azure'] as const;
type ProviderName = (typeof PROVIDER_NAMES)[number];
const PROVIDERS: Record<ProviderName, { bucket: z.ZodType<string, string>; bucketRequired: string }> = {
  s3: { bucket: bucketText, bucketRequired: 'a bucket name (required when CLOUD_SYNC_ENABLED=true)' },
  fs: { bucket: fsDirectoryText, bucketRequired: 'the absolute path of the directory to store snapshots in (required when CLOUD_SYNC_ENABLED=true with CLOUD_SYNC_PROVIDER=fs)' },
  azure: { bucket: z.string().trim().min(1, 'expected a container name'), bucketRequired: 'the name of an existing container (required when CLOUD_SYNC_ENABLED=true with CLOUD_SYNC_PROVIDER=azure)' },
};
const quotedProviders = PROVIDER_NAMES.map((name) => `"${name}"`);
const providerText = z.enum(PROVIDER_NAMES, `expected ${quotedProviders.slice(0, -1).join(', ')} or ${quotedProviders.at(-1)} (the storage providers memsync knows)`);

/** CLOUD_SYNC_BUCKET as the provider reads it; undefined (and a problem) when it does not fit. */
function checkBucket(provider: ProviderName, raw: Record<string, string | undefined>, enabled: boolean, problems: Problem[]): string | undefined {
  const value = raw.CLOUD_SYNC_BUCKET;
  if (value === undefined) {
    if (enabled) problems.push({ variable: 'CLOUD_SYNC_BUCKET', value: undefined, expected: PROVIDERS[provider].bucketRequired });
    return undefined;
  }
  const parsed = PROVIDERS[provider].bucket.safeParse(value);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push({ variable: 'CLOUD_SYNC_BUCKET', value, expected: issue.message });
    return undefined;
  }
  return parsed.data;
}

/**
 * The fs provider's directory: it must exist (memsync never creates it: a missing directory is
 * usually a share that is not mounted, and writing to the empty mount point would fill the local
 * disk), and it must not overlap the backup directory, or the backups would be stored inside
 * what they are backed up from, or scanned as backups themselves.
 */
function checkFsDirectory(directory: string, prefix: string, backupDir: string | undefined, enabled: boolean, problems: Problem[]): void {
  const problem = (expected: string): void => void problems.push({ variable: 'CLOUD_SYNC_BUCKET', value: directory, expected });
  // Compared as the directories the paths name, not as they are spelled: a link into the backup
  // directory is the backup directory. A path not there yet is resolved as far as it exists.
  const realPath = (target: string): string => {
    const absolute = path.resolve(target);
    for (let existing = absolute; ; existing = path.dirname(existing)) {
      try {
        return path.join(realpathSync(existing), path.relative(existing, absolute));
      } catch {
        if (existing === path.dirname(existing)) return absolute;
      }
    }
  };
  const realBackups = backupDir === undefined ? undefined : realPath(backupDir);
  if (realBackups !== undefined && isInside(realPath(directory), realBackups)) {
    problem(`a directory outside the backup directory (CLOUD_SYNC_BACKUP_DIR=${backupDir}): snapshots stored inside it would be backed up again`);
    return;
  }
  const root = realPath(path.join(directory, prefix));
  if (realBackups !== undefined && isInside(realBackups, root)) {
    problem(`a directory that does not hold the backup directory (CLOUD_SYNC_BACKUP_DIR=${backupDir}) under CLOUD_SYNC_PREFIX: the backups would be listed as stored snapshots`);
    return;
  }
  if (!enabled) return;
  try {
    if (!statSync(directory).isDirectory()) problem('an existing directory (this is a file)');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    problem(`an existing directory (${code === 'ENOENT' ? 'it does not exist; memsync does not create it: mount or create it first' : code})`);
  }
}

/** The Azure credentials the variables give, or undefined when they give none. */
function azureCredentials(values: Partial<EnvValues>): AzureCredentials | undefined {
  if (values.AZURE_STORAGE_CONNECTION_STRING !== undefined) return { kind: 'connection-string', connectionString: values.AZURE_STORAGE_CONNECTION_STRING };
  if (values.CLOUD_SYNC_ACCESS_KEY !== undefined && values.CLOUD_SYNC_SECRET_KEY !== undefined) {
    return { kind: 'shared-key', accountName: values.CLOUD_SYNC_ACCESS_KEY, accountKey: values.CLOUD_SYNC_SECRET_KEY };
  }
  return undefined;
}

/** The azure provider's options, checked by the store's own rules (each names the variable to fix). */
function checkAzure(container: string, values: Partial<EnvValues>, raw: Record<string, string | undefined>, problems: Problem[]): void {
  const credentials = azureCredentials(values);
  if (credentials === undefined) {
    problems.push({
      variable: 'CLOUD_SYNC_ACCESS_KEY',
      value: raw.CLOUD_SYNC_ACCESS_KEY,
      expected: 'the storage account name, with its key in CLOUD_SYNC_SECRET_KEY; or set AZURE_STORAGE_CONNECTION_STRING instead (CLOUD_SYNC_PROVIDER=azure)',
    });
    return;
  }
  for (const message of azureOptionsProblems({ container, endpoint: values.CLOUD_SYNC_ENDPOINT, credentials })) {
    // Each message starts with the variable it is about.
    const [variable = 'CLOUD_SYNC_PROVIDER', ...rest] = message.split(' ');
    problems.push({ variable, value: raw[variable], expected: rest.join(' ') });
  }
}

const prefixText = z
  .string()
  .trim()
  .refine((v) => !v.startsWith('/'), 'expected a key prefix without a leading "/", e.g. memories/')
  .refine((v) => !v.split('/').some((part) => part === '..' || part === '.'), 'expected a key prefix without "." or ".." segments')
  .refine((v) => !/[\u0000-\u001f\\]/.test(v), 'expected a key prefix without control characters or backslashes')
  .transform((v) => (v === '' || v.endsWith('/') ? v : `${v}/`));

const absolutePathText = z
  .string()
  .trim()
  .min(1, 'expected a directory path')
  .transform((v) => path.resolve(v));

const endpointUrlText = httpUrlText('https://hooks.slack.com/services/...');

const retentionText = z
  .string()
  .trim()
  .transform((value, ctx) => {
    const parsed = parseRetentionPolicy(value);
    if (parsed.ok) return parsed.policy;
    ctx.addIssue({ code: 'custom', message: `expected a policy like "last=10,hourly=24,daily=7,weekly=4,monthly=12" keeping at least one snapshot: ${parsed.problem}` });
    return z.NEVER;
  });

const encryptionKeyText = z
  .string()
  .transform((value, ctx) => {
    const key = parseKeyText(value);
    if (key !== undefined) return key;
    ctx.addIssue({ code: 'custom', message: 'expected a 256-bit key: 64 hex digits or 44 base64 characters (e.g. the output of `openssl rand -base64 32`)' });
    return z.NEVER;
  });

// Bandwidth limit, storage class and server-side encryption (S3).
const bandwidthText = z
  .string()
  .trim()
  .transform((value, ctx) => {
    const parsed = parseBandwidthLimit(value);
    if (parsed.ok) return parsed.limit;
    ctx.addIssue({ code: 'custom', message: `expected a rate like 20MiB (both directions) or 20MiB:100MiB (upload:download), units B, KiB, MiB, GiB, KB, MB, GB, 0 for no limit: ${parsed.problem}` });
    return z.NEVER;
  });
const storageClassText = z
  .string()
  .trim()
  .toUpperCase()
  .transform((value, ctx): StorageClassName => {
    if (!isStorageClass(value)) {
      ctx.addIssue({ code: 'custom', message: `expected one of ${STORAGE_CLASSES.join(', ')}` });
      return z.NEVER;
    }
    if (ARCHIVE_CLASSES.includes(value)) {
      ctx.addIssue({
        code: 'custom',
        message: `a class readable by GET: ${value} objects need a restore request (hours) before they can be read, and memsync checks and restores snapshots by GET; use GLACIER_IR for archive pricing with immediate reads`,
      });
      return z.NEVER;
    }
    return value;
  });

const logLevelText = z.enum(['error', 'warn', 'info', 'debug'], 'expected one of error, warn, info, debug');
const logFormatText = z.enum(['json', 'pretty', 'auto'], 'expected json, pretty or auto');

/**
 * Values the examples write to be replaced ("REPLACE-with-...", "...-change-me"). Such a token
 * is public, so it protects nothing: memsync refuses it instead of listening behind it.
 */
const PLACEHOLDER_TOKEN = /^replace|(?:^|[^a-z0-9])change[-_]?me(?:[^a-z0-9]|$)/i;
const apiTokenText = z
  .string()
  .trim()
  .min(16, 'expected a token of at least 16 characters')
  .refine((v) => !PLACEHOLDER_TOKEN.test(v), 'expected a token of your own, not a placeholder from the examples: generate one, e.g. with `openssl rand -hex 32`');

/** The shape of the raw environment after _FILE secrets are resolved. */
const envSchema = z.object({
  CLOUD_SYNC_ENABLED: booleanText.default(false),
  CLOUD_SYNC_PROVIDER: providerText.default('s3'),
  // Checked by the provider's own rule (PROVIDERS), in checkCombinations.
  CLOUD_SYNC_BUCKET: z.string().trim().optional(),
  CLOUD_SYNC_ENDPOINT: urlText.optional(),
  AZURE_STORAGE_CONNECTION_STRING: z.string().trim().min(1, 'expected a connection string from the storage account (Access keys, or a SAS)').optional(),
  CLOUD_SYNC_REGION: z.string().trim().regex(/^[a-z0-9-]{2,32}$/, 'expected a region like us-east-1').default('us-east-1'),
  CLOUD_SYNC_ACCESS_KEY: z.string().trim().min(1, 'expected a non-empty access key').optional(),
  CLOUD_SYNC_SECRET_KEY: z.string().trim().min(1, 'expected a non-empty secret key').optional(),
  CLOUD_SYNC_FORCE_PATH_STYLE: booleanText.optional(),
  // S3 provider profile; unset: detected from CLOUD_SYNC_ENDPOINT's host name (remote/s3-profile.ts).
  CLOUD_SYNC_S3_PROFILE: z
    .enum(S3_PROFILE_NAMES, `expected one of ${S3_PROFILE_NAMES.join(', ')} (the S3 profiles memsync knows), or unset to detect it from CLOUD_SYNC_ENDPOINT`)
    .optional(),
  CLOUD_SYNC_SCHEDULE: cronText.default('0 2 * * *'),
  CLOUD_SYNC_PREFIX: prefixText.default('memories/'),
  CLOUD_SYNC_BACKUP_DIR: absolutePathText.default('/data/backups'),
  CLOUD_SYNC_STATE_DIR: absolutePathText.optional(),
  CLOUD_SYNC_SETTLE_MS: integerText(100, 3_600_000, 'milliseconds').default(2000),
  CLOUD_SYNC_CONCURRENCY: integerText(1, 64, 'parallel file uploads').default(4),
  CLOUD_SYNC_MULTIPART_THRESHOLD_MB: integerText(MIN_MULTIPART_THRESHOLD_MIB, 5 * 1024, 'MiB').default(16),
  CLOUD_SYNC_SERVER_SIDE_COPY: booleanText.default(true),
  CLOUD_SYNC_DELTA: booleanText.default(true),
  // S3's 5 MiB part minimum: below about three parts, a composition saves little over a plain upload.
  CLOUD_SYNC_DELTA_MIN_MB: integerText(16, 1024 * 1024, 'MiB').default(16),
  CLOUD_SYNC_SHUTDOWN_TIMEOUT_MS: integerText(0, 600_000, 'milliseconds').default(5000),
  // Above any upload's duration: another memsync (or the CLI) may be sending parts of a younger one.
  CLOUD_SYNC_STALE_MULTIPART_MINUTES: integerText(1, 10_080, 'minutes').default(60),
  CLOUD_SYNC_FILE_DEADLINE_MS: integerText(1_000, 3_600_000, 'milliseconds').default(60_000),
  CLOUD_SYNC_CLAIM_LEASE_S: integerText(120, 86_400, 'seconds').default(600),
  CLOUD_SYNC_REFUSE_HARDLINKS: booleanText.default(false),
  CLOUD_SYNC_HOST: z.string().trim().min(1, 'expected a host name or IP address').default('127.0.0.1'),
  CLOUD_SYNC_PORT: integerText(0, 65_535, 'port').default(8901),
  CLOUD_SYNC_API_TOKEN: apiTokenText.optional(),
  CLOUD_SYNC_METRICS_OPEN: booleanText.default(false),
  MEMORY_SERVICE_URL: urlText.optional(),
  MEMORY_SERVICE_API_KEY: z.string().trim().min(1, 'expected a non-empty API key').optional(),
  LOG_LEVEL: logLevelText.default('info'),
  LOG_FORMAT: logFormatText.default('auto'),
  CLOUD_SYNC_RETENTION: retentionText.optional(),
  CLOUD_SYNC_RETENTION_DRY_RUN: booleanText.default(false),
  // Object Lock: both or neither (checkObjectLock).
  CLOUD_SYNC_OBJECT_LOCK_MODE: z.enum(['governance', 'compliance'], 'expected governance or compliance').optional(),
  CLOUD_SYNC_OBJECT_LOCK_DAYS: integerText(1, 36_500, 'days').optional(),
  CLOUD_SYNC_NOTIFY_URL: endpointUrlText.optional(),
  CLOUD_SYNC_HEARTBEAT_URL: endpointUrlText.optional(),
  CLOUD_SYNC_ENCRYPTION_KEY: encryptionKeyText.optional(),
  CLOUD_SYNC_ENCRYPTION_PASSPHRASE: z.string().min(MIN_PASSPHRASE_CHARS, `expected a passphrase of at least ${MIN_PASSPHRASE_CHARS} characters`).optional(),
  // Bandwidth limit, storage class and server-side encryption (S3).
  CLOUD_SYNC_BANDWIDTH_LIMIT: bandwidthText.optional(),
  CLOUD_SYNC_STORAGE_CLASS: storageClassText.optional(),
  CLOUD_SYNC_SSE: z.enum(SSE_MODES, 'expected AES256 (keys managed by S3) or aws:kms (a KMS key), or unset for the bucket\'s default').optional(),
  CLOUD_SYNC_SSE_KMS_KEY_ID: z.string().trim().min(1, 'expected a KMS key id, alias or ARN').optional(),
});

type EnvVariable = keyof z.input<typeof envSchema>;
export const KNOWN_VARIABLES: readonly string[] = [
  ...Object.keys(envSchema.shape),
  ...SECRET_VARIABLES.map((name) => `${name}_FILE`),
  'NODE_ENV',
];

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);

function isSecret(variable: string): boolean {
  return (SECRET_VARIABLES as readonly string[]).includes(variable.replace(/_FILE$/, ''));
}

/** How a value is shown in a message: secrets never, long values cut. */
export function displayValue(variable: string, value: string | undefined): string {
  if (value === undefined) return '(unset)';
  if (isSecret(variable) && !variable.endsWith('_FILE')) return value.length === 0 ? '(empty)' : `(secret, ${value.length} characters)`;
  const shown = value.length > 80 ? `${value.slice(0, 77)}...` : value;
  return JSON.stringify(shown);
}

interface Problem {
  variable: string;
  value: string | undefined;
  expected: string;
  /** Set when the value was read from NAME_FILE: the message names the variable the operator set. */
  fromFile?: string;
}

function formatProblems(problems: readonly Problem[]): string {
  const lines = problems.map((p) => {
    const source = p.fromFile === undefined ? '' : ` (read from ${p.variable}_FILE=${JSON.stringify(p.fromFile)})`;
    return `  ${p.variable}=${displayValue(p.variable, p.value)}${source}: ${p.expected}`;
  });
  return `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${lines.join('\n')}`;
}

/** Resolves NAME_FILE (Docker/Kubernetes secrets) into NAME, reporting unreadable files. */
function resolveSecretFiles(env: Env, problems: Problem[]): Record<string, string | undefined> {
  const resolved: Record<string, string | undefined> = { ...env };
  for (const name of SECRET_VARIABLES) {
    const fileVariable = `${name}_FILE`;
    const file = env[fileVariable];
    if (file === undefined || file === '') continue;
    if (env[name] !== undefined && env[name] !== '') {
      problems.push({ variable: fileVariable, value: file, expected: `set either ${name} or ${fileVariable}, not both` });
      continue;
    }
    try {
      // Secret files conventionally end with a newline that is not part of the secret.
      resolved[name] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      problems.push({ variable: fileVariable, value: file, expected: `a readable file holding the secret (${code})` });
    }
  }
  // An empty variable means "not set" for optional values, as in most container tooling.
  for (const [key, value] of Object.entries(resolved)) {
    if (value !== undefined && value.trim() === '' && key !== 'CLOUD_SYNC_PREFIX') resolved[key] = undefined;
  }
  return resolved;
}

function isInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

type EnvValues = z.output<typeof envSchema>;

/**
 * Cross-variable rules that a per-variable schema cannot express. Runs on whatever parsed,
 * so a bad value elsewhere does not hide these problems. Returns the state directory.
 */
function checkCombinations(values: Partial<EnvValues>, raw: Record<string, string | undefined>, problems: Problem[]): string {
  const backupDir = values.CLOUD_SYNC_BACKUP_DIR;
  const stateDir = values.CLOUD_SYNC_STATE_DIR ?? (backupDir === undefined ? '' : path.join(path.dirname(backupDir), '.memsync-state'));
  if (backupDir !== undefined && stateDir !== '' && isInside(stateDir, backupDir)) {
    const variable = values.CLOUD_SYNC_STATE_DIR === undefined ? 'CLOUD_SYNC_BACKUP_DIR' : 'CLOUD_SYNC_STATE_DIR';
    problems.push({ variable, value: raw[variable], expected: 'a state directory outside the backup directory (set CLOUD_SYNC_STATE_DIR elsewhere)' });
  }
  // An unknown provider is reported already; its bucket cannot be judged.
  const provider = values.CLOUD_SYNC_PROVIDER;
  if (provider !== undefined) {
    const bucket = checkBucket(provider, raw, values.CLOUD_SYNC_ENABLED === true, problems);
    if (provider === 'fs' && bucket !== undefined) checkFsDirectory(bucket, values.CLOUD_SYNC_PREFIX ?? '', backupDir, values.CLOUD_SYNC_ENABLED === true, problems);
    if (provider === 'azure' && bucket !== undefined && values.CLOUD_SYNC_ENABLED === true) checkAzure(bucket, values, raw, problems);
  }
  const hasAccess = raw.CLOUD_SYNC_ACCESS_KEY !== undefined;
  const hasSecret = raw.CLOUD_SYNC_SECRET_KEY !== undefined;
  if (hasAccess !== hasSecret) {
    const [missing, present] = hasAccess ? ['CLOUD_SYNC_SECRET_KEY', 'CLOUD_SYNC_ACCESS_KEY'] : ['CLOUD_SYNC_ACCESS_KEY', 'CLOUD_SYNC_SECRET_KEY'];
    problems.push({ variable: missing, value: undefined, expected: `set together with ${present} (or set neither to use the AWS default credential chain)` });
  }
  if (raw.CLOUD_SYNC_ENCRYPTION_KEY !== undefined && raw.CLOUD_SYNC_ENCRYPTION_PASSPHRASE !== undefined) {
    problems.push({ variable: 'CLOUD_SYNC_ENCRYPTION_PASSPHRASE', value: raw.CLOUD_SYNC_ENCRYPTION_PASSPHRASE, expected: 'set either CLOUD_SYNC_ENCRYPTION_KEY or CLOUD_SYNC_ENCRYPTION_PASSPHRASE, not both' });
  }
  if (values.CLOUD_SYNC_HOST !== undefined && !LOOPBACK_HOSTS.has(values.CLOUD_SYNC_HOST) && raw.CLOUD_SYNC_API_TOKEN === undefined) {
    problems.push({
      variable: 'CLOUD_SYNC_HOST',
      value: raw.CLOUD_SYNC_HOST,
      expected: 'a loopback address, or set CLOUD_SYNC_API_TOKEN: the API must not listen on a network without a token',
    });
  }
  // Bandwidth limit, storage class and server-side encryption (S3).
  if (raw.CLOUD_SYNC_SSE_KMS_KEY_ID !== undefined && values.CLOUD_SYNC_SSE !== 'aws:kms') {
    problems.push({ variable: 'CLOUD_SYNC_SSE_KMS_KEY_ID', value: raw.CLOUD_SYNC_SSE_KMS_KEY_ID, expected: 'set only with CLOUD_SYNC_SSE=aws:kms (the key encrypts nothing otherwise)' });
  }
  return stateDir;
}

/**
 * Reads and validates the whole configuration. Throws one AppError('config') listing every
 * problem; never returns a half-valid config.
 */
/**
 * CLOUD_SYNC_* variables memsync does not know, each with the known name nearest to it: a
 * misspelt CLOUD_SYNC_ENABLE=true would otherwise be ignored in silence. Pure; the caller warns.
 */
export function unknownVariables(env: Env): { variable: string; nearest: string | undefined }[] {
  const known = KNOWN_VARIABLES.filter((name) => name.startsWith('CLOUD_SYNC_'));
  return Object.keys(env)
    .filter((name) => name.startsWith('CLOUD_SYNC_') && !known.includes(name))
    .sort()
    .map((variable) => {
      let nearest: string | undefined;
      let best = Number.POSITIVE_INFINITY;
      for (const candidate of known) {
        const distance = editDistance(variable, candidate);
        if (distance < best) [best, nearest] = [distance, candidate];
      }
      // Far from every known name: no suggestion is better than a wrong one.
      return { variable, nearest: best <= Math.max(3, Math.floor(variable.length / 4)) ? nearest : undefined };
    });
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

export function loadConfig(env: Env = process.env): Config {
  const problems: Problem[] = [];
  const raw = resolveSecretFiles(env, problems);
  // Each variable is parsed on its own so that one bad value does not hide the others' problems.
  const parsedValues: Record<string, unknown> = {};
  for (const [variable, schema] of Object.entries(envSchema.shape)) {
    const parsed = (schema as z.ZodType).safeParse(raw[variable]);
    const file = env[`${variable}_FILE`];
    const fromFile = (SECRET_VARIABLES as readonly string[]).includes(variable) && file !== undefined && file !== '' ? { fromFile: file } : {};
    if (parsed.success) parsedValues[variable] = parsed.data;
    else for (const issue of parsed.error.issues) problems.push({ variable, value: raw[variable], expected: issue.message, ...fromFile });
  }
  const stateDir = checkCombinations(parsedValues as Partial<EnvValues>, raw, problems);
  checkObjectLock(parsedValues as Partial<EnvValues>, raw, problems);
  if (problems.length > 0) throw new AppError('config', formatProblems(problems));
  const values = envSchema.parse(raw);

  const credentials =
    values.CLOUD_SYNC_ACCESS_KEY !== undefined && values.CLOUD_SYNC_SECRET_KEY !== undefined
      ? { accessKeyId: values.CLOUD_SYNC_ACCESS_KEY, secretAccessKey: values.CLOUD_SYNC_SECRET_KEY }
      : undefined;
  const format: LogFormat =
    values.LOG_FORMAT === 'auto' ? (env.NODE_ENV === 'production' || !process.stdout.isTTY ? 'json' : 'pretty') : values.LOG_FORMAT;

  const storage = storageTarget(values);
  const s3Profile = resolveS3Profile(values.CLOUD_SYNC_S3_PROFILE, values.CLOUD_SYNC_ENDPOINT);

  return {
    enabled: values.CLOUD_SYNC_ENABLED,
    storage,
    s3: {
      bucket: storage.provider === 's3' ? (values.CLOUD_SYNC_BUCKET ?? '') : '',
      endpoint: values.CLOUD_SYNC_ENDPOINT,
      region: values.CLOUD_SYNC_REGION,
      credentials,
      prefix: values.CLOUD_SYNC_PREFIX,
      // Bandwidth limit, storage class and server-side encryption (S3).
      bandwidthLimit: values.CLOUD_SYNC_BANDWIDTH_LIMIT ?? { upBytesPerSecond: undefined, downBytesPerSecond: undefined },
      atRest: {
        storageClass: values.CLOUD_SYNC_STORAGE_CLASS,
        sse:
          values.CLOUD_SYNC_SSE === undefined
            ? undefined
            : values.CLOUD_SYNC_SSE === 'aws:kms'
              ? { mode: 'aws:kms', kmsKeyId: values.CLOUD_SYNC_SSE_KMS_KEY_ID }
              : { mode: 'AES256' },
      },
      // The profile's addressing (AWS: virtual-hosted; others: path style) unless set explicitly.
      forcePathStyle: values.CLOUD_SYNC_FORCE_PATH_STYLE ?? s3Profile.pathStyle,
      profile: s3Profile,
      objectLock: objectLockSettings(values),
    },
    schedule: values.CLOUD_SYNC_SCHEDULE,
    backupDir: values.CLOUD_SYNC_BACKUP_DIR,
    stateDir,
    settleMs: values.CLOUD_SYNC_SETTLE_MS,
    concurrency: values.CLOUD_SYNC_CONCURRENCY,
    multipartThresholdBytes: values.CLOUD_SYNC_MULTIPART_THRESHOLD_MB * MIB,
    serverSideCopy: values.CLOUD_SYNC_SERVER_SIDE_COPY,
    shutdownTimeoutMs: values.CLOUD_SYNC_SHUTDOWN_TIMEOUT_MS,
    staleMultipartMs: values.CLOUD_SYNC_STALE_MULTIPART_MINUTES * 60_000,
    localFileDeadlineMs: values.CLOUD_SYNC_FILE_DEADLINE_MS,
    claimLeaseMs: values.CLOUD_SYNC_CLAIM_LEASE_S * 1000,
    refuseHardlinks: values.CLOUD_SYNC_REFUSE_HARDLINKS,
    // Composition copies ranges server-side, so it needs copies on (and plain objects: encryption off).
    deltaMinFileBytes:
      values.CLOUD_SYNC_DELTA && values.CLOUD_SYNC_SERVER_SIDE_COPY && values.CLOUD_SYNC_ENCRYPTION_KEY === undefined && values.CLOUD_SYNC_ENCRYPTION_PASSPHRASE === undefined
        // S3 services whose profile forbids composed uploads (no ranged copies, or equal part sizes only).
        && (storage.provider !== 's3' || allowsComposedUploads(s3Profile))
        ? values.CLOUD_SYNC_DELTA_MIN_MB * MIB
        : undefined,
    // A restore reads nothing but the snapshot's own objects and the local disk: no copies needed.
    localBaseMinFileBytes: values.CLOUD_SYNC_DELTA ? values.CLOUD_SYNC_DELTA_MIN_MB * MIB : undefined,
    http: {
      host: values.CLOUD_SYNC_HOST,
      port: values.CLOUD_SYNC_PORT,
      apiToken: values.CLOUD_SYNC_API_TOKEN,
      metricsOpen: values.CLOUD_SYNC_METRICS_OPEN,
    },
    memoryService:
      values.MEMORY_SERVICE_URL === undefined ? undefined : { url: values.MEMORY_SERVICE_URL.replace(/\/+$/, ''), apiKey: values.MEMORY_SERVICE_API_KEY },
    log: { level: values.LOG_LEVEL, format },
    retention: values.CLOUD_SYNC_RETENTION === undefined ? undefined : { policy: values.CLOUD_SYNC_RETENTION, dryRun: values.CLOUD_SYNC_RETENTION_DRY_RUN },
    alerts: { notifyUrl: values.CLOUD_SYNC_NOTIFY_URL, heartbeatUrl: values.CLOUD_SYNC_HEARTBEAT_URL },
    encryption:
      values.CLOUD_SYNC_ENCRYPTION_KEY !== undefined
        ? { kind: 'key', key: values.CLOUD_SYNC_ENCRYPTION_KEY }
        : values.CLOUD_SYNC_ENCRYPTION_PASSPHRASE !== undefined
          ? { kind: 'passphrase', passphrase: values.CLOUD_SYNC_ENCRYPTION_PASSPHRASE }
          : undefined,
  };
}

/** Object Lock needs both its variables, and an S3 bucket (other providers have no such lock). */
function checkObjectLock(values: Partial<EnvValues>, raw: Record<string, string | undefined>, problems: Problem[]): void {
  const mode = raw.CLOUD_SYNC_OBJECT_LOCK_MODE;
  const days = raw.CLOUD_SYNC_OBJECT_LOCK_DAYS;
  if (mode === undefined && days === undefined) return;
  if (mode === undefined) problems.push({ variable: 'CLOUD_SYNC_OBJECT_LOCK_MODE', value: mode, expected: 'governance or compliance (required with CLOUD_SYNC_OBJECT_LOCK_DAYS)' });
  if (days === undefined) problems.push({ variable: 'CLOUD_SYNC_OBJECT_LOCK_DAYS', value: days, expected: 'a whole number of days between 1 and 36500 (required with CLOUD_SYNC_OBJECT_LOCK_MODE)' });
  if (values.CLOUD_SYNC_PROVIDER !== undefined && values.CLOUD_SYNC_PROVIDER !== 's3') {
    problems.push({ variable: 'CLOUD_SYNC_OBJECT_LOCK_MODE', value: mode, expected: `unset with CLOUD_SYNC_PROVIDER=${values.CLOUD_SYNC_PROVIDER}: Object Lock is an S3 bucket feature` });
  }
}

function objectLockSettings(values: EnvValues): ObjectLockSettings | undefined {
  const mode = values.CLOUD_SYNC_OBJECT_LOCK_MODE;
  const days = values.CLOUD_SYNC_OBJECT_LOCK_DAYS;
  if (mode === undefined || days === undefined) return undefined;
  return { mode: mode === 'compliance' ? 'COMPLIANCE' : 'GOVERNANCE', days };
}

function storageTarget(values: EnvValues): StorageTarget {
  switch (values.CLOUD_SYNC_PROVIDER) {
    case 's3':
      return { provider: 's3' };
    case 'fs':
      return { provider: 'fs', directory: path.resolve(values.CLOUD_SYNC_BUCKET ?? '/'), prefix: values.CLOUD_SYNC_PREFIX };
    case 'azure': {
      // Checked in checkAzure when enabled; a disabled agent never builds the store.
      const credentials = azureCredentials(values) ?? { kind: 'shared-key', accountName: '', accountKey: '' };
      const endpoint = credentials.kind === 'connection-string' ? undefined : values.CLOUD_SYNC_ENDPOINT;
      return { provider: 'azure', container: values.CLOUD_SYNC_BUCKET ?? '', prefix: values.CLOUD_SYNC_PREFIX, endpoint, credentials };
    }
  }
}

/** The configuration as it may be logged or shown: secrets replaced by a marker. */
export function redactedConfig(config: Config): Record<string, unknown> {
  const target = config.storage;
  const storage =
    target.provider === 'fs'
      ? { provider: 'fs', directory: target.directory, prefix: target.prefix }
      : target.provider === 'azure'
        ? {
            provider: 'azure',
            container: target.container,
            endpoint: target.endpoint ?? '(from the connection string)',
            prefix: target.prefix,
            credentials: target.credentials.kind === 'connection-string' ? 'connection string (redacted)' : 'account key (redacted)',
          }
        : {
          provider: config.storage.provider,
          bucket: config.s3.bucket,
          endpoint: config.s3.endpoint ?? '(AWS)',
          region: config.s3.region,
          prefix: config.s3.prefix,
          credentials: config.s3.credentials === undefined ? 'AWS default chain' : 'static (redacted)',
          forcePathStyle: config.s3.forcePathStyle,
          // Bandwidth limit, storage class and server-side encryption (S3).
          bandwidthLimit: `up ${formatRate(config.s3.bandwidthLimit.upBytesPerSecond)}, down ${formatRate(config.s3.bandwidthLimit.downBytesPerSecond)}`,
          storageClass: config.s3.atRest.storageClass ?? '(bucket default)',
          serverSideEncryption: config.s3.atRest.sse === undefined ? '(bucket default)' : config.s3.atRest.sse.mode === 'aws:kms' ? `aws:kms (${config.s3.atRest.sse.kmsKeyId ?? 'bucket default key'})` : 'AES256',
          objectLock: config.s3.objectLock === undefined ? '(none of memsync\'s own)' : `${config.s3.objectLock.mode.toLowerCase()}, ${config.s3.objectLock.days} days`,
          s3Profile: describeS3Profile(config.s3.profile),
        };
  return {
    enabled: config.enabled,
    ...storage,
    schedule: config.schedule,
    backupDir: config.backupDir,
    stateDir: config.stateDir,
    settleMs: config.settleMs,
    concurrency: config.concurrency,
    multipartThresholdBytes: config.multipartThresholdBytes,
    serverSideCopy: config.serverSideCopy,
    http: `${config.http.host}:${config.http.port}${config.http.apiToken === undefined ? '' : ' (token required)'}`,
    memoryService: config.memoryService?.url ?? '(not configured)',
    retention: config.retention === undefined ? '(off)' : `${formatPolicy(config.retention.policy)}${config.retention.dryRun ? ' (dry run)' : ''}`,
    notify: config.alerts.notifyUrl === undefined ? '(off)' : 'webhook (redacted)',
    heartbeat: config.alerts.heartbeatUrl === undefined ? '(off)' : 'configured (redacted)',
    encryption: config.encryption === undefined ? '(off)' : `client-side, ${config.encryption.kind === 'key' ? 'key' : 'passphrase'} (redacted)`,
  };
}
