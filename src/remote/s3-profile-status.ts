import type { Config } from '../config.js';
import type { ConditionalWrites } from './conditional-writes.js';
import { CHECKSUM_MODE, PAYLOAD_SIGNING } from './s3-profile.js';

/** The `store` object of /sync/status: what the store is, what its profile changes, what probes found. */
export type StoreStatus =
  | { provider: 'fs' | 'azure'; probed: StoreProbes }
  | {
      provider: 's3';
      profile: string;
      /** CLOUD_SYNC_S3_PROFILE, the endpoint's host name, or no endpoint (AWS). */
      chosenBy: string;
      partsInFlight: number;
      equalPartSizes: boolean;
      rangedCopies: boolean;
      /** In use, after CLOUD_SYNC_FORCE_PATH_STYLE. */
      pathStyle: boolean;
      payloadSigning: string;
      checksums: string;
      createOnlyHeader: string;
      deltaUploads: boolean;
      probed: StoreProbes;
    };

export interface StoreProbes {
  /** The start-up probe's answer (conditional-writes.ts); 'unknown' until it reached the store. */
  conditionalWrites: ConditionalWrites | 'unknown';
}

const CREATE_ONLY_HEADERS = { 'if-none-match': 'If-None-Match: *', 'goog-generation': 'x-goog-if-generation-match: 0' } as const;

export function storeStatus(config: Pick<Config, 'storage' | 's3' | 'deltaMinFileBytes'>, conditionalWrites: ConditionalWrites | undefined): StoreStatus {
  const probed: StoreProbes = { conditionalWrites: conditionalWrites ?? 'unknown' };
  if (config.storage.provider !== 's3') return { provider: config.storage.provider, probed };
  const profile = config.s3.profile;
  return {
    provider: 's3',
    profile: profile.name,
    chosenBy: profile.chosenBy,
    partsInFlight: profile.partsInFlight,
    equalPartSizes: profile.equalPartSizes,
    rangedCopies: profile.rangedCopies,
    pathStyle: config.s3.forcePathStyle,
    payloadSigning: PAYLOAD_SIGNING,
    checksums: CHECKSUM_MODE,
    createOnlyHeader: CREATE_ONLY_HEADERS[profile.createOnlyHeader],
    deltaUploads: config.deltaMinFileBytes !== undefined,
    probed,
  };
}
