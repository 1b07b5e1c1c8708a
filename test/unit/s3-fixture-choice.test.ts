// Under CI=true the test harness must never fall back to the fake S3 server in silence.
import { afterEach, describe, expect, it } from 'vitest';
import { startS3TestServer } from '../helpers/s3-fixture.js';

const saved = { PATH: process.env.PATH, CI: process.env.CI, S3_TEST_SERVER: process.env.S3_TEST_SERVER, S3_TEST_ENDPOINT: process.env.S3_TEST_ENDPOINT };
afterEach(() => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

describe('the S3 test server choice', () => {
  it('fails under CI=true when no real server can be started, instead of starting the fake', async () => {
    process.env.CI = 'true';
    // No Ceph binaries on this PATH; no Docker engine on these machines either way.
    process.env.PATH = '/nonexistent';
    delete process.env.S3_TEST_SERVER;
    delete process.env.S3_TEST_ENDPOINT;
    await expect(startS3TestServer()).rejects.toThrow(/CI=true and no real S3 server to start/);
  }, 30_000);
});
