import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // End-to-end suites start real processes and bind ports: keep the two cores from thrashing.
    fileParallelism: false,
  },
});
