/**
 * The demo divides like Python: a Twisted client calling Divide on edge
 * values gets the same answers from `effect-amp serve` as from a Twisted
 * server of the same commands (test/interop/peers/amp_peer.py), the
 * overflow case included (UNKNOWN, then the server closes the connection).
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as path from "node:path"
import * as readline from "node:readline"
import * as Effect from "effect/Effect"
import { spawnScoped } from "../support/child.js"
import { startPeer } from "../support/twisted.js"

const root = path.join(import.meta.dirname, "..", "..")
const PEER = path.join(import.meta.dirname, "peers", "amp_peer.py")
const CLIENT = path.join(import.meta.dirname, "peers", "divide_client.py")

/** `effect-amp serve --port 0`, stopped with the scope; its address as `tcp:HOST:PORT`. */
const serve = Effect.gen(function*() {
  const child = yield* spawnScoped(() => spawn(process.execPath, ["--import", "tsx", path.join(root, "src", "cli", "main.ts"), "serve", "--port", "0"], {
        cwd: root,
        stdio: ["ignore", "pipe", "inherit"]
      }))
  const lines = readline.createInterface({ input: child.stdout! })
  const first = yield* Effect.async<string>((resume) => {
    lines.once("line", (l) => resume(Effect.succeed(l)))
  }).pipe(Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("serve printed nothing") }))
  // Later lines are serve's log; read them so that the pipe never fills.
  lines.on("line", () => undefined)
  return first.replace("listening on ", "")
})

type Answer =
  | { readonly result: string }
  | { readonly error: string; readonly closed?: boolean; readonly description?: string }

/** Twisted's client dividing every pair against `target`. */
const divide = (target: string, pairs: ReadonlyArray<readonly [bigint, bigint]>) =>
  Effect.gen(function*() {
    const client = yield* startPeer(CLIENT, [target])
    client.process.stdin!.end(JSON.stringify(pairs.map(([n, d]) => [n.toString(), d.toString()])))
    const line = yield* client.nextLine.pipe(
      Effect.timeoutFail({ duration: "45 seconds", onTimeout: () => new Error(`no answers: ${client.stderr()}`) })
    )
    return JSON.parse(line) as ReadonlyArray<Answer>
  })

/** The edge values, and what Python answers for each. */
const cases: ReadonlyArray<readonly [bigint, bigint, Answer]> = [
  [10n ** 400n, 10n ** 399n, { result: "10.0" }],
  [2n ** 1024n, 2n ** 1023n, { result: "2.0" }],
  [1n, 3n, { result: "0.3333333333333333" }],
  [-7n, 2n, { result: "-3.5" }],
  [0n, -5n, { result: "-0.0" }],
  [2n ** 53n + 1n, 1n, { result: "9007199254740992.0" }],
  [10n ** 400n, 1n, { error: "UNKNOWN", closed: true }],
  [-(10n ** 400n), 3n, { error: "UNKNOWN", closed: true }],
  [2n ** 1024n - 2n ** 970n, 1n, { error: "UNKNOWN", closed: true }], // ties to even: 2^1024
  [2n ** 1024n - 2n ** 970n - 1n, 1n, { result: "1.7976931348623157e+308" }],
  [1n, 2n ** 1075n, { result: "0.0" }],
  [1n, 2n ** 1075n - 1n, { result: "5e-324" }],
  [-1n, 10n ** 400n, { result: "-0.0" }],
  [3n, 2n ** 1076n, { result: "5e-324" }],
  [10n ** 308n * 17n, 10n, { result: "1.7e+308" }],
  [12345678901234567890123456789n, 98765432109876543210n, { result: "124999998.8609375" }],
  [1n, 0n, { error: "ZERO_DIVISION", description: "float division by zero" }],
  [(2n ** 53n + 1n) * 3n ** 40n, 3n ** 40n * 2n ** 1100n, { result: "6.63123685e-316" }] // subnormal, rounded
]

describe("Divide, as Python divides", () => {
  it.scopedLive("a Twisted client gets the same answers from effect-amp serve as from a Twisted server", () =>
    Effect.gen(function*() {
      const pairs = cases.map(([n, d]) => [n, d] as const)
      const twisted = yield* startPeer(PEER, ["--listen", "tcp:0"])
      const fromTwisted = yield* divide(`tcp:127.0.0.1:${twisted.port}`, pairs)
      const fromOurs = yield* divide(yield* serve, pairs)
      expect(fromOurs).toEqual(fromTwisted)
      // And Twisted's answers are the ones written down here (so that neither side can drift quietly).
      cases.forEach(([n, d, want], i) => {
        expect({ n: String(n).slice(0, 40), d: String(d).slice(0, 40), answer: fromTwisted[i] })
          .toEqual({ n: String(n).slice(0, 40), d: String(d).slice(0, 40), answer: want })
      })
    }))
})
