import { describe, expect, it } from 'vitest';
import { azureOptionsProblems } from '../../src/remote/azure-options.js';
import { AzureRemoteStore } from '../../src/remote/azure-store.js';
import { AppError } from '../../src/errors.js';

const KEY = Buffer.alloc(64, 7).toString('base64');
const good = { container: 'memsync-backups', endpoint: 'https://acct.blob.core.windows.net', credentials: { kind: 'shared-key' as const, accountName: 'acct', accountKey: KEY } };

describe('Azure store options', () => {
  it.each([
    ['an account key that is not base64', { ...good, credentials: { ...good.credentials, accountKey: 'not-base64!' } }, 'CLOUD_SYNC_SECRET_KEY is not an Azure account key'],
    ['an account name that no account has', { ...good, credentials: { ...good.credentials, accountName: 'My_Account' } }, 'CLOUD_SYNC_ACCESS_KEY must be the storage account name'],
    ['a container name Azure refuses', { ...good, container: 'Backups_2024' }, 'CLOUD_SYNC_BUCKET "Backups_2024" is not an Azure container name'],
    ['no endpoint with an account key', { ...good, endpoint: undefined }, 'CLOUD_SYNC_ENDPOINT must be the blob service URL'],
    ['a connection string without a key or SAS', { ...good, endpoint: undefined, credentials: { kind: 'connection-string' as const, connectionString: 'AccountName=acct;EndpointSuffix=core.windows.net' } }, 'AZURE_STORAGE_CONNECTION_STRING has neither AccountKey= nor SharedAccessSignature='],
    ['a connection string and an endpoint', { ...good, credentials: { kind: 'connection-string' as const, connectionString: `AccountName=acct;AccountKey=${KEY}` } }, 'CLOUD_SYNC_ENDPOINT must not be set with AZURE_STORAGE_CONNECTION_STRING'],
  ])('%s is named with its variable', (_label, options, expected) => {
    expect(azureOptionsProblems(options).join('; ')).toContain(expected);
  });

  it('usable options have no problem', () => {
    expect(azureOptionsProblems(good)).toEqual([]);
  });

  it('the store refuses unusable options at construction as a config error, before any request', () => {
    let error: unknown;
    try {
      new AzureRemoteStore({ ...good, prefix: '', partsInFlight: 1, credentials: { ...good.credentials, accountKey: 'not-base64!' } });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).kind).toBe('config');
    expect((error as AppError).message).toContain('CLOUD_SYNC_SECRET_KEY');
  });
});
