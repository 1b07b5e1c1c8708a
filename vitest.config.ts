import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Agents under test share two cores with the S3 server: keep file parallelism low.
    maxWorkers: 2,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          // One real S3 server for the whole run, chosen by the fixture (see test/helpers/s3-fixture.ts).
          globalSetup: ['test/global-setup.ts'],
          // Real agent processes against a real server: a slow server start must not look like a failure.
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
