/**
 * `maxConnections`: a connection beyond the limit is closed as it arrives,
 * with one warning through Effect's logger, and the connections already
 * open keep answering; the default follows the open-file limit; and
 * `effect-amp serve --max-connections` / `--drain-timeout` / `--partial-box-timeout`.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as path from "node:path"
import * as readline from "node:readline"
import * as Effect from "effect/Effect"
import { spawnScoped } from "../support/child.js"
import * as Logger from "effect/Logger"
import * as Demo from "../../src/cli/Demo.js"
import * as Responders from "../../src/Responders.js"
import * as NodeAmp from "../../src/node/NodeAmp.js"
import * as NodeServer from "../../src/node/NodeServer.js"
import { collect, eventually, local, portOf, rawClient } from "./fixtures/support.js"

/** A logger that keeps every line (level and text) instead of printing it. */
const captureLogs = () => {
  const lines: Array<{ readonly level: string; readonly text: string }> = []
  const logger = Logger.make(({ logLevel, message }) => {
    const parts = Array.isArray(message) ? message : [message]
    lines.push({ level: logLevel.label, text: parts.map(String).join(" ") })
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/** Waits for a raw socket to be closed by the other side; the bytes it got before. */
const closedByServer = (socket: import("node:net").Socket) =>
  Effect.async<void>((resume) => {
    if (socket.destroyed) return resume(Effect.void)
    socket.once("close", () => resume(Effect.void))
    socket.resume()
  })

const demo = Responders.layer(...Demo.responders)

describe("maxConnections", () => {
  it.scopedLive("the N+1th connection is closed at once with one warning; the first N still answer", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const n = 3
      const server = yield* NodeAmp.serve(local, { maxConnections: n }).pipe(Effect.provide(demo))
      const address = { _tag: "tcp", host: "127.0.0.1", port: portOf(server) } as const
      const clients = yield* Effect.forEach(
        Array.from({ length: n }, (_, i) => i),
        (i) =>
          Effect.gen(function*() {
            const amp = yield* NodeAmp.connect(address).pipe(Effect.provide(Responders.none))
            expect(yield* amp.callRemote(Demo.Sum, { a: BigInt(i), b: 1n })).toEqual({ total: BigInt(i + 1) })
            return amp
          })
      )
      expect(yield* server.connections).toBe(n)
      const extra = yield* rawClient(portOf(server))
      const extraPort = extra.localPort
      const got = collect(extra)
      yield* closedByServer(extra)
      expect(got.text()).toBe("")
      yield* eventually(() => logs.lines.some((l) => l.text.includes("refused a connection")))
      const refusals = logs.lines.filter((l) => l.text.includes("refused a connection"))
      expect(refusals).toHaveLength(1)
      expect(refusals[0]).toMatchObject({ level: "WARN" })
      expect(refusals[0]!.text).toContain(`${n} connections open (maxConnections)`)
      expect(refusals[0]!.text).toContain(`127.0.0.1:${extraPort}`)
      // The others are untouched.
      for (const [i, amp] of clients.entries()) {
        expect(yield* amp.callRemote(Demo.Sum, { a: BigInt(i), b: 10n })).toEqual({ total: BigInt(i + 10) })
      }
      expect(yield* server.connections).toBe(n)
      // Once one leaves, there is room again.
      yield* clients[0]!.close
      yield* eventually(() => Effect.runSync(server.connections) === n - 1)
      const again = yield* NodeAmp.connect(address).pipe(Effect.provide(Responders.none))
      expect(yield* again.callRemote(Demo.Sum, { a: 2n, b: 2n })).toEqual({ total: 4n })
      expect(logs.lines.filter((l) => l.text.includes("refused a connection"))).toHaveLength(1)
    }).pipe(Effect.provide(logs.layer))
  })

  it("the default is 10000, or the open-file limit less 128 when that is lower", () => {
    const limits = (soft: string, hard: string) =>
      `Limit                     Soft Limit           Hard Limit           Units     \n` +
      `Max processes             63704                63704                processes \n` +
      `Max open files            ${soft.padEnd(20)} ${hard.padEnd(20)} files     \n`
    expect(NodeServer.defaultMaxConnections(limits("1024", "1024"))).toBe(896)
    expect(NodeServer.defaultMaxConnections(limits("4096", "4096"))).toBe(3968)
    expect(NodeServer.defaultMaxConnections(limits("1048576", "1048576"))).toBe(10000)
    expect(NodeServer.defaultMaxConnections(limits("unlimited", "unlimited"))).toBe(10000)
    expect(NodeServer.defaultMaxConnections(limits("100", "100"))).toBe(1)
    expect(NodeServer.defaultMaxConnections(undefined)).toBe(10000)
    // This process: Node raised its soft limit to the hard one at start-up.
    expect(NodeServer.defaultMaxConnections()).toBeGreaterThan(0)
  })
})

