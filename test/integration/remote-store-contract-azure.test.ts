// The RemoteStore contract, run against AzureRemoteStore on Azurite (the Azure Blob Storage
// emulator, started here by the test harness): what memsync assumes of every store must hold of
// the Azure one too.
import { afterAll, beforeAll } from 'vitest';
import { AzureRemoteStore } from '../../src/remote/azure-store.js';
import { startAzurite, type AzuriteServer } from '../helpers/azurite-fixture.js';
import { remoteStoreContract } from './remote-store-contract.js';

const PREFIX = 'contract/';
let azurite: AzuriteServer | undefined;

beforeAll(async () => {
  azurite = await startAzurite();
});
afterAll(async () => {
  await azurite?.stop();
});

function running(): AzuriteServer {
  if (azurite === undefined) throw new Error('Azurite did not start (see the beforeAll failure)');
  return azurite;
}

remoteStoreContract(
  'AzureRemoteStore on Azurite',
  async () => {
    const server = running();
    const container = await server.createContainer('contract');
    const store = new AzureRemoteStore({
      container,
      prefix: PREFIX,
      endpoint: server.endpoint,
      credentials: { kind: 'shared-key', accountName: server.accountName, accountKey: server.accountKey },
      partsInFlight: 4,
    });
    return {
      store,
      // No startMultipartUpload: Azure has no multipart uploads to leave open (uncommitted blocks expire on their own).
      // The SDK's own client, not the store: the bytes as any Azure reader gets them.
      readIndependently: async (key) => server.service.getContainerClient(container).getBlobClient(`${PREFIX}${key}`).downloadToBuffer(),
      cleanup: async () => {
        await server.service.getContainerClient(container).deleteIfExists();
      },
    };
  },
  { requires: ['conditionalWrites', 'contentMd5Check', 'partCopy'] },
);
