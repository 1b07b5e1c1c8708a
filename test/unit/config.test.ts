import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, redactedConfig, unknownVariables } from '../../src/config.js';
import { tempDir } from '../helpers/tmp.js';
import { configProblems } from '../helpers/config-problems.js';

const enabled = { CLOUD_SYNC_ENABLED: 'true', CLOUD_SYNC_BUCKET: 'my-memories' };

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig(enabled);
    expect(config).toMatchObject({
      enabled: true,
      schedule: '0 2 * * *',
      backupDir: '/data/backups',
      stateDir: '/data/.memsync-state',
      settleMs: 2000,
      concurrency: 4,
      s3: { bucket: 'my-memories', prefix: 'memories/', region: 'us-east-1', endpoint: undefined, credentials: undefined, forcePathStyle: false },
      http: { host: '127.0.0.1', port: 8901 },
    });
  });

  it('is disabled unless CLOUD_SYNC_ENABLED is true, and then needs no bucket', () => {
    expect(loadConfig({}).enabled).toBe(false);
    expect(loadConfig({ CLOUD_SYNC_ENABLED: 'false' }).enabled).toBe(false);
    expect(configProblems({ CLOUD_SYNC_ENABLED: 'true' })).toContain('CLOUD_SYNC_BUCKET=(unset): a bucket name (required when CLOUD_SYNC_ENABLED=true)');
  });

  it('reports every problem at once, one line each, naming variable, value and expectation', () => {
    const message = configProblems({
      ...enabled,
      CLOUD_SYNC_SETTLE_MS: 'soon',
      CLOUD_SYNC_CONCURRENCY: '0',
      CLOUD_SYNC_SCHEDULE: 'every day',
      CLOUD_SYNC_PROVIDER: 'gcs',
      CLOUD_SYNC_ENDPOINT: 'minio:9000',
    });
    expect(message).toMatch(/^invalid configuration \(5 problems\)/);
    expect(message).toContain('CLOUD_SYNC_SETTLE_MS="soon": expected a whole number of milliseconds between 100 and 3600000');
    expect(message).toContain('CLOUD_SYNC_CONCURRENCY="0": expected a whole number of parallel file uploads between 1 and 64');
    expect(message).toContain('CLOUD_SYNC_SCHEDULE="every day": expected a cron expression');
    expect(message).toContain('CLOUD_SYNC_PROVIDER="gcs": expected "s3"');
    expect(message).toContain('CLOUD_SYNC_ENDPOINT="minio:9000": expected an http:// or https:// URL');
  });

  it('never shows a secret value, even when it is the invalid one', () => {
    const secret = 'short-token';
    const message = configProblems({ ...enabled, CLOUD_SYNC_API_TOKEN: secret, CLOUD_SYNC_ACCESS_KEY: 'AKIAEXAMPLE' });
    expect(message).toContain('CLOUD_SYNC_API_TOKEN=(secret, 11 characters): expected a token of at least 16 characters');
    expect(message).toContain('CLOUD_SYNC_SECRET_KEY=(unset): set together with CLOUD_SYNC_ACCESS_KEY');
    expect(message).not.toContain(secret);
    expect(message).not.toContain('AKIAEXAMPLE');
  });

  it('reads secrets from _FILE variables and rejects setting both', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'secret');
    await writeFile(file, 'wJalrXUtnFEMI/K7MDENG\n');
    const config = loadConfig({ ...enabled, CLOUD_SYNC_ACCESS_KEY: 'AKIA1', CLOUD_SYNC_SECRET_KEY_FILE: file });
    expect(config.s3.credentials).toEqual({ accessKeyId: 'AKIA1', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG' });
    expect(JSON.stringify(redactedConfig(config))).not.toContain('wJalr');
    expect(configProblems({ ...enabled, CLOUD_SYNC_SECRET_KEY: 'x', CLOUD_SYNC_SECRET_KEY_FILE: file })).toContain('set either CLOUD_SYNC_SECRET_KEY or CLOUD_SYNC_SECRET_KEY_FILE, not both');
    expect(configProblems({ ...enabled, CLOUD_SYNC_SECRET_KEY_FILE: path.join(dir, 'missing') })).toContain('a readable file holding the secret (ENOENT)');
    // A bad value read from a file names the variable the operator actually set.
    const badUrl = path.join(dir, 'notify-url');
    await writeFile(badUrl, 'not a url\n');
    expect(configProblems({ ...enabled, CLOUD_SYNC_NOTIFY_URL_FILE: badUrl })).toContain(`(read from CLOUD_SYNC_NOTIFY_URL_FILE="${badUrl}"): expected an http:// or https:// URL`);
  });

  it('refuses a cron expression that never fires', () => {
    expect(configProblems({ ...enabled, CLOUD_SYNC_SCHEDULE: '0 0 31 2 *' })).toContain('CLOUD_SYNC_SCHEDULE="0 0 31 2 *": expected a cron expression that fires');
  });

  it('takes the stale multipart threshold in minutes, 60 by default', () => {
    expect(loadConfig(enabled).staleMultipartMs).toBe(3_600_000);
    expect(loadConfig({ ...enabled, CLOUD_SYNC_STALE_MULTIPART_MINUTES: '2' }).staleMultipartMs).toBe(120_000);
    expect(configProblems({ ...enabled, CLOUD_SYNC_STALE_MULTIPART_MINUTES: '0' })).toContain('CLOUD_SYNC_STALE_MULTIPART_MINUTES="0": expected a whole number of minutes between 1 and 10080');
  });

  it('keeps the state directory out of the backup directory', () => {
    expect(configProblems({ ...enabled, CLOUD_SYNC_BACKUP_DIR: '/srv/b', CLOUD_SYNC_STATE_DIR: '/srv/b/state' })).toContain(
      'CLOUD_SYNC_STATE_DIR="/srv/b/state": a state directory outside the backup directory',
    );
    expect(loadConfig({ ...enabled, CLOUD_SYNC_BACKUP_DIR: '/srv/b', CLOUD_SYNC_STATE_DIR: '/srv/state' }).stateDir).toBe('/srv/state');
  });

  it('normalises the prefix and rejects unsafe ones', () => {
    expect(loadConfig({ ...enabled, CLOUD_SYNC_PREFIX: 'team/a' }).s3.prefix).toBe('team/a/');
    expect(loadConfig({ ...enabled, CLOUD_SYNC_PREFIX: '' }).s3.prefix).toBe('');
    expect(configProblems({ ...enabled, CLOUD_SYNC_PREFIX: '/abs/' })).toContain('without a leading "/"');
    expect(configProblems({ ...enabled, CLOUD_SYNC_PREFIX: 'a/../b/' })).toContain('without "." or ".." segments');
  });

  it('uses path-style addressing for custom endpoints unless told otherwise', () => {
    expect(loadConfig({ ...enabled, CLOUD_SYNC_ENDPOINT: 'http://minio:9000' }).s3.forcePathStyle).toBe(true);
    expect(loadConfig({ ...enabled, CLOUD_SYNC_ENDPOINT: 'https://s3.example', CLOUD_SYNC_FORCE_PATH_STYLE: 'false' }).s3.forcePathStyle).toBe(false);
  });

  it('refuses to listen beyond loopback without an API token', () => {
    expect(configProblems({ ...enabled, CLOUD_SYNC_HOST: '0.0.0.0' })).toContain('CLOUD_SYNC_HOST="0.0.0.0": a loopback address, or set CLOUD_SYNC_API_TOKEN');
    expect(loadConfig({ ...enabled, CLOUD_SYNC_HOST: '0.0.0.0', CLOUD_SYNC_API_TOKEN: 'a'.repeat(32) }).http.host).toBe('0.0.0.0');
  });

  it('rejects bucket names S3 would refuse', () => {
    expect(configProblems({ CLOUD_SYNC_ENABLED: 'true', CLOUD_SYNC_BUCKET: 'My_Bucket' })).toContain('CLOUD_SYNC_BUCKET="My_Bucket": expected an S3 bucket name');
  });
});

