// What a test file uses to reach the S3 server that test/global-setup.ts started.
/// <reference path="../global-setup.ts" />
import { inject } from 'vitest';
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
