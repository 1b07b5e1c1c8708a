import { pipeline, Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DeserializeMiddleware, MetadataBearer } from '@aws-sdk/types';
import type { BandwidthLimiters } from './bandwidth-bucket.js';
import { ThrottledBufferReadable, ThrottleTransform } from './throttle-stream.js';

/**
 * The bandwidth limit at the edge of the S3 client's HTTP layer: each attempt's request body is
 * sent through the upload limiter and each response body read through the download one. Placed
 * innermost, after signing and the SDK's retries, so a retried attempt sends its body through the
 * limit again and the signature is computed over the bytes, not over a throttling stream.
 * Server-side copies (CopyObject, UploadPartCopy) carry no body, so they take no tokens: their
 * bytes never pass through memsync.
 */

interface HttpMessageLike {
  body?: unknown;
}

function isHttpMessage(value: unknown): value is HttpMessageLike {
  return typeof value === 'object' && value !== null && 'body' in value;
}

/** The request body as a stream that waits for tokens; undefined when there is nothing to send. */
function throttledRequestBody(body: unknown, limiters: BandwidthLimiters): Readable | undefined {
  const limiter = limiters.up;
  if (limiter === undefined) return undefined;
  let throttled: Readable;
  if (body instanceof Readable) {
    const transform = new ThrottleTransform(limiter);
    // Any end of either stream ends both: the request is gone, or the body failed.
    pipeline(body, transform, () => undefined);
    throttled = transform;
  } else if (body instanceof Uint8Array) {
    if (body.byteLength === 0) return undefined;
    throttled = new ThrottledBufferReadable(body, limiter);
  } else if (typeof body === 'string' && body.length > 0) {
    throttled = new ThrottledBufferReadable(Buffer.from(body), limiter);
  } else {
    return undefined;
  }
  // The HTTP handler pipes the body into the request; a request cut short (aborted, timed out,
  // answered early) unpipes it, and the body must stop waiting for tokens then.
  throttled.once('unpipe', () => throttled.destroy());
  return throttled;
}

function throttledResponseBody(body: unknown, limiters: BandwidthLimiters): Readable | undefined {
  if (limiters.down === undefined || !(body instanceof Readable)) return undefined;
  const transform = new ThrottleTransform(limiters.down);
  // The reader destroying the body (a restore cancelled) destroys the socket's stream too.
  pipeline(body, transform, () => undefined);
  return transform;
}

export function throttleMiddleware(limiters: BandwidthLimiters): DeserializeMiddleware<object, MetadataBearer> {
  return (next) => async (args) => {
    const request = args.request;
    const body = isHttpMessage(request) ? throttledRequestBody(request.body, limiters) : undefined;
    // A copy: the SDK's retry sends the same request object again, which must still hold the original body.
    const attempt = body === undefined ? args : { ...args, request: Object.assign(Object.create(Object.getPrototypeOf(request) as object) as object, request, { body }) };
    const result = await next(attempt);
    if (isHttpMessage(result.response)) {
      const responseBody = throttledResponseBody(result.response.body, limiters);
      if (responseBody !== undefined) result.response.body = responseBody;
    }
    return result;
  };
}

/** Installs the limit on a client; nothing is installed when neither direction is limited. */
export function limitBandwidth(client: S3Client, limiters: BandwidthLimiters): boolean {
  if (limiters.up === undefined && limiters.down === undefined) return false;
  client.middlewareStack.add(throttleMiddleware(limiters), { step: 'deserialize', priority: 'low', name: 'memsyncBandwidthLimit' });
  return true;
}
