/**
 * Nothing but boxes on an AMP stream: a Twisted parent drives a child of ours
 * over the child's stdin and stdout, and the library's own log lines (here,
 * the error logged for a responder failure its command does not map) go to
 * the child's stderr, never into the boxes.
 */
import { describe, expect, it } from "@effect/vitest"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import { startPeer } from "../support/twisted.js"

const PARENT = path.join(import.meta.dirname, "peers", "stdio_parent.py")
const CHILD = path.join(import.meta.dirname, "..", "node", "fixtures", "stdio-boom.ts")

interface Outcome {
  readonly sum: number | string
  readonly boom: string
  readonly lost: string
  readonly exit: number
  readonly stderr: string
}

/** Twisted's parent spawning our child; what it saw. */
const drive = (args: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    const parent = yield* startPeer(PARENT, [process.execPath, "--import", "tsx", CHILD, ...args])
    const line = yield* parent.nextLine.pipe(
      Effect.timeoutFail({ duration: "45 seconds", onTimeout: () => new Error(`the parent said nothing: ${parent.stderr()}`) })
    )
    return JSON.parse(line) as Outcome
  })

describe("a Twisted parent driving our child over stdio", () => {
  it.scopedLive("an unmapped responder failure: UNKNOWN to the parent, the log line on the child's stderr", () =>
    Effect.gen(function*() {
      const r = yield* drive()
      expect(r.sum).toBe(5)
      // Before the fix the log line landed on stdout: the parent failed with TooLong.
      expect(r.boom).toBe("UNKNOWN")
      expect(r.lost).toMatch(/^ConnectionDone/)
      expect(r.exit).toBe(0)
      expect(r.stderr).toContain("level=ERROR")
      expect(r.stderr).toContain("AMP responder for Boom failed; dropping the connection")
      expect(r.stderr).toContain("boom went the responder")
    }))

  it.scopedLive("a line logged before the transport exists, under Stdio.layerDefaultLoggerToStderr, reaches stderr too", () =>
    Effect.gen(function*() {
      const r = yield* drive(["--log-first"])
      expect(r.sum).toBe(5)
      expect(r.boom).toBe("UNKNOWN")
      expect(r.stderr).toContain("child starting, before the transport")
      expect(r.stderr).toContain("AMP responder for Boom failed")
    }))
})
