import type { Config } from '../config.js';
import { FsRemoteStore } from './fs-store.js';
import { S3RemoteStore } from './s3-store.js';
import type { RemoteStore } from './store.js';

/**
 * The RemoteStore of the configured provider (CLOUD_SYNC_PROVIDER), for the agent and the
 * command line alike. Builds only: no I/O until the store is used. The Azure SDK is loaded only
 * when that provider is chosen: it takes about a second and 40 MiB to load, which every start
 * and every command would otherwise pay.
 */

/** Parts of one large file in flight at once: memory use is the part size times this, per file. */
const PARTS_IN_FLIGHT = 4;

export async function createRemoteStore(config: Config): Promise<RemoteStore> {
  const storage = config.storage;
  switch (storage.provider) {
    case 's3':
      // The S3 profile says how many parts the service takes at once (R2: 2) and how it states create-only writes.
      return new S3RemoteStore({ ...config.s3, partsInFlight: config.s3.profile.partsInFlight, createOnlyHeader: config.s3.profile.createOnlyHeader });
    case 'fs':
      return new FsRemoteStore({ directory: storage.directory, prefix: storage.prefix });
    case 'azure': {
      const { AzureRemoteStore } = await import('./azure-store.js');
      return new AzureRemoteStore({ container: storage.container, prefix: storage.prefix, endpoint: storage.endpoint, credentials: storage.credentials, partsInFlight: PARTS_IN_FLIGHT });
    }
  }
}
