/**
 * Interop with a live Twisted peer (test/interop/peers/amp_peer.py), both
 * directions: our client against Twisted's server, Twisted's client against
 * our server, over TCP, UNIX sockets and stdio.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Chunk from "effect/Chunk"
import * as Stream from "effect/Stream"
import type { Amp } from "../../src/Amp.js"
import * as Argument from "../../src/Argument.js"
import * as Responders from "../../src/Responders.js"
import * as NodeAmp from "../../src/node/NodeAmp.js"
import type { TlsOptions } from "../../src/Transport.js"
import { requireTwisted, startPeer } from "../support/twisted.js"
import * as C from "./commands.js"

const PEER = path.join(import.meta.dirname, "peers", "amp_peer.py")
const certs = path.join(import.meta.dirname, "..", "certs")
const cert = (name: string) => path.join(certs, name)
const pem = (name: string) => fs.readFileSync(cert(name), "utf8")
const serverTls: TlsOptions = { cert: pem("server.pem"), key: pem("server.key") }
const clientTls: TlsOptions = { cert: pem("client.pem"), key: pem("client.key") }
const ca = pem("ca.pem")

/** Our client connected to a fresh Twisted server. */
const twistedServer = (args: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    const peer = yield* startPeer(PEER, ["--listen", "tcp:0", ...args])
    const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port: peer.port })
    return amp
  })

/** Twisted's client running `script` against a fresh server of ours; returns its JSON lines. */
const twistedClient = (script: ReadonlyArray<string>, options: { tls?: TlsOptions; lines?: number; twistedArgs?: ReadonlyArray<string>; unix?: boolean } = {}) =>
  Effect.gen(function*() {
    const socketPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "amp-interop-")), "amp.sock")
    const server = yield* NodeAmp.serve(options.unix ? { _tag: "unix", path: socketPath } : { _tag: "tcp", host: "127.0.0.1", port: 0 })
    const target = options.unix ? `unix:${socketPath}` : `tcp:127.0.0.1:${(server.address as { port: number }).port}`
    const peer = yield* startPeer(PEER, ["--connect", target, ...(options.twistedArgs ?? []), "--script", ...script])
    const lines: Array<unknown> = []
    for (let i = 0; i < (options.lines ?? 1); i++) {
      lines.push(JSON.parse(yield* peer.nextLine.pipe(Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error(`no output from ${script}`) }))))
    }
    return lines
  }).pipe(Effect.provide(C.responders(options.tls)))

const edgeCases: ReadonlyArray<Parameters<Amp["callRemote"]>[1] & Record<string, unknown>> = [
  {
    i: 0n, s: new Uint8Array(0), u: "", fl: 0, b: false, d: Argument.AmpDecimal.fromString("0"),
    dt: Argument.AmpDateTime.fromString("2000-01-01T00:00:00.000000-00:00"), li: [], lu: [], al: [], nested: []
  },
  {
    i: -(2n ** 64n) - 1n, s: new Uint8Array(768).map((_, i) => i % 256), u: "h\u00e9llo \u{1f40d} \u4e2d\u6587", fl: Infinity, b: true,
    d: Argument.AmpDecimal.fromString("-1.10E-7"), dt: Argument.AmpDateTime.fromString("2026-11-24T23:59:59.999999+05:45"),
    li: [0n, -1n, 2n ** 53n + 1n, 2n ** 70n], lu: ["", "\u{1f600}", "x".repeat(100)],
    al: [{ x: 1n, y: "one" }, { x: 2n }], nested: [{ inner: [{ z: 1n }, { z: 2n }] }, { inner: [] }],
    p: "/tmp/\u00fcber", o: 7n, dash_name: "dashed"
  },
  {
    i: 2n ** 53n + 1n, s: new Uint8Array(65535).fill(0xff), u: "\u00e9".repeat(30000), fl: -0, b: false,
    d: Argument.AmpDecimal.fromString("Infinity"), dt: Argument.AmpDateTime.fromString("0001-01-01T00:00:00.000001-09:30"),
    li: [1n], lu: ["a"], al: [], nested: []
  },
  {
    i: 12345678901234567890123n, s: new Uint8Array([120]), u: "y", fl: 1e-300, b: true, d: Argument.AmpDecimal.fromString("NaN"),
    dt: Argument.AmpDateTime.fromString("9999-12-31T23:59:59.000000-00:01"), li: [], lu: [], al: [], nested: []
  },
  {
    i: -1n, s: new Uint8Array([1]), u: "w", fl: -Infinity, b: true, d: Argument.AmpDecimal.fromString("1E+2"),
    dt: Argument.AmpDateTime.fromString("2024-02-29T12:00:00.000500+14:00"), li: [], lu: [], al: [], nested: []
  },
  {
    i: 1n, s: new Uint8Array([2]), u: "r", fl: NaN, b: false, d: Argument.AmpDecimal.fromString("sNaN"),
    dt: Argument.AmpDateTime.fromString("2024-02-29T12:00:00.000500-12:00"), li: [], lu: [], al: [], nested: []
  },
  {
    i: 3n, s: new Uint8Array([3]), u: "q", fl: 1.5e16, b: false, d: Argument.AmpDecimal.fromString("-0"),
    dt: Argument.AmpDateTime.fromString("2024-02-29T12:00:00.000500+00:01"), li: [], lu: [], al: [], nested: []
  },
  {
    i: 4n, s: new Uint8Array([4]), u: "p", fl: 0.1, b: false, d: Argument.AmpDecimal.fromString("123.4500"),
    dt: Argument.AmpDateTime.fromString("2024-02-29T12:00:00.000500-00:00"), li: [], lu: [], al: [], nested: []
  }
]