// ---------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------

const root = path.join(import.meta.dirname, "..", "..")
const main = path.join(root, "src", "cli", "main.ts")

/** `effect-amp serve ARGS`, with its output; killed with the scope. */
const startServe = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const child = yield* spawnScoped(() => spawn(process.execPath, ["--import", "tsx", main, "serve", ...args], { cwd: root }))
    const stdout = collect(child.stdout)
    const stderr = collect(child.stderr)
    const first = yield* Effect.async<string>((resume) => {
      readline.createInterface({ input: child.stdout }).once("line", (l) => resume(Effect.succeed(l)))
    }).pipe(Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error(`serve printed nothing: ${stderr.text()}`) }))
    const exited = Effect.async<number | null>((resume) => {
      if (child.exitCode !== null) return resume(Effect.succeed(child.exitCode))
      child.once("exit", (code) => resume(Effect.succeed(code)))
    })
    return { child, first, output: () => stdout.text() + stderr.text(), exited }
  })

describe("effect-amp serve", () => {
  it.scopedLive("--max-connections 1: a second connection is closed at once, with a warning; the first still answers", () =>
    Effect.gen(function*() {
      const serve = yield* startServe(["--port", "0", "--max-connections", "1"])
      const port = Number(serve.first.split(":")[2])
      const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port }).pipe(Effect.provide(Responders.none))
      expect(yield* amp.callRemote(Demo.Sum, { a: 1n, b: 2n })).toEqual({ total: 3n })
      const extra = yield* rawClient(port)
      yield* closedByServer(extra)
      yield* eventually(() => serve.output().includes("refused a connection"))
      expect(serve.output()).toMatch(/WARN.*refused a connection .*1 connections open \(maxConnections\)/)
      expect(yield* amp.callRemote(Demo.Sum, { a: 3n, b: 4n })).toEqual({ total: 7n })
    }))

  it.scopedLive("--drain-timeout 30: SIGTERM with an idle client closes it and exits 0 without waiting out the deadline", () =>
    Effect.gen(function*() {
      const serve = yield* startServe(["--port", "0", "--drain-timeout", "30"])
      const port = Number(serve.first.split(":")[2])
      const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port }).pipe(Effect.provide(Responders.none))
      expect(yield* amp.callRemote(Demo.Sum, { a: 1n, b: 2n })).toEqual({ total: 3n })
      serve.child.kill("SIGTERM")
      // Nothing is running: the server closes the connection itself rather than wait out 30 s.
      expect(yield* amp.ended.pipe(Effect.timeout("10 seconds"))).toMatchObject({ _tag: "ConnectionLost", reason: "closed" })
      expect(yield* serve.exited.pipe(Effect.timeout("10 seconds"))).toBe(0)
    }))

  it.scopedLive("--partial-box-timeout 0.3: a connection holding half a box is closed (the default would hold it 60 s)", () =>
    Effect.gen(function*() {
      const serve = yield* startServe(["--port", "0", "--partial-box-timeout", "0.3"])
      const port = Number(serve.first.split(":")[2])
      const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port }).pipe(Effect.provide(Responders.none))
      const half = yield* rawClient(port)
      // A key length and half the key "_command", then nothing.
      half.write(Buffer.from("\x00\x08_com", "latin1"))
      yield* closedByServer(half).pipe(
        Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("the half box was held past 10 s") })
      )
      // The connection that sends whole boxes is untouched.
      expect(yield* amp.callRemote(Demo.Sum, { a: 1n, b: 2n })).toEqual({ total: 3n })
    }))

  it.scopedLive("a negative --drain-timeout is refused (exit 2)", () =>
    Effect.gen(function*() {
      const child = spawn(process.execPath, ["--import", "tsx", main, "serve", "--port", "0", "--drain-timeout", "-1"], { cwd: root })
      const out = collect(child.stdout)
      const err = collect(child.stderr)
      const code = yield* Effect.async<number | null>((resume) => void child.once("exit", (c) => resume(Effect.succeed(c))))
      expect(code).toBe(2)
      expect(out.text() + err.text()).toContain("--drain-timeout takes 0 or more seconds")
    }))
})

