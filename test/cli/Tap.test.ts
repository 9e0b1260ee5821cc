/**
 * `effect-amp tap` as a child process between a Twisted client and a
 * Twisted server. Recording relays on both sides of the tap check that the
 * bytes that left one peer are exactly those that reached the other, and
 * that they are the bytes of a direct connection; the tap's JSON lines are
 * checked for what it says it shows.
 *
 *   Twisted client -> recorder A -> tap -> recorder B -> Twisted server
 *   Twisted client -> recorder D ----------------------> Twisted server
 */
import { describe, expect, it } from "@effect/vitest"
import * as net from "node:net"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import { encodeBoxes } from "../../src/BoxCodec.js"
import * as AmpBox from "../../src/AmpBox.js"
import { requireTwisted, startPeer } from "../support/twisted.js"
import { bytesOf, certs, PEER, type Recorded, recorder, run, start } from "./support.js"

type TapLine = { readonly kind: string; readonly conn: number; readonly dir?: string; readonly [k: string]: unknown }

const sameBytes = (a: Recorded, b: Recorded) => {
  expect(bytesOf(a.c2s).equals(bytesOf(b.c2s))).toBe(true)
  expect(bytesOf(a.s2c).equals(bytesOf(b.s2c))).toBe(true)
}

/** Runs a Twisted client scenario against `port`; its result lines. */
const scenario = (port: number, script: ReadonlyArray<string>) =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* startPeer(PEER, ["--connect", `tcp:127.0.0.1:${port}`, "--script", ...script, "--ca", path.join(certs, "ca.pem")])
    const code = yield* client.exited
    expect(code, client.stderr()).toBe(0)
    return client.lines.map((l) => JSON.parse(l) as unknown)
  }))

