/**
 * What memsync does differently for one S3-compatible service (CLOUD_SYNC_S3_PROFILE). Each
 * setting answers a documented limit of that service; anything a service can tell about itself
 * at run time (whether it honours If-None-Match, whether it copies objects) is probed instead
 * (conditional-writes.ts, upload/copy-plan.ts) and never written into this table. Pure data and
 * decisions; the S3 client reads the result (s3-store.ts, store-factory.ts).
 */

export const S3_PROFILE_NAMES = ['aws', 'minio', 'ceph', 'r2', 'b2', 'gcs', 'wasabi', 'generic'] as const;
export type S3ProfileName = (typeof S3_PROFILE_NAMES)[number];

/**
 * How a write that must not replace an existing object says so. `if-none-match`: S3's
 * If-None-Match: *. `goog-generation`: Google Cloud Storage's XML API, whose documented form is
 * x-goog-if-generation-match: 0 on PUT and which takes no precondition on a multipart completion.
 */
export type CreateOnlyHeader = 'if-none-match' | 'goog-generation';

export interface S3Profile {
  name: S3ProfileName;
  /** Parts of one file uploaded at once (memory use is the part size times this, per file). */
  partsInFlight: number;
  /**
   * The service refuses to complete an upload whose parts (all but the last) differ in size.
   * memsync's own uploads and copies use one part size; a delta composition does not.
   */
  equalPartSizes: boolean;
  /** The service copies byte ranges into a multipart upload (UploadPartCopy with a range). */
  rangedCopies: boolean;
  /** Buckets addressed as a path (https://host/bucket/key) unless CLOUD_SYNC_FORCE_PATH_STYLE says otherwise. */
  pathStyle: boolean;
  createOnlyHeader: CreateOnlyHeader;
}

/**
 * The same for every profile, and stated so: bodies of PutObject and UploadPart go as
 * UNSIGNED-PAYLOAD (never aws-chunked, which B2 refuses above 1 MiB chunks and several servers
 * store verbatim) and checksum headers only where an operation requires them (B2 and others do
 * not take every x-amz-checksum-* header). memsync checks what it wrote itself (Content-MD5, ETags,
 * the manifest's SHA-256).
 */
export const PAYLOAD_SIGNING = 'UNSIGNED-PAYLOAD';
export const CHECKSUM_MODE = 'WHEN_REQUIRED';

const DEFAULT_PARTS_IN_FLIGHT = 4;

const S3_COMPATIBLE: Omit<S3Profile, 'name'> = {
  partsInFlight: DEFAULT_PARTS_IN_FLIGHT,
  equalPartSizes: false,
  rangedCopies: true,
  // Self-hosted servers rarely have wildcard DNS for per-bucket host names.
  pathStyle: true,
  createOnlyHeader: 'if-none-match',
};

const PROFILES: Record<S3ProfileName, S3Profile> = {
  aws: { ...S3_COMPATIBLE, name: 'aws', pathStyle: false },
  minio: { ...S3_COMPATIBLE, name: 'minio' },
  ceph: { ...S3_COMPATIBLE, name: 'ceph' },
  // R2 answers 500 when more than two or three parts of one upload are in flight, and refuses to
  // complete an upload whose non-final parts differ in size.
  r2: { ...S3_COMPATIBLE, name: 'r2', partsInFlight: 2, equalPartSizes: true },
  b2: { ...S3_COMPATIBLE, name: 'b2' },
  // The XML API's multipart uploads have no ranged part copy, and its create-only precondition
  // is its own header.
  gcs: { ...S3_COMPATIBLE, name: 'gcs', rangedCopies: false, createOnlyHeader: 'goog-generation' },
  wasabi: { ...S3_COMPATIBLE, name: 'wasabi' },
  generic: { ...S3_COMPATIBLE, name: 'generic' },
};

/** How the profile in use was chosen. */
export type S3ProfileChoice = 'CLOUD_SYNC_S3_PROFILE' | 'endpoint host' | 'no endpoint';

export interface ResolvedS3Profile extends S3Profile {
  chosenBy: S3ProfileChoice;
}

/** Host name suffixes of the services that can be told from their endpoint. */
const HOST_SUFFIXES: readonly (readonly [string, S3ProfileName])[] = [
  ['r2.cloudflarestorage.com', 'r2'],
  ['backblazeb2.com', 'b2'],
  ['storage.googleapis.com', 'gcs'],
  ['wasabisys.com', 'wasabi'],
  ['amazonaws.com', 'aws'],
  ['amazonaws.com.cn', 'aws'],
];

/** The profile an endpoint's host name tells (no endpoint: AWS itself); 'generic' when it tells none. */
export function detectS3Profile(endpoint: string | undefined): S3ProfileName {
  if (endpoint === undefined) return 'aws';
  let host: string;
  try {
    host = new URL(endpoint).hostname.toLowerCase();
  } catch {
    return 'generic';
  }
  const match = HOST_SUFFIXES.find(([suffix]) => host === suffix || host.endsWith(`.${suffix}`));
  return match === undefined ? 'generic' : match[1];
}

/** The profile named by CLOUD_SYNC_S3_PROFILE, or the one detected from the endpoint. */
export function resolveS3Profile(named: S3ProfileName | undefined, endpoint: string | undefined): ResolvedS3Profile {
  if (named !== undefined) return { ...PROFILES[named], chosenBy: 'CLOUD_SYNC_S3_PROFILE' };
  return { ...PROFILES[detectS3Profile(endpoint)], chosenBy: endpoint === undefined ? 'no endpoint' : 'endpoint host' };
}

/**
 * Whether delta uploads (a new version composed from ranges of the previous one copied
 * server-side plus sent bytes) can work: they need ranged copies, and their parts differ in size.
 */
export function allowsComposedUploads(profile: S3Profile): boolean {
  return profile.rangedCopies && !profile.equalPartSizes;
}

/** One line for the start-up log: the profile, how it was chosen and what it changes. */
export function describeS3Profile(profile: ResolvedS3Profile): string {
  const changes = [
    `${profile.partsInFlight} parts in flight per file`,
    ...(profile.equalPartSizes ? ['equal part sizes'] : []),
    ...(profile.rangedCopies ? [] : ['no ranged copies']),
    ...(allowsComposedUploads(profile) ? [] : ['delta uploads off']),
    ...(profile.createOnlyHeader === 'goog-generation' ? ['create-only as x-goog-if-generation-match: 0'] : []),
  ];
  return `${profile.name} (from ${profile.chosenBy}): ${changes.join(', ')}`;
}
