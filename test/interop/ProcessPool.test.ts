/**
 * ProcessPool over Twisted workers started as ampoule starts them (fds 3/4,
 * test/interop/peers/fds_child.py): growth to max, callbacks, recycling with
 * a QuitBox, a crash mid-call, a hang past the timeout, and a shutdown that
 * leaves nothing behind. The same cases over effect-amp children:
 * test/node/ProcessPool.test.ts.
 */
import { describe } from "@effect/vitest"
import * as path from "node:path"
import { processPoolCases } from "../support/processPoolCases.js"
import { PYTHON, requireTwisted } from "../support/twisted.js"

describe("ProcessPool of Twisted workers on fds 3/4", () => {
  processPoolCases(() => {
    requireTwisted()
    return { command: PYTHON, args: [path.join(import.meta.dirname, "peers", "fds_child.py")] }
  })
})
