import { defineConfig } from "vitest/config";

// Two projects, each file in exactly one: `vitest run` (npm test) runs both; `npm run test:unit`
// runs only "unit", the tests that start no process and no server (see test/unit/starts-nothing.ts).
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          setupFiles: ["test/unit/starts-nothing.ts"],
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          exclude: ["test/unit/**"],
          // End-to-end suites start real processes and bind ports: keep the two cores from thrashing.
          fileParallelism: false,
        },
      },
    ],
  },
});