describe('unknownVariables', () => {
  it('names every CLOUD_SYNC_ variable memsync does not read, with the nearest known name', () => {
    expect(unknownVariables({ CLOUD_SYNC_ENABLE: 'true', CLOUD_SYNC_BUCKT: 'b', CLOUD_SYNC_BUCKET: 'b', CLOUD_SYNC_COMPLETELY_DIFFERENT_THING: 'x', HOME: '/root' })).toEqual([
      { variable: 'CLOUD_SYNC_BUCKT', nearest: 'CLOUD_SYNC_BUCKET' },
      { variable: 'CLOUD_SYNC_COMPLETELY_DIFFERENT_THING', nearest: undefined },
      { variable: 'CLOUD_SYNC_ENABLE', nearest: 'CLOUD_SYNC_ENABLED' },
    ]);
  });

  it('knows every variable of the schema, including the _FILE forms of secrets', () => {
    expect(unknownVariables({ CLOUD_SYNC_ENABLED: 'true', CLOUD_SYNC_API_TOKEN_FILE: '/run/secrets/t', CLOUD_SYNC_DELTA_MIN_MB: '16' })).toEqual([]);
  });
});

describe('switches', () => {
  it.each([
    ['on', true],
    ['OFF', false],
    ['Yes', true],
    ['no', false],
    ['TRUE', true],
    ['0', false],
  ])('reads %s as %s', (value, expected) => {
    expect(loadConfig({ CLOUD_SYNC_ENABLED: 'false', CLOUD_SYNC_METRICS_OPEN: value }).http.metricsOpen).toBe(expected);
  });
});
