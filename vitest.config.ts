import { defineConfig } from 'vitest/config';

// The whole in-process suite runs twice: on Express 5 (the devDependency) and on Express 4, by aliasing
// `express` to the `express4` package. Tests that start child processes run once, on Express 5.
const CHILD_PROCESS_TESTS = ['test/package.test.ts', 'test/e2e/redis-outage.test.ts', 'test/e2e/redis-topologies.test.ts', 'test/shutdown.test.ts', 'test/rolling-restart.test.ts', 'test/packaging.test.ts', 'test/telemetry-packaging.test.ts', 'test/example.test.ts', 'test/e2e/multi-process.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 15_000,
    projects: [
      { extends: true, test: { name: 'express5', include: ['test/**/*.test.ts'], env: { EXPRESS_MAJOR: '5' } } },
      {
        extends: true,
        resolve: { alias: [{ find: /^express(?=$|\/)/, replacement: 'express4' }] },
        test: { name: 'express4', include: ['test/**/*.test.ts'], exclude: CHILD_PROCESS_TESTS, env: { EXPRESS_MAJOR: '4' } },
      },
    ],
  },
});