describe("effect-amp tap", () => {
  it.scopedLive("between Twisted peers: pipelined calls, errors, StartTLS and a switch pass byte for byte, and are shown", () =>
    Effect.gen(function*() {
      requireTwisted()
      const server = yield* startPeer(PEER, [
        "--listen",
        "tcp:0",
        "--cert",
        path.join(certs, "server.pem"),
        "--key",
        path.join(certs, "server.key")
      ])
      const behind = yield* recorder(server.port)
      const direct = yield* recorder(server.port)
      const tap = yield* start(["tap", "tcp:127.0.0.1:0", `tcp:127.0.0.1:${behind.port}`, "--json", "--switch", "SwitchToEcho", "--switch", "SwitchRefused"])
      expect(tap.first).toMatch(/^listening on tcp:127\.0\.0\.1:\d+$/)
      const front = yield* recorder(Number(tap.address.split(":").pop()))

      const scenarios: ReadonlyArray<{ readonly script: ReadonlyArray<string>; readonly connections: number; readonly deterministic: boolean }> = [
        { script: ["pipeline", "300"], connections: 1, deterministic: true },
        { script: ["errors"], connections: 2, deterministic: true },
        { script: ["starttls"], connections: 1, deterministic: false },
        { script: ["switch"], connections: 1, deterministic: true },
        { script: ["switch-refused"], connections: 1, deterministic: true }
      ]
      let total = 0
      for (const s of scenarios) {
        const viaTap = yield* scenario(front.port, s.script)
        const straight = yield* scenario(direct.port, s.script)
        expect(viaTap).toEqual(straight)
        total += s.connections
        yield* front.waitClosed(total)
        yield* behind.waitClosed(total)
        yield* direct.waitClosed(total)
      }
      expect(front.connections.length).toBe(total)
      expect(behind.connections.length).toBe(total)
      let i = 0
      for (const s of scenarios) {
        for (let k = 0; k < s.connections; k++, i++) {
          // What the client sent is what the server got, and back.
          sameBytes(front.connections[i]!, behind.connections[i]!)
          // And it is what a direct connection carries (TLS sessions differ from run to run).
          if (s.deterministic) sameBytes(front.connections[i]!, direct.connections[i]!)
          expect(bytesOf(front.connections[i]!.c2s).length).toBeGreaterThan(0)
        }
      }

      yield* tap.until((ls) => ls.filter((l) => l.includes('"kind":"close"')).length === total, `${total} close lines`)
      const lines = tap.lines.map((l) => JSON.parse(l) as TapLine)
      const of = (conn: number) => lines.filter((l) => l.conn === conn)
      for (const l of lines) expect(typeof l.time === "string" && !Number.isNaN(Date.parse(l.time as string))).toBe(true)
      expect(lines.filter((l) => l.kind === "violation")).toEqual([])

      // Pipelined: 300 asks then their 300 answers, each paired with its ask and a latency.
      const pipeline = of(1)
      const asks = pipeline.filter((l) => l.kind === "ask")
      const answers = pipeline.filter((l) => l.kind === "answer")
      expect(asks.length).toBe(300)
      expect(answers.length).toBe(300)
      expect(asks.every((l) => l.dir === "c>s" && l.command === "Sum")).toBe(true)
      expect(answers.every((l) => l.dir === "s>c" && l.command === "Sum" && typeof l.latencyMs === "number" && l.latencyMs >= 0)).toBe(true)
      expect(answers.map((l) => l.tag)).toEqual(asks.map((l) => l.tag))
      expect(answers[41]!.box).toEqual({ total: "82", _answer: asks[41]!.tag })

      // Errors: each paired with its ask's command.
      const errors = [...of(2), ...of(3)].filter((l) => l.kind === "error")
      expect(errors.map((l) => [l.command, (l.box as Record<string, string>)._error_code])).toEqual([
        ["Divide", "ZERO_DIVISION"],
        ["Fail", "MAPPED"],
        ["NoSuchCommand", "UNHANDLED"],
        ["Fail", "UNKNOWN"],
        ["Fail", "FATAL"]
      ])

      // StartTLS: the answer, the handshake in both directions, then opaque records only.
      const tls = of(4)
      expect(tls.find((l) => l.kind === "answer")).toMatchObject({ command: "StartTLS" })
      expect(tls.find((l) => l.kind === "tls" && l.dir === "c>s")).toMatchObject({ record: "handshake ClientHello" })
      expect(tls.find((l) => l.kind === "tls" && l.dir === "s>c")).toMatchObject({ record: "handshake ServerHello" })
      expect(tls.some((l) => l.kind === "opaque" && l.dir === "c>s")).toBe(true)
      expect(tls.some((l) => l.kind === "opaque" && l.dir === "s>c")).toBe(true)
      const afterAnswer = tls.slice(tls.findIndex((l) => l.kind === "answer") + 1)
      expect(afterAnswer.every((l) => ["tls", "opaque", "close"].includes(l.kind))).toBe(true)
      // Every byte after the StartTLS answer box is accounted for as a TLS record.
      const conn = front.connections[3]!
      const shown = (dir: string) =>
        afterAnswer.filter((l) => l.dir === dir).reduce((n, l) => n + (l.kind === "tls" ? (l.bytes as number) : l.kind === "opaque" ? (l.bytes as number) : 0), 0)
      const plainC2s = encodeBoxes([AmpBox.make({ _command: "StartTLS", _ask: "1" })]).length
      expect(shown("c>s")).toBe(bytesOf(conn.c2s).length - plainC2s)

      // The switch: the answer, then raw bytes counted each way (26 out, 26 echoed).
      const sw = of(5)
      expect(sw.find((l) => l.kind === "answer")).toMatchObject({ command: "SwitchToEcho" })
      const raw = sw.filter((l) => l.kind === "raw")
      expect(raw.filter((l) => l.dir === "c>s").at(-1)).toMatchObject({ total: 26 })
      expect(raw.filter((l) => l.dir === "s>c").at(-1)).toMatchObject({ total: 26 })

      // A refused switch: the bytes held after its ask are boxes after all.
      const refused = of(6)
      expect(refused.filter((l) => l.kind !== "open" && l.kind !== "close").map((l) => [l.kind, l.command])).toEqual([
        ["ask", "SwitchRefused"],
        ["error", "SwitchRefused"],
        ["ask", "Sum"],
        ["answer", "Sum"]
      ])
    }), { timeout: 240_000 })

  it.scopedLive("a violation it cannot parse is reported once and forwarded as is, with everything after it", () =>
    Effect.gen(function*() {
      // A plain TCP sink that keeps what it gets and answers with its own bytes.
      const got: Array<Buffer> = []
      const reply = Buffer.concat([Buffer.from(encodeBoxes([AmpBox.make({ _answer: "1", x: "y" })])), Buffer.from("\xff\xfegarbage back", "latin1")])
      const sink = net.createServer({ allowHalfOpen: true }, (s) => {
        s.on("data", (c: Buffer) => got.push(c))
        s.on("end", () => s.end(reply))
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void sink.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.sync(() => sink.close())
      )
      const tap = yield* start(["tap", "tcp:127.0.0.1:0", `tcp:127.0.0.1:${(sink.address() as net.AddressInfo).port}`, "--json"])
      const box = Buffer.from(encodeBoxes([AmpBox.make({ _command: "Sum", _ask: "1", a: "1" })]))
      // A key length of 0x0101 = 257: no AMP parser can read on; then 3 MB more, in small writes.
      const bad = Buffer.from([0x01, 0x01, 0x41, 0x42])
      const rest = Buffer.alloc(3 * 1024 * 1024, 0x5a)
      const sent = Buffer.concat([box, bad, rest])
      const back = yield* Effect.async<Buffer>((resume) => {
        const chunks: Array<Buffer> = []
        const c = net.connect({ host: "127.0.0.1", port: Number(tap.address.split(":").pop()), allowHalfOpen: true }, () => {
          for (let at = 0; at < sent.length; at += 7919) c.write(sent.subarray(at, at + 7919))
          c.end()
        })
        c.on("data", (d: Buffer) => chunks.push(d))
        c.on("end", () => resume(Effect.succeed(Buffer.concat(chunks))))
      })
      expect(Buffer.concat(got).equals(sent)).toBe(true)
      expect(back.equals(reply)).toBe(true)
      yield* tap.until((ls) => ls.some((l) => l.includes('"kind":"close"')), "the close line")
      const lines = tap.lines.map((l) => JSON.parse(l) as TapLine)
      const violations = lines.filter((l) => l.kind === "violation")
      expect(violations).toHaveLength(2)
      expect(violations[0]).toMatchObject({ dir: "c>s", offset: box.length })
      expect(violations[0]!.detail).toContain("key length prefix 257")
      expect(lines.find((l) => l.kind === "answer")).toMatchObject({ dir: "s>c", command: "Sum", tag: "1" })
      expect(violations[1]).toMatchObject({ dir: "s>c", offset: reply.length - 14 })
      const raw = lines.filter((l) => l.kind === "raw" && l.dir === "c>s")
      expect(raw.at(-1)).toMatchObject({ total: bad.length + rest.length })
    }), { timeout: 120_000 })

  it.scopedLive("pretty lines name the direction, connection and time; a bad address is a usage error", () =>
    Effect.gen(function*() {
      requireTwisted()
      const server = yield* startPeer(PEER, ["--listen", "tcp:0"])
      const tap = yield* start(["tap", "tcp:127.0.0.1:0", `tcp:127.0.0.1:${server.port}`])
      yield* scenario(Number(tap.address.split(":").pop()), ["sum"])
      yield* tap.until((ls) => ls.some((l) => l.includes(" closed ")), "the closed line")
      expect(tap.lines.find((l) => l.includes(" ask "))).toMatch(/^\d\d:\d\d:\d\d\.\d{3} #1 -> ask 1 Sum \{"a":"13","b":"81"\}$/)
      expect(tap.lines.find((l) => l.includes(" answer "))).toMatch(/^\d\d:\d\d:\d\d\.\d{3} #1 <- answer 1 Sum \d+\.\dms \{"total":"94"\}$/)
      const tls = run(["tap", "tcp:127.0.0.1:0", "tls:127.0.0.1:1"])
      expect(tls.code).toBe(2)
      expect(tls.stderr).toContain("does not speak TLS itself")
      expect(run(["tap", "nonsense", "tcp:127.0.0.1:1"]).code).toBe(2)
    }), { timeout: 120_000 })
})
