import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Lab tests share one machine's namespaces and CPU: run files one after another.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 600_000,
    reporters: ['default'],
  },
});
