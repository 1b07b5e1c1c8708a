// What a test file uses to reach the S3 server that test/global-setup.ts started.
/// <reference path="../global-setup.ts" />
import { inject } from 'vitest';
import { S3RemoteStore, type S3StoreOptions } from '../../src/remote/s3-store.js';
import type { S3Capabilities, S3TestServer } from './s3-fixture.js';

export function testServer(): S3TestServer {
  const server = inject('s3');
  // inject() yields undefined, not an error, in a project whose globalSetup is not test/global-setup.ts
  if (!server) throw new Error('no S3 test server provided: add test/global-setup.ts to this project\'s globalSetup');
  return server;
}

/** null when the server has the capability, else why not: `it.skipIf(skipUnless('x'))(...)`. */
export function skipUnless(capability: keyof S3Capabilities): string | null {
  const server = testServer();
  return server.capabilities[capability] ? null : `${server.kind} does not support ${capability}`;
}

/** The variables that point memsync at `bucket` on the test server, sync enabled. */
export function s3Env(server: S3TestServer, bucket: string): Record<string, string> {
  return {
    CLOUD_SYNC_ENABLED: 'true',
    CLOUD_SYNC_BUCKET: bucket,
    CLOUD_SYNC_ENDPOINT: server.endpoint,
    CLOUD_SYNC_REGION: server.region,
    CLOUD_SYNC_ACCESS_KEY: server.accessKeyId,
    CLOUD_SYNC_SECRET_KEY: server.secretAccessKey,
  };
}

/** A store over `bucket` on the test server, under `prefix`: path style, 4 parts in flight unless `options` say otherwise. */
export function testServerStore(server: S3TestServer, bucket: string, prefix: string, options: Partial<S3StoreOptions> = {}): S3RemoteStore {
  return new S3RemoteStore({
    bucket,
    prefix,
    endpoint: server.endpoint,
    region: server.region,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    forcePathStyle: true,
    partsInFlight: 4,
    ...options,
  });
}