/** Compares through the wire form, so NaN, -0.0, Decimal and DateTime compare as Twisted sees them. */
const wireOf = (value: Record<string, unknown>) =>
  Object.fromEntries(
    Object.entries(C.allFields).flatMap(([wire, arg]) => {
      const field = wire.replace(/-/g, "_")
      const v = value[field]
      return v === undefined ? [] : [[wire, Buffer.from((arg as Argument.Argument<unknown>).toWire(v)).toString("base64")]]
    })
  )

describe("interop with a live Twisted", () => {
  requireTwisted()

  describe("our client, Twisted's server", () => {
    it.scopedLive("Sum", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer()
        expect(yield* amp.callRemote(C.Sum, { a: 13n, b: 81n })).toEqual({ total: 94n })
      }).pipe(Effect.provide(Responders.none)))

    it.scopedLive("Divide, and its mapped ZERO_DIVISION error", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer()
        expect(yield* amp.callRemote(C.Divide, { numerator: 1n, denominator: 4n })).toEqual({ result: 0.25 })
        const error = yield* Effect.flip(amp.callRemote(C.Divide, { numerator: 1n, denominator: 0n }))
        expect(error).toBeInstanceOf(C.ZeroDivision)
        expect((error as C.ZeroDivision).description).toBe("float division by zero")
      }).pipe(Effect.provide(Responders.none)))

    edgeCases.forEach((value, n) =>
      it.scopedLive(`every argument type round trips through Twisted: edge case ${n}`, () =>
        Effect.gen(function*() {
          const amp = yield* twistedServer()
          const back = yield* amp.callRemote(C.EchoAll, value as never)
          expect(wireOf(back as Record<string, unknown>)).toEqual(wireOf(value))
        }).pipe(Effect.provide(Responders.none)))
    )

    it.scopedLive("a mapped error arrives as its class", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer()
        const error = yield* Effect.flip(amp.callRemote(C.Fail, { kind: "mapped" }))
        expect(error).toMatchObject({ _tag: "MappedError", description: "mapped failure" })
        expect(yield* amp.callRemote(C.Sum, { a: 1n, b: 1n })).toEqual({ total: 2n })
      }).pipe(Effect.provide(Responders.none)))

    it.scopedLive("an unmapped failure is UNKNOWN and Twisted closes the connection", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer()
        const error = yield* Effect.flip(amp.callRemote(C.Fail, { kind: "unknown" }))
        expect(error).toMatchObject({ _tag: "UnknownRemoteError" })
        expect((yield* amp.ended)._tag).toBe("ConnectionLost")
      }).pipe(Effect.provide(Responders.none)))

    it.scopedLive("a fatal error arrives, then the connection closes", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer()
        const error = yield* Effect.flip(amp.callRemote(C.Fail, { kind: "fatal" }))
        expect(error).toMatchObject({ _tag: "FatalError", description: "fatal failure" })
        expect((yield* amp.ended)._tag).toBe("ConnectionLost")
      }).pipe(Effect.provide(Responders.none)))

    it.scopedLive("a QuitBox answer (Twisted's Quit responder): the answer, then the connection ends", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer()
        expect(yield* amp.callRemote(C.Quit, {})).toEqual({ bye: "so long" })
        expect((yield* amp.ended)._tag).toBe("ConnectionLost")
      }).pipe(Effect.provide(Responders.none)))

    it.scopedLive("an unknown command is UNHANDLED", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer()
        const error = yield* Effect.flip(amp.callRemoteString("NoSuchCommand", { x: "1" }))
        expect(error).toMatchObject({ _tag: "UnhandledCommand" })
      }).pipe(Effect.provide(Responders.none)))

    it.scopedLive("requiresAnswer false: notes arrive, nothing is awaited", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer()
        for (let i = 0; i < 5; i++) yield* amp.callRemote(C.Notify, { text: `note ${i}` })
        const { notes } = yield* amp.callRemote(C.GetNotes, {})
        expect(notes.slice(-5)).toEqual(["note 0", "note 1", "note 2", "note 3", "note 4"])
      }).pipe(Effect.provide(Responders.none)))

    it.scopedLive("5000 pipelined calls", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer()
        const results = yield* Effect.forEach(
          Array.from({ length: 5000 }, (_, i) => BigInt(i)),
          (i) => amp.callRemote(C.Sum, { a: i, b: i }),
          { concurrency: "unbounded" }
        )
        expect(results.every((r, i) => r.total === BigInt(2 * i))).toBe(true)
      }).pipe(Effect.provide(Responders.none)))

    it.scopedLive("answers out of order reach their callers", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer()
        const order: Array<bigint> = []
        yield* Effect.forEach([60n, 10n, 40n, 0n, 20n], (ms, i) =>
          Effect.tap(amp.callRemote(C.Delay, { ms, id: BigInt(i) }), (r) => Effect.sync(() => order.push(r.id))), { concurrency: "unbounded" })
        expect(order).toEqual([3n, 1n, 4n, 2n, 0n])
      }).pipe(Effect.provide(Responders.none)))

    it.scopedLive("both peers call each other on one connection", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer()
        expect(yield* amp.callRemote(C.CallBack, { n: 41n })).toEqual({ total: 142n })
      }).pipe(Effect.provide(Responders.layer(Responders.respond(C.Sum, ({ a, b }) => Effect.succeed({ total: a + b + 100n }))))))

    it.scopedLive("StartTLS with verification both ways; calls queued during the handshake", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer(["--cert", cert("server.pem"), "--key", cert("server.key"), "--ca", cert("ca.pem")])
        const [session, queued] = yield* Effect.all([amp.startTls({ ...clientTls, ca }), amp.callRemote(C.Sum, { a: 2n, b: 3n })], {
          concurrency: "unbounded"
        })
        expect(session.authorized).toBe(true)
        expect(session.peerCertificate?.subject.CN).toBe("effect-amp test server")
        expect(queued).toEqual({ total: 5n })
        expect(yield* amp.callRemote(C.Secure, {})).toEqual({ tls: true, peer: "effect-amp test client" })
      }).pipe(Effect.provide(Responders.none)))

    it.scopedLive("StartTLS without verification (Twisted's default)", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer(["--cert", cert("server.pem"), "--key", cert("server.key")])
        const session = yield* amp.startTls()
        expect(session.authorized).toBe(false)
        expect(yield* amp.callRemote(C.Secure, {})).toMatchObject({ tls: true })
        // Large values leave uncopied, beside their boxes' headers in one writev: also through TLS.
        const texts = ["\u00e9".repeat(30000), "x".repeat(9000), "y".repeat(100), "z".repeat(65535)]
        const echoed = yield* Effect.forEach(texts, (text) => amp.callRemote(C.Echo, { text }), { concurrency: "unbounded" })
        expect(echoed.map((r) => r.text)).toEqual(texts)
      }).pipe(Effect.provide(Responders.none)))

    it.scopedLive("StartTLS with a certificate Twisted rejects ends with a typed error", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer(["--cert", cert("server.pem"), "--key", cert("server.key"), "--ca", cert("ca.pem")])
        const result = yield* Effect.exit(
          Effect.zipRight(amp.startTls({ cert: pem("rogue.pem"), key: pem("rogue.key") }), amp.callRemote(C.Sum, { a: 1n, b: 1n }))
        )
        expect(Exit.isFailure(result)).toBe(true)
        expect(["PeerVerifyError", "TlsError"]).toContain((yield* amp.ended)._tag)
      }).pipe(Effect.provide(Responders.none)))

    it.scopedLive("we refuse a Twisted server whose certificate our authorities did not sign", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer(["--cert", cert("rogue.pem"), "--key", cert("rogue.key")])
        const error = yield* Effect.flip(amp.startTls({ ca }))
        expect(error._tag).toBe("TlsError")
      }).pipe(Effect.provide(Responders.none)))

    it.scopedLive("protocol switch to a raw echo", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer()
        const { connection } = yield* amp.switchProtocol(C.SwitchToEcho, {})
        yield* connection.write(new TextEncoder().encode("raw after switch"))
        const back = yield* connection.incoming.pipe(Stream.mapConcat((b) => [...b]), Stream.take(16), Stream.runCollect)
        expect(new TextDecoder().decode(new Uint8Array(Chunk.toArray(back)))).toBe("raw after switch")
        expect((yield* Effect.flip(amp.callRemote(C.Sum, { a: 1n, b: 1n })))._tag).toBe("ProtocolSwitched")
      }).pipe(Effect.provide(Responders.none)))

    it.scopedLive("a switch Twisted refuses leaves AMP usable", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer()
        const error = yield* Effect.flip(amp.switchProtocol(C.SwitchRefused, {}))
        expect(error).toMatchObject({ _tag: "Refused", description: "not today" })
        expect(yield* amp.callRemote(C.Sum, { a: 1n, b: 1n })).toEqual({ total: 2n })
      }).pipe(Effect.provide(Responders.none)))

    it.scopedLive("connection loss fails every outstanding call at once", () =>
      Effect.gen(function*() {
        const amp = yield* twistedServer()
        const waiting = yield* Effect.forEach(Array.from({ length: 10 }, (_, i) => BigInt(i)), (id) =>
          Effect.fork(amp.callRemote(C.Delay, { ms: 60000n, id })))
        yield* Effect.fork(amp.callRemote(C.Disconnect, {}))
        for (const f of waiting) {
          const exit = yield* Fiber.await(f)
          expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toContain("ConnectionLost")
        }
      }).pipe(Effect.provide(Responders.none)))

    it.scopedLive("over a UNIX socket", () =>
      Effect.gen(function*() {
        const socketPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "amp-tw-")), "amp.sock")
        yield* startPeer(PEER, ["--listen", `unix:${socketPath}`])
        const amp = yield* NodeAmp.connect({ _tag: "unix", path: socketPath })
        expect(yield* amp.callRemote(C.Echo, { text: "unix \u{1f40d}" })).toEqual({ text: "unix \u{1f40d}" })
      }).pipe(Effect.provide(Responders.none)))
  })

  describe("Twisted's client, our server", () => {
    it.scopedLive("Sum", () =>
      Effect.gen(function*() {
        expect(yield* twistedClient(["sum"])).toEqual([{ total: 94 }])
      }))

    it.scopedLive("every argument type with edge values round trips through our server", () =>
      Effect.gen(function*() {
        const lines = (yield* twistedClient(["echoall"], { lines: 8 })) as Array<{ ok: boolean }>
        for (const line of lines) expect(line).toMatchObject({ ok: true, mismatches: [] })
      }))

    it.scopedLive("errors: mapped, UNHANDLED, UNKNOWN", () =>
      Effect.gen(function*() {
        const [r] = yield* twistedClient(["errors"])
        expect(r).toEqual({
          divide: "ZERO_DIVISION: float division by zero",
          mapped: "MAPPED: mapped failure",
          unhandled: "UNHANDLED",
          unknown: "UNKNOWN"
        })
      }))

    it.scopedLive("a fatal error reaches Twisted, then we close the connection", () =>
      Effect.gen(function*() {
        expect(yield* twistedClient(["fatal"], { lines: 2 })).toEqual([{ fatal: "FATAL: fatal failure" }, { closed: true }])
      }))

    it.scopedLive("requiresAnswer false from Twisted", () =>
      Effect.gen(function*() {
        expect(yield* twistedClient(["notify"])).toEqual([{ echo: "after notes" }])
      }))

    it.scopedLive("5000 pipelined calls from Twisted", () =>
      Effect.gen(function*() {
        expect(yield* twistedClient(["pipeline", "5000"])).toEqual([{ ok: true, n: 5000 }])
      }))

    it.scopedLive("our answers come back out of order", () =>
      Effect.gen(function*() {
        expect(yield* twistedClient(["delays"])).toEqual([{ order: [3, 1, 4, 2, 0] }])
      }))

    it.scopedLive("our responder calls Twisted back on the same connection", () =>
      Effect.gen(function*() {
        expect(yield* twistedClient(["callback"])).toEqual([{ total: 42 }])
      }))

    it.scopedLive("Twisted asks for StartTLS with verification; we verify it back", () =>
      Effect.gen(function*() {
        const lines = yield* twistedClient(["starttls"], {
          tls: { ...serverTls, ca },
          twistedArgs: ["--cert", cert("client.pem"), "--key", cert("client.key"), "--ca", cert("ca.pem")]
        })
        expect(lines).toEqual([{ total: 5, tls: true, peer: "effect-amp test client" }])
      }))

    it.scopedLive("Twisted asks for StartTLS without verification", () =>
      Effect.gen(function*() {
        const lines = yield* twistedClient(["starttls"], { tls: { ...serverTls } })
        expect(lines).toEqual([{ total: 5, tls: true, peer: "" }])
      }))

    it.scopedLive("protocol switch: the bytes our side sends with the answer reach Twisted's next protocol", () =>
      Effect.gen(function*() {
        expect(yield* twistedClient(["switch"])).toEqual([{ received: "HELLO;raw bytes after the switch" }])
      }))

    it.scopedLive("a switch we refuse leaves AMP usable for Twisted", () =>
      Effect.gen(function*() {
        expect(yield* twistedClient(["switch-refused"], { lines: 2 })).toEqual([{ refused: "not today" }, { total: 2 }])
      }))

    it.scopedLive("answerThenClose, as Twisted's QuitBox: Twisted gets the answer, then the close; a Sum sent after Quit fails", () =>
      Effect.gen(function*() {
        // Twisted's own server would answer that Sum, because it came in the same read (where we differ, README).
        expect(yield* twistedClient(["quit"])).toEqual([{ bye: "so long", after: "ConnectionDone", closed: true }])
      }))

    it.scopedLive("we drop the connection: Twisted's outstanding calls all fail", () =>
      Effect.gen(function*() {
        const [r] = (yield* twistedClient(["lose-while-waiting"])) as Array<{ failures: Array<string> }>
        expect(r!.failures.length).toBe(10)
      }))

    it.scopedLive("over a UNIX socket", () =>
      Effect.gen(function*() {
        expect(yield* twistedClient(["sum"], { unix: true })).toEqual([{ total: 94 }])
      }))
  })

  describe("a Twisted parent driving our process over stdio", () => {
    it.scopedLive("Sum through our child's stdin and stdout", () =>
      Effect.gen(function*() {
        const child = path.join(import.meta.dirname, "..", "node", "fixtures", "stdio-server.ts")
        const peer = yield* startPeer(PEER, ["--script", "sum", "--spawn", process.execPath, "--import", "tsx", child])
        expect(JSON.parse(yield* peer.nextLine)).toEqual({ total: 94 })
      }))
  })
})

