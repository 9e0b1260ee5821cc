/**
 * ProcessPool over effect-amp Node workers on fds 3/4
 * (test/node/fixtures/fds-child.ts): the cases run against Twisted workers
 * in test/interop/ProcessPool.test.ts.
 */
import { describe } from "@effect/vitest"
import * as path from "node:path"
import { processPoolCases } from "../support/processPoolCases.js"

describe("ProcessPool of effect-amp workers on fds 3/4", () => {
  processPoolCases(() => ({
    command: process.execPath,
    args: ["--import", "tsx", path.join(import.meta.dirname, "fixtures", "fds-child.ts")]
  }))
})
