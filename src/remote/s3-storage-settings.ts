import type { S3Client, ServerSideEncryption as SdkServerSideEncryption, StorageClass as SdkStorageClass } from '@aws-sdk/client-s3';
import type { InitializeMiddleware, MetadataBearer } from '@aws-sdk/types';
import { AppError } from '../errors.js';

/**
 * How objects are stored at rest: the storage class and the server-side encryption every write
 * asks for (PutObject, CreateMultipartUpload, CopyObject). UploadPart and UploadPartCopy take
 * neither: a multipart object gets both from its CreateMultipartUpload, and S3 refuses them on a
 * part request.
 */

export const STORAGE_CLASSES = [
  'STANDARD',
  'REDUCED_REDUNDANCY',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'GLACIER',
  'DEEP_ARCHIVE',
  'GLACIER_IR',
  'OUTPOSTS',
  'EXPRESS_ONEZONE',
] as const satisfies readonly SdkStorageClass[];
export type StorageClassName = (typeof STORAGE_CLASSES)[number];

/**
 * Classes whose objects cannot be read by GET until a restore request has thawed them (hours):
 * memsync checks stored objects and restores by GET, so it refuses them.
 */
export const ARCHIVE_CLASSES: readonly StorageClassName[] = ['GLACIER', 'DEEP_ARCHIVE'];

/** Days an object of the class is billed for at least, even if deleted sooner (AWS S3 pricing). */
export const MIN_BILLED_DAYS: Partial<Record<StorageClassName, number>> = {
  STANDARD_IA: 30,
  ONEZONE_IA: 30,
  GLACIER_IR: 90,
};

export const SSE_MODES = ['AES256', 'aws:kms'] as const;
export type SseMode = (typeof SSE_MODES)[number];

export type ServerSideEncryptionSetting = { mode: 'AES256' } | { mode: 'aws:kms'; /** Undefined: the bucket's default KMS key. */ kmsKeyId: string | undefined };

export interface S3AtRest {
  /** Undefined: the bucket's default (STANDARD on AWS). */
  storageClass: StorageClassName | undefined;
  /** Undefined: no header, the bucket's default encryption applies. */
  sse: ServerSideEncryptionSetting | undefined;
}

export interface S3WriteParameters {
  StorageClass?: SdkStorageClass;
  ServerSideEncryption?: SdkServerSideEncryption;
  SSEKMSKeyId?: string;
}

/** The parameters spread into every request that creates an object. */
export function writeParameters(atRest: S3AtRest | undefined): S3WriteParameters {
  if (atRest === undefined) return {};
  return {
    ...(atRest.storageClass === undefined ? {} : { StorageClass: atRest.storageClass }),
    ...(atRest.sse === undefined ? {} : { ServerSideEncryption: atRest.sse.mode }),
    ...(atRest.sse?.mode === 'aws:kms' && atRest.sse.kmsKeyId !== undefined ? { SSEKMSKeyId: atRest.sse.kmsKeyId } : {}),
  };
}

/**
 * Whether the store's ETags are the MD5 of the object's bytes (or of its parts' MD5s). Under
 * SSE-KMS AWS S3 answers an ETag that is not (Ceph RGW 16 still answers the MD5, but memsync
 * cannot tell the two apart): what was stored is then proven another way (see
 * upload/stored-verification.ts).
 */
export function etagsAreDigests(atRest: S3AtRest | undefined): boolean {
  return atRest?.sse?.mode !== 'aws:kms';
}

export function isStorageClass(value: string): value is StorageClassName {
  return (STORAGE_CLASSES as readonly string[]).includes(value);
}

/** The commands that create an object, each of which takes the class and the encryption. */
const CREATING_COMMANDS = new Set(['PutObjectCommand', 'CreateMultipartUploadCommand', 'CopyObjectCommand']);

/**
 * Sets the storage class and encryption on every request that creates an object, whichever path
 * sends it (single PUTs, multipart uploads of files and of streams, copies, compositions): one
 * place, so no write path can be missed.
 */
export function atRestParameters(atRest: S3AtRest): InitializeMiddleware<object, MetadataBearer> {
  const parameters = writeParameters(atRest);
  return (next, context) => async (args) => {
    if (CREATING_COMMANDS.has(context.commandName ?? '')) Object.assign(args.input, parameters);
    return next(args);
  };
}

/** Installs atRestParameters when there is anything to ask for; returns whether it did. */
export function askForAtRest(client: S3Client, atRest: S3AtRest | undefined): boolean {
  if (atRest === undefined || Object.keys(writeParameters(atRest)).length === 0) return false;
  client.middlewareStack.add(atRestParameters(atRest), { step: 'initialize', name: 'memsyncAtRest' });
  return true;
}

/** Codes with which servers refuse a storage class or encryption they do not offer (Ceph RGW: InvalidArgument). */
const AT_REST_REFUSALS = new Set(['InvalidStorageClass', 'InvalidArgument', 'KMS.NotFoundException', 'KMS.DisabledException', 'InvalidEncryptionAlgorithmError']);

/**
 * A write refused for what it carries, while a class or encryption was asked for: the hint names
 * the variables, since those headers are the usual cause. The kind stays object_refused: the
 * store is working, that snapshot fails and stays pending, and the store is not marked away.
 */
export function withAtRestHint(error: AppError, atRest: S3AtRest | undefined): AppError {
  const code = typeof error.details?.code === 'string' ? error.details.code : '';
  if (error.kind !== 'object_refused' || !AT_REST_REFUSALS.has(code) || atRest === undefined || Object.keys(writeParameters(atRest)).length === 0) return error;
  const asked = [
    atRest.storageClass === undefined ? undefined : `CLOUD_SYNC_STORAGE_CLASS=${atRest.storageClass}`,
    atRest.sse === undefined ? undefined : `CLOUD_SYNC_SSE=${atRest.sse.mode}${atRest.sse.mode === 'aws:kms' && atRest.sse.kmsKeyId !== undefined ? ` with CLOUD_SYNC_SSE_KMS_KEY_ID` : ''}`,
  ].filter((text) => text !== undefined);
  return new AppError(error.kind, error.message, {
    cause: error.cause,
    retryable: false,
    details: error.details,
    hint: `the store refused the object as asked for with ${asked.join(' and ')}: check that it offers them (or unset them)`,
  });
}
