import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    pool: "forks",
    // Integration files start their own embedded Azurite + Cosmos server on free ports, so files can run in parallel.
    fileParallelism: true,
    // Vitest would use cores - 1 (one worker on a 2-core machine); test files wait on I/O a lot, so run a few at once.
    maxWorkers: 3,
    minWorkers: 1,
    testTimeout: 90_000,
    hookTimeout: 60_000,
    teardownTimeout: 10_000,
    reporters: ["default"],
  },
});
