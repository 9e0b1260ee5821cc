/**
 * SIGTERM under load, against a live Twisted client: a server process
 * (test/interop/fixtures/drain-server.ts, NodeAmp.serve under
 * NodeRuntime.runMain) holds 100 running calls of a slow responder from a
 * Twisted client (peers/drain_client.py) when the signal arrives. Responders
 * that finish within the drain deadline get their answers out; the rest are
 * answered `UNKNOWN`, which Twisted raises as UnknownRemoteError; the
 * connection closes cleanly and the process exits 0 within the deadline
 * plus a margin.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as path from "node:path"
import * as readline from "node:readline"
import * as Effect from "effect/Effect"
import { spawnScoped } from "../support/child.js"
import { requireTwisted, startPeer } from "../support/twisted.js"

const root = path.join(import.meta.dirname, "..", "..")
const SERVER = path.join(import.meta.dirname, "fixtures", "drain-server.ts")
const CLIENT = path.join(import.meta.dirname, "peers", "drain_client.py")

/** The fixture server, with its stdout as lines; SIGKILLed with the scope if still running. */
const startServer = (drainTimeoutMillis: number, expected: number) =>
  Effect.gen(function*() {
    const child = yield* spawnScoped(() => spawn(process.execPath, ["--import", "tsx", SERVER, String(drainTimeoutMillis), String(expected)], { cwd: root }))
    let stderr = ""
    child.stderr.on("data", (d) => (stderr += String(d)))
    const lines: Array<string> = []
    const waiters = new Set<() => void>()
    readline.createInterface({ input: child.stdout }).on("line", (l) => {
      lines.push(l)
      for (const w of [...waiters]) w()
    })
    /** Waits (bounded) for a stdout line matching `pattern`. */
    const line = (pattern: RegExp) =>
      Effect.async<string>((resume) => {
        const check = () => {
          const found = lines.find((l) => pattern.test(l))
          if (found !== undefined) {
            waiters.delete(check)
            resume(Effect.succeed(found))
          }
        }
        waiters.add(check)
        check()
        return Effect.sync(() => void waiters.delete(check))
      }).pipe(Effect.timeoutFail({
        duration: "30 seconds",
        onTimeout: () => new Error(`the server printed no ${pattern}; stdout ${JSON.stringify(lines)}, stderr:\n${stderr}`)
      }))
    const exited = Effect.async<{ readonly code: number | null; readonly at: number }>((resume) => {
      if (child.exitCode !== null) return resume(Effect.succeed({ code: child.exitCode, at: Date.now() }))
      child.once("exit", (code) => resume(Effect.succeed({ code, at: Date.now() })))
    })
    const port = Number((yield* line(/^listening tcp /)).split(" ")[3])
    return { child, port, line, exited, stderr: () => stderr }
  })

interface Outcome {
  readonly answers: number
  readonly errors: Record<string, number>
  readonly descriptions: ReadonlyArray<string>
  readonly closed: string
}

/** 100 Slow(ms) calls from Twisted; SIGTERM once all 100 run; the client's outcome and the server's exit. */
const sigtermUnderLoad = (drainTimeoutMillis: number, ms: number) =>
  Effect.gen(function*() {
    requireTwisted()
    const server = yield* startServer(drainTimeoutMillis, 100)
    const client = yield* startPeer(CLIENT, [String(server.port), "100", String(ms)])
    expect(JSON.parse(yield* client.nextLine)).toEqual({ sent: 100 })
    yield* server.line(/^running 100$/)
    const signalled = Date.now()
    server.child.kill("SIGTERM")
    const outcome = JSON.parse(yield* client.nextLine.pipe(Effect.timeout("30 seconds"))) as Outcome
    const exit = yield* server.exited.pipe(Effect.timeout("30 seconds"))
    return { outcome, code: exit.code, tookMillis: exit.at - signalled, stderr: server.stderr() }
  })

describe("SIGTERM with 100 Twisted calls in flight", () => {
  it.scopedLive("responders that finish within the deadline: all 100 answers arrive, the connection closes cleanly, exit 0", () =>
    Effect.gen(function*() {
      // 1 s responders, a 5 s deadline.
      const { code, outcome, stderr, tookMillis } = yield* sigtermUnderLoad(5000, 1000)
      expect(outcome, stderr).toEqual({ answers: 100, errors: {}, descriptions: [], closed: "ConnectionDone" })
      expect(code).toBe(0)
      // Bounded by the deadline (plus start-up noise), not by the 2 s close timeout on top.
      expect(tookMillis).toBeLessThan(5000 + 3000)
    }))

  it.scopedLive("responders slower than the deadline: all 100 get UnknownRemoteError, and the process exits within deadline + margin", () =>
    Effect.gen(function*() {
      // 60 s responders, a 1 s deadline.
      const { code, outcome, stderr, tookMillis } = yield* sigtermUnderLoad(1000, 60_000)
      expect(outcome.answers, stderr).toBe(0)
      expect(outcome.errors).toEqual({ UnknownRemoteError: 100 })
      expect(outcome.descriptions).toHaveLength(1)
      expect(outcome.descriptions[0]).toMatch(/shut down before answering/)
      expect(outcome.closed).toBe("ConnectionDone")
      expect(code).toBe(0)
      expect(tookMillis).toBeGreaterThanOrEqual(1000)
      expect(tookMillis).toBeLessThan(1000 + 3000)
    }))
})
