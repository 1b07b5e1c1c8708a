import { BlobSASPermissions, BlobServiceClient, generateBlobSASQueryParameters, StorageSharedKeyCredential, type ContainerClient, type StoragePipelineOptions } from '@azure/storage-blob';
import { AppError } from '../errors.js';
import { azureOptionsProblems, type AzureCredentials } from './azure-options.js';

export type { AzureCredentials } from './azure-options.js';

/** The Azure Blob Storage client for one container (built without I/O), from options checked by azure-options.ts. */

export interface AzureStoreOptions {
  /** CLOUD_SYNC_BUCKET. */
  container: string;
  /** '' or ending in '/'. */
  prefix: string;
  /** CLOUD_SYNC_ENDPOINT: the blob service URL (https://ACCOUNT.blob.core.windows.net); undefined with a connection string, which names its own. */
  endpoint: string | undefined;
  credentials: AzureCredentials;
  /** Blocks of one file staged in parallel. Memory use is part size x this, per file. */
  partsInFlight: number;
  /** One request (one try) that has not finished in this long fails, retryably; default REQUEST_TIMEOUT_MS. */
  requestTimeoutMs?: number;
}

/**
 * The SDK times whole requests, not idle sockets: generous enough for one large block over a slow
 * link, short enough that a hung connection does not hold an upload for ever.
 */
const REQUEST_TIMEOUT_MS = 10 * 60_000;
/** A server-side copy's source is read through a SAS this long-lived, made fresh for each request. */
const SOURCE_SAS_LIFETIME_MS = 60 * 60_000;
/** Clock skew allowance for the SAS start time. */
const SOURCE_SAS_SKEW_MS = 5 * 60_000;


export interface AzureContainer {
  client: ContainerClient;
  /** Shown in logs: the container at the account URL, without any SAS. */
  url: string;
  /**
   * The URL a server-side copy reads `blobName` from. Put Block From URL reads its source as an
   * anonymous client would: with the account key, through a short-lived read-only SAS; with a
   * SAS connection string, through that SAS (it must allow reading).
   */
  sourceUrl(blobName: string): string;
}

export function openAzureContainer(options: AzureStoreOptions): AzureContainer {
  const problems = azureOptionsProblems(options);
  if (problems.length > 0) throw new AppError('config', `Azure Blob Storage: ${problems.join('; ')}`, { retryable: false });
  const pipeline: StoragePipelineOptions = {
    // Retries are memsync's own (they re-open the file, with backoff); the SDK may try twice, as the S3 store does.
    retryOptions: { maxTries: 2, tryTimeoutInMs: options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS },
  };
  const { credentials } = options;
  let service: BlobServiceClient;
  if (credentials.kind === 'shared-key') {
    service = new BlobServiceClient(options.endpoint as string, new StorageSharedKeyCredential(credentials.accountName, credentials.accountKey), pipeline);
  } else {
    try {
      service = BlobServiceClient.fromConnectionString(credentials.connectionString, pipeline);
    } catch (error) {
      throw new AppError('config', `AZURE_STORAGE_CONNECTION_STRING cannot be used: ${error instanceof Error ? error.message : String(error)}`, { cause: error, retryable: false });
    }
  }
  const client = service.getContainerClient(options.container);
  const key = service.credential instanceof StorageSharedKeyCredential ? service.credential : undefined;
  return {
    client,
    url: client.url.split('?')[0] ?? client.url,
    sourceUrl: (blobName) => {
      const blob = client.getBlobClient(blobName);
      if (key === undefined) return blob.url;
      const now = Date.now();
      const sas = generateBlobSASQueryParameters(
        {
          containerName: options.container,
          blobName,
          permissions: BlobSASPermissions.parse('r'),
          startsOn: new Date(now - SOURCE_SAS_SKEW_MS),
          expiresOn: new Date(now + SOURCE_SAS_LIFETIME_MS),
        },
        key,
      );
      return `${blob.url}?${sas.toString()}`;
    },
  };
}
