// Vitest globalSetup: one S3 server for the whole run, handed to tests through inject('s3') (test/helpers/s3.ts).
import type { TestProject } from 'vitest/node';
import { startS3TestServer, type S3TestServer } from './helpers/s3-fixture.js';

declare module 'vitest' {
  export interface ProvidedContext {
    s3: S3TestServer;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const { server, stop } = await startS3TestServer();
  project.provide('s3', server);
  return stop;
}
