import type { S3Client } from '@aws-sdk/client-s3';
import type { BuildMiddleware, MetadataBearer } from '@aws-sdk/types';
import type { CreateOnlyHeader } from './s3-profile.js';

type Headers = Record<string, string>;

function removeHeader(headers: Headers, name: string): string | undefined {
  const key = Object.keys(headers).find((candidate) => candidate.toLowerCase() === name);
  if (key === undefined) return undefined;
  const value = headers[key];
  delete headers[key];
  return value;
}

/**
 * Google Cloud Storage's XML API states "create only if absent" as x-goog-if-generation-match: 0
 * (generation 0: no live object) on PUT, and its multipart uploads take no preconditions at all,
 * so If-None-Match: * is translated on PutObject and left off CompleteMultipartUpload. Runs in
 * the build step, before signing: the header that is sent is the header that is signed. Whether
 * the service then honours it is probed at start like any other (conditional-writes.ts).
 */
const googleCreateOnly: BuildMiddleware<object, MetadataBearer> = (next, context) => async (args) => {
  const request = args.request as { headers?: Headers };
  const headers = request.headers;
  if (headers !== undefined) {
    if (context.commandName === 'PutObjectCommand') {
      const ifNoneMatch = removeHeader(headers, 'if-none-match');
      if (ifNoneMatch === '*') headers['x-goog-if-generation-match'] = '0';
      else if (ifNoneMatch !== undefined) headers['if-none-match'] = ifNoneMatch;
    }
    if (context.commandName === 'CompleteMultipartUploadCommand') removeHeader(headers, 'if-none-match');
  }
  return next(args);
};

/** Adds the request rewriting a profile's create-only header needs to the client (none for S3's own). */
export function applyCreateOnlyHeader(client: S3Client, form: CreateOnlyHeader): void {
  if (form === 'goog-generation') client.middlewareStack.add(googleCreateOnly, { step: 'build', name: 'memsyncGoogleCreateOnly' });
}
