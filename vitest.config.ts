import { defineConfig } from "vitest/config"

// Two suites: `unit` (pure, in-memory and loopback tests of our own code) and
// `interop` (against a live Twisted peer). `npm test` runs both; see README.
export default defineConfig({
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["test/**/*.test.ts"],
          exclude: ["test/interop/**"],
          testTimeout: 30_000
        }
      },
      {
        extends: true,
        test: {
          name: "interop",
          include: ["test/interop/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000
        }
      }
    ]
  }
})
