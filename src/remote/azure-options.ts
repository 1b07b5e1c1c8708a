/**
 * What the azure provider's options must look like: pure checks, each naming the variable memsync
 * is configured with, so configuration can run them without loading the Azure SDK; the store's
 * constructor runs them again.
 */

export type AzureCredentials =
  /** CLOUD_SYNC_ACCESS_KEY (account name) and CLOUD_SYNC_SECRET_KEY (account key, base64). */
  | { kind: 'shared-key'; accountName: string; accountKey: string }
  /** AZURE_STORAGE_CONNECTION_STRING: with AccountKey=, or with SharedAccessSignature= (a SAS scoped to the container). */
  | { kind: 'connection-string'; connectionString: string };

const ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** 3 to 63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit. */
const CONTAINER_NAME = /^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$/;

/** What is wrong with the options, one sentence each naming the variable to fix; [] when usable. */
export function azureOptionsProblems(options: { container: string; endpoint: string | undefined; credentials: AzureCredentials }): string[] {
  const problems: string[] = [];
  if (!CONTAINER_NAME.test(options.container)) {
    problems.push(`CLOUD_SYNC_BUCKET ${JSON.stringify(options.container)} is not an Azure container name (3 to 63 lower-case letters, digits and single hyphens)`);
  }
  const { credentials } = options;
  if (credentials.kind === 'shared-key') {
    if (options.endpoint === undefined || !/^https?:\/\/[^/]/.test(options.endpoint)) {
      problems.push('CLOUD_SYNC_ENDPOINT must be the blob service URL, e.g. https://ACCOUNT.blob.core.windows.net');
    }
    if (!ACCOUNT_NAME.test(credentials.accountName)) problems.push('CLOUD_SYNC_ACCESS_KEY must be the storage account name (3 to 24 lower-case letters and digits)');
    if (!BASE64.test(credentials.accountKey) || credentials.accountKey.length % 4 !== 0) {
      problems.push('CLOUD_SYNC_SECRET_KEY is not an Azure account key (base64, as the portal shows it under Access keys)');
    }
  } else {
    if (options.endpoint !== undefined) problems.push('CLOUD_SYNC_ENDPOINT must not be set with AZURE_STORAGE_CONNECTION_STRING, which names the endpoint itself');
    const fields = connectionStringFields(credentials.connectionString);
    if (fields.get('accountkey') === undefined && fields.get('sharedaccesssignature') === undefined) {
      problems.push('AZURE_STORAGE_CONNECTION_STRING has neither AccountKey= nor SharedAccessSignature=');
    } else if (fields.get('blobendpoint') === undefined && fields.get('accountname') === undefined) {
      problems.push('AZURE_STORAGE_CONNECTION_STRING names no account (AccountName=) or BlobEndpoint=');
    }
  }
  return problems;
}

function connectionStringFields(connectionString: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const pair of connectionString.split(';')) {
    const equals = pair.indexOf('=');
    if (equals > 0) fields.set(pair.slice(0, equals).trim().toLowerCase(), pair.slice(equals + 1).trim());
  }
  return fields;
}
