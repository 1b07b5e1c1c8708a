import { defineConfig } from 'vitest/config';

// The reliability suite takes minutes and stops the shared S3 server on purpose: it runs only
// when asked for by name (npm run test:reliability), never as part of `vitest run` / npm test.
const reliabilityAsked = process.argv.some((arg, i, all) => arg === '--project=reliability' || (arg === '--project' && all[i + 1] === 'reliability'));

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
      ...(reliabilityAsked
        ? [
            {
              test: {
                name: 'reliability',
                include: ['test/reliability/**/*.test.ts'],
                // The same S3 fixture, then the figures file whose table the teardown prints.
                globalSetup: ['test/global-setup.ts', 'test/reliability/figures-setup.ts'],
                // Scenarios stop and restart agents and the server itself: one file at a time.
                fileParallelism: false,
                maxWorkers: 1,
                // Each scenario bounds its own waits; these only catch a wedged one.
                testTimeout: 600_000,
                hookTimeout: 180_000,
              },
            },
          ]
        : []),
    ],
  },
});
