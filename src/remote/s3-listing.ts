import { Readable } from 'node:stream';
import { ListObjectsV2Command, type ListObjectsV2CommandInput, type ListObjectsV2CommandOutput, type S3Client } from '@aws-sdk/client-s3';
import type { DeserializeMiddleware } from '@aws-sdk/types';
import { AppError } from '../errors.js';
import { translateS3BucketError } from './s3-errors.js';
import { ListPageFormatError, parseListPage, type ListedObject, type ListedPage } from './s3-list-page.js';

/**
 * A bucket listing (ListObjectsV2, page by page) whose answers memsync reads itself.
 *
 * The request is still the S3 client's own command: signing, endpoint and path style, the
 * profile's middleware, the HTTP handler (keep-alive, connection and idle timeouts), the
 * bandwidth limit and the SDK's retries all stay as for every other request. Only the body of a
 * 200 answer is taken from the SDK before its XML parser sees it (see readPagesOwnWay). A body
 * memsync's reader does not understand is handed back untouched, and the SDK reads that page as
 * it always did; error answers never leave the SDK, so they are translated as before.
 */

/** 'memsync': the reader of s3-list-page.ts, the SDK's for what it refuses; 'sdk': the SDK's parser for every page. */
export type ListingReader = 'memsync' | 'sdk';

export interface S3ListingOptions {
  client: S3Client;
  bucket: string;
  /** The full key prefix listed (the store's prefix included). */
  prefix: string;
  reader: ListingReader;
  /** Keys asked for per page; default PAGE_KEYS (S3's maximum). */
  pageKeys?: number;
  /** Told why a page went to the SDK's parser after memsync's reader refused it. */
  onSdkFallback?: (problem: string) => void;
}

const PAGE_KEYS = 1000;
/** What the SDK is given to parse in place of a body memsync has read: a listing of nothing. */
const READ_ELSEWHERE = Buffer.from('<ListBucketResult></ListBucketResult>');

/** A size that can be a file's: a whole number of bytes that floating point holds exactly. */
function isByteCount(size: number): boolean {
  return Number.isSafeInteger(size) && size >= 0;
}

/** Every object under the prefix, one array per page, keys in full. */
export async function* listS3Objects(options: S3ListingOptions): AsyncIterable<ListedObject[]> {
  const operation = `list ${options.prefix}`;
  let continuationToken: string | undefined;
  // A server that hands back a token it gave before would have memsync list for ever.
  const tokensSent = new Set<string>();
  do {
    const page = await readPage(options, continuationToken, operation);
    // The answer says how many keys it holds: a body damaged on the way can parse with entries
    // missing, and a snapshot would look like it has fewer files (or no manifest).
    if (page.keyCount !== undefined && page.keyCount !== page.entryCount) {
      throw new AppError('remote_unavailable', `${operation}: the answer says it holds ${page.keyCount} keys but carries ${page.entryCount}`);
    }
    yield page.objects;
    continuationToken = page.isTruncated ? page.nextContinuationToken : undefined;
    if (continuationToken !== undefined) {
      if (tokensSent.has(continuationToken)) {
        throw new AppError('remote_rejected', `${operation}: the server repeated a continuation token; the listing would never end`, {
          hint: 'the endpoint is not a working S3 listing; check CLOUD_SYNC_ENDPOINT',
        });
      }
      tokensSent.add(continuationToken);
    }
  } while (continuationToken !== undefined);
}

/**
 * No encoding-type=url: keys come as XML text with references, which both readers resolve. The
 * control characters XML 1.0 cannot carry are never in memsync's own keys (file-path-rule.ts),
 * and servers write them as references anyway (Ceph RGW: &#x01;). URL-encoded keys are not
 * written alike by every server (AWS S3 writes a space as '+', RGW as %20), and the SDK would
 * hand them on undecoded.
 */
async function readPage(options: S3ListingOptions, continuationToken: string | undefined, operation: string): Promise<ListedPage> {
  const command = new ListObjectsV2Command({ Bucket: options.bucket, Prefix: options.prefix, ContinuationToken: continuationToken, MaxKeys: options.pageKeys ?? PAGE_KEYS });
  const ownRead: { page?: ListedPage } = {};
  if (options.reader === 'memsync') {
    command.middlewareStack.addRelativeTo(readPagesOwnWay(ownRead, options.onSdkFallback), { relation: 'after', toMiddleware: 'deserializerMiddleware', name: 'memsyncListPageReader' });
  }
  let answer: ListObjectsV2CommandOutput;
  try {
    answer = await options.client.send(command);
  } catch (error) {
    throw translateS3BucketError(error, operation);
  }
  return ownRead.page ?? pageFromSdk(answer, operation);
}

/**
 * Sits between the SDK's deserializer and the HTTP layer (and outside the bandwidth limit, so
 * the body is read through it). Each attempt starts afresh, so a retried request's page is the
 * one kept.
 */
function readPagesOwnWay(ownRead: { page?: ListedPage }, onSdkFallback: ((problem: string) => void) | undefined): DeserializeMiddleware<ListObjectsV2CommandInput, ListObjectsV2CommandOutput> {
  return (next) => async (args) => {
    ownRead.page = undefined;
    const result = await next(args);
    const response = result.response as { statusCode?: number; body?: unknown };
    if (response.statusCode !== 200 || !(response.body instanceof Readable)) return result;
    const body = await readWhole(response.body);
    try {
      ownRead.page = parseListPage(body.toString('utf8'));
      response.body = Readable.from([READ_ELSEWHERE]);
    } catch (error) {
      if (!(error instanceof ListPageFormatError)) throw error;
      onSdkFallback?.(error.message);
      response.body = Readable.from([body]);
    }
    return result;
  };
}

async function readWhole(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

/** The SDK's answer in the same form, checked the same way memsync's reader checks its own. */
function pageFromSdk(answer: ListObjectsV2CommandOutput, operation: string): ListedPage {
  const contents = answer.Contents ?? [];
  // A listed size that is no byte count (negative, fractional, not exact) means the answer is
  // not a listing memsync can trust (damaged on the way, or not S3's): the listing fails, as a
  // transient failure is retried. Leaving the object out instead would make a snapshot look
  // like it has fewer files than it has.
  const absurd = contents.find((item) => item.Key !== undefined && !isByteCount(item.Size ?? 0));
  if (absurd !== undefined) {
    throw new AppError('remote_unavailable', `${operation}: the answer gives ${JSON.stringify(String(absurd.Key).slice(0, 120))} a size of ${String(absurd.Size)} bytes, which no object has`);
  }
  const objects = contents.flatMap((item) =>
    item.Key === undefined ? [] : [{ key: item.Key, size: item.Size ?? 0, etag: item.ETag ?? '', lastModifiedMs: item.LastModified?.getTime() ?? 0 }],
  );
  return {
    objects,
    keyCount: answer.KeyCount,
    entryCount: contents.length + (answer.CommonPrefixes ?? []).length,
    isTruncated: answer.IsTruncated === true,
    nextContinuationToken: answer.NextContinuationToken,
  };
}
