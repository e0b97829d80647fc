import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Builds dist/ (incrementally) before any test runs the CLI or an agent from it.
    globalSetup: ['test/build-setup.ts'],
    // Lab tests share one machine's namespaces and CPU: run files one after another.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 600_000,
    reporters: ['default'],
  },
});
