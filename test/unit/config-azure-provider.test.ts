// CLOUD_SYNC_PROVIDER=azure: which variables it reads, and a clear error naming the one to fix.
import { describe, expect, it } from 'vitest';
import { loadConfig, redactedConfig } from '../../src/config.js';
import { AzureRemoteStore } from '../../src/remote/azure-store.js';
import { createRemoteStore } from '../../src/remote/store-factory.js';
import { configProblems } from '../helpers/config-problems.js';

const ACCOUNT_KEY = Buffer.alloc(64, 7).toString('base64');
const BASE = { CLOUD_SYNC_ENABLED: 'true', CLOUD_SYNC_PROVIDER: 'azure', CLOUD_SYNC_BUCKET: 'memsync-backups', CLOUD_SYNC_BACKUP_DIR: '/tmp/memsync-azure-config/backups' };
const SHARED_KEY = { ...BASE, CLOUD_SYNC_ENDPOINT: 'https://account1.blob.core.windows.net', CLOUD_SYNC_ACCESS_KEY: 'account1', CLOUD_SYNC_SECRET_KEY: ACCOUNT_KEY };

describe('CLOUD_SYNC_PROVIDER=azure', () => {
  it('reads the container, the blob service URL, the account name and key; builds the Azure store', async () => {
    const config = loadConfig({ ...SHARED_KEY, CLOUD_SYNC_PREFIX: 'team' });
    expect(config.storage).toEqual({
      provider: 'azure',
      container: 'memsync-backups',
      prefix: 'team/',
      endpoint: 'https://account1.blob.core.windows.net',
      credentials: { kind: 'shared-key', accountName: 'account1', accountKey: ACCOUNT_KEY },
    });
    expect(await createRemoteStore(config)).toBeInstanceOf(AzureRemoteStore);
    const shown = JSON.stringify(redactedConfig(config));
    expect(shown).toContain('"provider":"azure"');
    expect(shown).not.toContain(ACCOUNT_KEY);
  });

  it('takes a connection string instead, never shown, and then ignores the endpoint variable', () => {
    const connectionString = `DefaultEndpointsProtocol=https;AccountName=account1;AccountKey=${ACCOUNT_KEY};EndpointSuffix=core.windows.net`;
    const config = loadConfig({ ...BASE, AZURE_STORAGE_CONNECTION_STRING: connectionString });
    expect(config.storage).toMatchObject({ provider: 'azure', endpoint: undefined, credentials: { kind: 'connection-string', connectionString } });
    expect(JSON.stringify(redactedConfig(config))).not.toContain(ACCOUNT_KEY);
  });

  it('an account key that is not base64 is refused, naming CLOUD_SYNC_SECRET_KEY and hiding its value', () => {
    const message = configProblems({ ...SHARED_KEY, CLOUD_SYNC_SECRET_KEY: 'not-a-base64-key!' });
    expect(message).toContain('CLOUD_SYNC_SECRET_KEY=(secret, 17 characters): is not an Azure account key');
    expect(message).not.toContain('not-a-base64-key!');
  });

  it('no credentials at all: says which variables to set', () => {
    expect(configProblems({ ...BASE, CLOUD_SYNC_ENDPOINT: 'https://account1.blob.core.windows.net' })).toContain(
      'CLOUD_SYNC_ACCESS_KEY=(unset): the storage account name, with its key in CLOUD_SYNC_SECRET_KEY; or set AZURE_STORAGE_CONNECTION_STRING instead',
    );
  });

  it('a container name Azure cannot have is refused, naming CLOUD_SYNC_BUCKET', () => {
    expect(configProblems({ ...SHARED_KEY, CLOUD_SYNC_BUCKET: 'My_Bucket' })).toContain('CLOUD_SYNC_BUCKET="My_Bucket": "My_Bucket" is not an Azure container name');
  });

  it('an account key without the blob service URL is refused, naming CLOUD_SYNC_ENDPOINT', () => {
    const { CLOUD_SYNC_ENDPOINT: _unused, ...withoutEndpoint } = SHARED_KEY;
    expect(configProblems(withoutEndpoint)).toContain('CLOUD_SYNC_ENDPOINT=(unset): must be the blob service URL');
  });
});
