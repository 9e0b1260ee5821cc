import { defineConfig } from "vitest/config"

// Two suites: `unit` (pure, in-memory and loopback tests of our own code) and
// `interop` (against a live Twisted peer). `npm test` runs both; see README.
// Under CI, each run also writes a JSON summary that .ci/run totals into one closing line.
const suite = process.argv.includes("interop") ? "interop" : "unit"

export default defineConfig({
  test: {
    reporters: process.env.CI ? ["default", ["json", { outputFile: `.ci-results/${suite}.json` }]] : ["default"],
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
