/**
 * `effect-amp serve --module` serving a user module to a Twisted client,
 * and how every subcommand logs: one format for every line, every line
 * under --log-level, no ANSI codes off a terminal, and the verbose "sent"
 * line only for a box that was sent.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as AmpBox from "../../src/AmpBox.js"
import * as BinaryBoxProtocol from "../../src/BinaryBoxProtocol.js"
import * as MemoryTransport from "../../src/MemoryTransport.js"
import { startPeer } from "../support/twisted.js"
import { certs, fixtures, run, runAsync, start } from "./support.js"

const SERVICE = path.join(fixtures, "service.ts")
const ANSI = /\u001b\[/

describe("effect-amp serve --module", () => {
  it.scopedLive("serves a user module's responders, errors and layer to a Twisted client", () =>
    Effect.gen(function*() {
      const server = yield* start(["serve", "--port", "0", "--module", SERVICE])
      expect(server.first).toMatch(/^listening on tcp:127\.0\.0\.1:\d+$/)
      const port = server.address.split(":").pop()!
      const client = yield* startPeer(path.join(fixtures, "greet_client.py"), ["127.0.0.1", port])
      expect(yield* client.exited).toBe(0)
      expect(client.lines.map((l) => JSON.parse(l))).toEqual([
        { greeting: "hello, twisted hello, twisted", length: 29 },
        { banned: "not you" },
        { stats: { sum: String(3n + 2n ** 70n), mean: 0.75, ok: true, blob: [255, 0], xs: [1, 2] } }
      ])
      // Only the module is served: the demo's Sum is not.
      expect(run(["call", server.address, "Sum", "a=1", "b=2"]).stderr).toContain("UNHANDLED")
    }), { timeout: 120_000 })

  it.scopedLive("with every flag serve has: --unix, --tls-cert, --verbose, --log-format, and SIGTERM drains", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "amp-mod-"))
      const socket = path.join(dir, "s.sock")
      const server = yield* start([
        "serve",
        "--unix",
        socket,
        "--module",
        SERVICE,
        "--verbose",
        "--log-format",
        "json",
        "--drain-timeout",
        "0",
        "--tls-cert",
        path.join(certs, "server.pem"),
        "--tls-key",
        path.join(certs, "server.key")
      ])
      expect(server.first).toBe(`listening on unix:${socket}`)
      expect(run(["call", `unix:${socket}`, "Greet", "name=ann"]).stdout).toBe('{"greeting":"hello, ann","length":"10"}\n')
      // The module's responders, with StartTLS beside them.
      const tls = run(["call", `unix:${socket}`, "Greet", "name=ann", "--starttls", "--ca", path.join(certs, "ca.pem")])
      expect(tls).toMatchObject({ code: 0, stdout: '{"greeting":"hello, ann","length":"10"}\n' })
      // A running command when SIGTERM comes is answered (UNKNOWN, after --drain-timeout 0) before the server exits.
      const slow = yield* Effect.fork(runAsync(["call", "--json", `unix:${socket}`, "Slow", "ms:=30000"]))
      yield* server.until(() => server.stderr().includes('received {\\"_command\\":\\"Slow\\"'), "the Slow call")
      server.kill("SIGTERM")
      expect(yield* server.exited).toBe(0)
      const answered = yield* Fiber.join(slow)
      expect(answered.stdout).toMatch(/^\{"ok":false,"error":\{"code":"UNKNOWN"/)
      const lines = server.stderr().trimEnd().split("\n").map((l) => JSON.parse(l) as { message: string; logLevel: string })
      expect(lines.some((l) => l.message.startsWith('received {"_command":"Greet"'))).toBe(true)
      expect(lines.some((l) => l.message.startsWith('sent {"greeting":"hello, ann"'))).toBe(true)
    }), { timeout: 120_000 })

  it("a module that cannot be served says why (exit 2)", () => {
    const none = run(["serve", "--port", "0", "--module", path.join(fixtures, "no-responders.ts")])
    expect(none.code).toBe(2)
    expect(none.stderr).toContain("it exports no `responders` to serve")
    const missing = run(["serve", "--port", "0", "--module", path.join(fixtures, "nope.ts")])
    expect(missing.code).toBe(2)
  }, 120_000)
})

describe("effect-amp logging", () => {
  it.scopedLive("one format for every line: logfmt and json when asked, pretty without ANSI off a terminal", () =>
    Effect.gen(function*() {
      for (const [format, shape] of [["logfmt", /^timestamp=\S+ level=INFO fiber=#\d+ message=/], ["json", /^\{.*"logLevel":"INFO".*\}$/], [
        "pretty",
        /^(\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(#\d+\):|  server: )/
      ]] as const) {
        const args = ["serve", "--port", "0", "--verbose", ...(format === "pretty" ? [] : ["--log-format", format])]
        const server = yield* start(args)
        expect(run(["call", server.address, "Sum", "a=1", "b=2"]).code).toBe(0)
        server.kill("SIGTERM")
        yield* server.exited
        const lines = server.stderr().trimEnd().split("\n")
        // Connection lines and box lines alike.
        expect(lines.some((l) => l.includes("connection from"))).toBe(true)
        expect(lines.some((l) => l.includes("received {"))).toBe(true)
        expect(lines.some((l) => l.includes("sent {"))).toBe(true)
        for (const l of lines) expect(l, format).toMatch(shape)
        expect(server.stderr()).not.toMatch(ANSI)
      }
    }), { timeout: 120_000 })

  it.scopedLive("every line obeys --log-level, wherever it is on the line", () =>
    Effect.gen(function*() {
      const quiet = yield* start(["serve", "--port", "0", "--verbose", "--log-level", "warning"])
      expect(run(["call", quiet.address, "Sum", "a=1", "b=2", "--log-level=debug"]).stderr).toBe("")
      quiet.kill("SIGTERM")
      yield* quiet.exited
      expect(quiet.stderr()).toBe("")
    }), { timeout: 120_000 })

  it("--help and usage errors carry no ANSI codes when piped", () => {
    for (const args of [["--help"], ["serve", "--help"], ["call", "--help"], ["tap", "--help"], ["decode", "--help"], ["encode", "--help"], ["call"]]) {
      const r = run(args)
      expect(r.stdout + r.stderr, args.join(" ")).not.toMatch(ANSI)
      expect(r.stdout + r.stderr).toMatch(args[0] === "call" && args.length === 1 ? /Missing argument <TARGET>/ : /effect-amp/)
    }
  }, 120_000)

  it.scoped("the verbose \"sent\" line is written only for a box that was sent", () =>
    Effect.gen(function*() {
      const traced: Array<string> = []
      const [a] = yield* MemoryTransport.makePair()
      const protocol = yield* BinaryBoxProtocol.make(a.transport, { trace: (d, box) => traced.push(`${d} ${[...box.keys()].join(",")}`) })
      yield* protocol.sendBox(AmpBox.make({ first: "1" }))
      // A value AMP cannot carry is refused: it was never sent.
      const tooLong = yield* Effect.flip(protocol.sendBox(AmpBox.make({ big: new Uint8Array(65536) })))
      expect(tooLong._tag).toBe("TooLong")
      yield* protocol.close
      const late = yield* Effect.flip(protocol.sendBox(AmpBox.make({ late: "1" })))
      expect(late._tag).toBe("ConnectionLost")
      expect(traced).toEqual(["sent first"])
    }))
})
