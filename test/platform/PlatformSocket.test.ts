/**
 * AMP over `@effect/platform` sockets: a WebSocket (platform-node's
 * WebSocket server, a client from `Socket.makeWebSocket`) and a NodeSocket
 * (`NodeSocket.makeNet` against a `NodeSocketServer`), on loopback.
 */
import { NodeSocket, NodeSocketServer } from "@effect/platform-node"
import * as Socket from "@effect/platform/Socket"
import type * as SocketServer from "@effect/platform/SocketServer"
import { describe, expect, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as net from "node:net"
import { Amp } from "../../src/Amp.js"
import * as Argument from "../../src/Argument.js"
import * as Command from "../../src/Command.js"
import * as PlatformSocket from "../../src/PlatformSocket.js"
import * as ProtocolSwitch from "../../src/ProtocolSwitch.js"
import * as Responders from "../../src/Responders.js"
import * as StartTls from "../../src/StartTls.js"
import type { Transport } from "../../src/Transport.js"
import { stateOf } from "../../src/internal/platformSocketTransport.js"
import { fastPathOf } from "../../src/internal/transportFastPath.js"

// --- demo-like commands ----------------------------------------------------

class ZeroDivision extends Data.TaggedError("ZeroDivision")<{ readonly description: string }> {}

const Sum = Command.make("Sum", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer }
})
const Divide = Command.make("Divide", {
  arguments: { numerator: Argument.Integer, denominator: Argument.Integer },
  response: { result: Argument.Float },
  errors: { ZERO_DIVISION: ZeroDivision }
})
const Echo = Command.make("Echo", { arguments: { text: Argument.Unicode }, response: { text: Argument.Unicode } })
/** Never answered: to see what the connection's end does to a call in flight. */
const Hang = Command.make("Hang", {})
/** One-way: no answer. */
const Note = Command.make("Note", { arguments: { text: Argument.Unicode }, requiresAnswer: false })
const SwitchToEcho = ProtocolSwitch.make("SwitchToEcho")

const serverResponders = (hanging?: Deferred.Deferred<void>) =>
  Responders.layer(
    Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b })),
    Responders.respond(Divide, ({ denominator, numerator }) =>
      denominator === 0n
        ? Effect.fail(new ZeroDivision({ description: "float division by zero" }))
        : Effect.succeed({ result: Number(numerator) / Number(denominator) })),
    Responders.respond(Echo, ({ text }) => Effect.succeed({ text })),
    Responders.respond(Hang, () => Effect.zipRight(hanging ? Deferred.succeed(hanging, undefined) : Effect.void, Effect.never)),
    StartTls.respond(() => Effect.succeed({})),
    ProtocolSwitch.respond(SwitchToEcho, () => Effect.succeed(() => Effect.void))
  )

// --- the two kinds of socket -----------------------------------------------

type Kind = "websocket" | "tcp"
const kinds: ReadonlyArray<Kind> = ["websocket", "tcp"]
const transportKind = (kind: Kind) => (kind === "websocket" ? "websocket" : "socket")

const portOf = (server: SocketServer.SocketServer["Type"]) =>
  server.address._tag === "TcpAddress" ? server.address.port : -1

const makeServer = (kind: Kind) =>
  kind === "websocket"
    ? NodeSocketServer.makeWebSocket({ host: "127.0.0.1", port: 0 })
    : NodeSocketServer.make({ host: "127.0.0.1", port: 0 })

/** A client socket to `port`: `Socket.makeWebSocket` (through our wrapper unless `raw`) or `NodeSocket.makeNet`. */
const clientSocket = (kind: Kind, port: number, raw = false) =>
  kind === "websocket"
    ? (raw ? Socket.makeWebSocket(`ws://127.0.0.1:${port}`) : PlatformSocket.makeWebSocket(`ws://127.0.0.1:${port}`)).pipe(
      Effect.provide(NodeSocket.layerWebSocketConstructor)
    )
    : Effect.orDie(NodeSocket.makeNet({ host: "127.0.0.1", port }))

/** An AMP server with the test's responders; `onConnection` gets each server-side connection. */
const startServer = <E = never, R = never>(
  kind: Kind,
  options?: PlatformSocket.AmpOptions & { readonly onConnection?: (amp: Amp) => Effect.Effect<void, E, R> },
  hanging?: Deferred.Deferred<void>
) =>
  Effect.gen(function*() {
    const server = yield* makeServer(kind)
    yield* Effect.forkScoped(PlatformSocket.serve(server, options).pipe(Effect.provide(serverResponders(hanging))))
    return portOf(server)
  })

const connect = (kind: Kind, port: number, responders = Responders.none, options?: PlatformSocket.AmpOptions) =>
  Effect.flatMap(clientSocket(kind, port), (socket) => PlatformSocket.amp(socket, options)).pipe(Effect.provide(responders))

const text = (n: number, seed: number) => {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
  let s = `${seed}:`
  let i = seed
  while (s.length < n) s += alphabet[(i = (i * 7 + 3) % alphabet.length)]
  return s.slice(0, n)
}

// --- AMP over each kind ----------------------------------------------------

for (const kind of kinds) {
  describe(`AMP over ${kind === "websocket" ? "a WebSocket" : "a NodeSocket"}`, () => {
    it.scopedLive("calls go both ways, and the info names the kind", () =>
      Effect.gen(function*() {
        const fromServer = yield* Deferred.make<{ readonly total: bigint; readonly kind: string }>()
        const port = yield* startServer(kind, {
          onConnection: (amp) =>
            Effect.flatMap(amp.callRemote(Sum, { a: 40n, b: 2n }), (r) =>
              Deferred.succeed(fromServer, { total: r.total, kind: amp.info().kind }))
        })
        const client = Responders.layer(Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a * b })))
        const amp = yield* connect(kind, port, client)
        expect(yield* amp.callRemote(Sum, { a: 13n, b: 81n })).toEqual({ total: 94n })
        expect(yield* amp.callRemote(Echo, { text: "über 🐍" })).toEqual({ text: "über 🐍" })
        const error = yield* Effect.flip(amp.callRemote(Divide, { numerator: 1n, denominator: 0n }))
        expect(error).toBeInstanceOf(ZeroDivision)
        // The server's call was answered by the client's responder (a * b).
        expect(yield* Deferred.await(fromServer)).toEqual({ total: 80n, kind: transportKind(kind) })
        expect(amp.info().kind).toBe(transportKind(kind))
      }))

    it.scopedLive("many calls in flight", () =>
      Effect.gen(function*() {
        const port = yield* startServer(kind)
        const amp = yield* connect(kind, port)
        const n = 2000
        const results = yield* Effect.forEach(
          Array.from({ length: n }, (_, i) => i),
          (i) => amp.callRemote(Sum, { a: BigInt(i), b: 1n }),
          { concurrency: "unbounded" }
        )
        expect(results.map((r) => r.total)).toEqual(Array.from({ length: n }, (_, i) => BigInt(i + 1)))
      }))

    it.scopedLive("large values, many at once, each answered with its own", () =>
      Effect.gen(function*() {
        // A small mark, so the write queue fills and drains many times over.
        const port = yield* startServer(kind, { writeHighWaterMark: 64 * 1024 })
        const amp = yield* connect(kind, port, Responders.none, { writeHighWaterMark: 64 * 1024 })
        const texts = Array.from({ length: 80 }, (_, i) => text(60_000, i))
        const answers = yield* Effect.forEach(texts, (t) => amp.callRemote(Echo, { text: t }), { concurrency: "unbounded" })
        expect(answers.length).toBe(texts.length)
        answers.forEach((a, i) => expect(a.text === texts[i]).toBe(true))
      }))

    it.scopedLive("a close sends everything written before it: N one-way calls, then close, and all N arrive", () =>
      Effect.gen(function*() {
        const n = 200
        const big = text(30_000, 7)
        const port = yield* startServer(kind, {
          onConnection: (amp) =>
            Effect.gen(function*() {
              // Wait for the client's hello, then fire N large one-way calls and close at once.
              for (let i = 0; i < n; i++) yield* amp.callRemote(Note, { text: `${i}:${big}` })
              yield* amp.close
            })
        })
        const seen = yield* Ref.make<Array<number>>([])
        const client = Responders.layer(
          Responders.respond(Note, ({ text }) =>
            Effect.as(Ref.update(seen, (s) => [...s, Number(text.slice(0, text.indexOf(":")))]), {}))
        )
        const amp = yield* connect(kind, port, client)
        const ended = yield* amp.ended
        expect(ended._tag).toBe("ConnectionLost")
        expect(yield* Ref.get(seen)).toEqual(Array.from({ length: n }, (_, i) => i))
      }))

    it.scopedLive("StartTLS and a protocol switch fail with TransportUnsupported naming the kind", () =>
      Effect.gen(function*() {
        const port = yield* startServer(kind)
        const amp = yield* connect(kind, port)
        const tls = yield* Effect.flip(amp.startTls())
        expect(tls).toMatchObject({ _tag: "TransportUnsupported", operation: "StartTLS", transport: transportKind(kind) })
        const amp2 = yield* connect(kind, port)
        const switched = yield* Effect.flip(amp2.switchProtocol(SwitchToEcho, {}))
        expect(switched).toMatchObject({ _tag: "TransportUnsupported", operation: "detach", transport: transportKind(kind) })
        // The server answered and switched; the client cannot: its connection ends (it is not left open and mute).
        const end = yield* amp2.ended.pipe(Effect.timeout("5 seconds"))
        expect(end).toMatchObject({ _tag: "ConnectionLost", reason: "error" })
        expect(end.message).toContain("the protocol switch could not take the connection")
        expect((yield* Effect.flip(amp2.callRemote(Hang, {})))._tag).toBe("ConnectionLost")
        const t = yield* Effect.flatMap(clientSocket(kind, port), (s) => PlatformSocket.transport(s))
        // On a transport directly: neither capability is there to call.
        expect([t.startTls, t.detach]).toEqual([undefined, undefined])
        expect(t.info().kind).toBe(transportKind(kind))
      }))

    it.scopedLive("the connection's end fails the calls in flight with ConnectionLost", () =>
      Effect.gen(function*() {
        const hanging = yield* Deferred.make<void>()
        const serverAmp = yield* Deferred.make<Amp>()
        const port = yield* startServer(kind, { onConnection: (amp) => Deferred.succeed(serverAmp, amp) }, hanging)
        const amp = yield* connect(kind, port)
        const calls = yield* Effect.fork(
          Effect.all([amp.callRemote(Hang, {}), amp.callRemote(Hang, {})], { concurrency: "unbounded" })
        )
        yield* Deferred.await(hanging)
        yield* Effect.flatMap(Deferred.await(serverAmp), (s) => s.close)
        const error = yield* Effect.flip(Fiber.join(calls))
        expect(error).toMatchObject({ _tag: "ConnectionLost" })
        expect((yield* amp.ended)._tag).toBe("ConnectionLost")
      }))

    it.scopedLive("a socket that cannot open fails with ConnectionLost", () =>
      Effect.gen(function*() {
        const free = yield* freePort
        const socket = yield* clientSocket(kind, free)
        const error = yield* Effect.flip(PlatformSocket.transport(socket))
        expect(error).toMatchObject({ _tag: "ConnectionLost", reason: "error" })
        expect(error.message).toMatch(/cannot open the socket/)
      }))
  })
}

describe("AMP over a client from Socket.makeWebSocket as it is", () => {
  it.scopedLive("calls work, and the kind is known once a message has come", () =>
    Effect.gen(function*() {
      const port = yield* startServer("websocket")
      const socket = yield* clientSocket("websocket", port, true)
      const amp = yield* PlatformSocket.amp(socket).pipe(Effect.provide(Responders.none))
      const answers = yield* Effect.forEach([1n, 2n, 3n], (a) => amp.callRemote(Sum, { a, b: 10n }), { concurrency: 3 })
      expect(answers).toEqual([{ total: 11n }, { total: 12n }, { total: 13n }])
      expect(yield* amp.callRemote(Echo, { text: text(60_000, 3) })).toEqual({ text: text(60_000, 3) })
      expect(amp.info().kind).toBe("websocket")
      expect(yield* Effect.flip(amp.startTls())).toMatchObject({ _tag: "TransportUnsupported", transport: "websocket" })
    }))
})

// --- backpressure ----------------------------------------------------------

const freePort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
)

/** The `ws` client's methods beyond the DOM's WebSocket. */
interface PausableWebSocket {
  readonly on: (event: "message", f: (data: Uint8Array) => void) => void
  readonly once: (event: "open", f: () => void) => void
  readonly pause: () => void
  readonly resume: () => void
  readonly terminate: () => void
}

/**
 * Writes `chunk` until `write` says to wait and `writable` then stays pending
 * (the peer's kernel buffers take some megabytes before that). Bounded: at
 * most `maxWrites` writes. Returns the bytes written.
 */
const fillUntilBlocked = (t: Transport, chunk: Uint8Array, maxWrites: number) =>
  Effect.gen(function*() {
    let written = 0
    for (let i = 0; i < maxWrites; i++) {
      written += chunk.length
      if (fastPathOf(t)!.offer(chunk)) continue
      // Refused: does it drain on its own (the kernel took it), or is the peer holding it up?
      const drained = yield* Effect.timeoutOption(fastPathOf(t)!.writable, "100 millis")
      if (Option.isNone(drained)) return { written, blocked: true }
    }
    return { written, blocked: false }
  })

/** Lets the writer fiber and the sockets make progress until `f` holds (bounded). */
const until = (f: () => boolean, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 400 && !f(); i++) yield* Effect.sleep("5 millis")
    if (!f()) return yield* Effect.die(new Error(`never happened: ${what}`))
  })

describe("backpressure", () => {
  const mark = 256 * 1024
  const chunk = new Uint8Array(64 * 1024).fill(7)

  it.scopedLive("NodeSocket: a peer that does not read bounds what we queue; writable waits until it reads", () =>
    Effect.gen(function*() {
      let peer: net.Socket | undefined
      let received = 0
      const server = net.createServer((s) => {
        peer = s
        s.pause()
        s.on("data", (b) => (received += b.length))
      }).listen(0, "127.0.0.1")
      yield* Effect.addFinalizer(() => Effect.sync(() => (peer?.destroy(), server.close())))
      yield* Effect.promise(() => new Promise((r) => server.once("listening", r)))
      const socket = yield* clientSocket("tcp", (server.address() as net.AddressInfo).port)
      const t = yield* PlatformSocket.transport(socket, { writeHighWaterMark: mark })
      // The kernel's buffers take some megabytes first; 2000 x 64 KiB (128 MiB) is far more than they hold.
      const { blocked, written: total } = yield* fillUntilBlocked(t, chunk, 2000)
      expect(blocked).toBe(true)
      // Let the socket take what it will; then what we hold stays within the mark plus a write.
      yield* Effect.sleep("50 millis")
      expect(stateOf(t)!.queuedBytes).toBeGreaterThan(mark)
      expect(stateOf(t)!.queuedBytes).toBeLessThanOrEqual(mark + 2 * chunk.length)
      // The public write waits with the rest, until the peer reads.
      const waiting = yield* Effect.fork(t.write(chunk))
      yield* Effect.sleep("100 millis")
      expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
      peer!.resume()
      yield* Fiber.join(waiting)
      const all = total + chunk.length
      yield* until(() => received === all, `all ${all} bytes at the peer (${received})`)
    }))

  it.scopedLive("WebSocket: a client that does not read bounds what the server queues, its bufferedAmount included", () =>
    Effect.gen(function*() {
      const server = yield* makeServer("websocket")
      const got = yield* Deferred.make<Transport>()
      yield* Effect.forkScoped(
        PlatformSocket.serveTransports(server, (t) => Effect.zipRight(Deferred.succeed(got, t), Effect.never), {
          writeHighWaterMark: mark
        })
      )
      let received = 0
      // The `ws` client platform-node brings, which can pause: it stops reading its socket.
      const construct = yield* Effect.provide(Socket.WebSocketConstructor, NodeSocket.layerWebSocketConstructor)
      const client = construct(`ws://127.0.0.1:${portOf(server)}`) as unknown as PausableWebSocket
      client.on("message", (b: Uint8Array) => (received += b.length))
      yield* Effect.addFinalizer(() => Effect.sync(() => client.terminate()))
      yield* Effect.promise(() => new Promise<void>((r) => client.once("open", () => r())))
      client.pause()
      const t = yield* Deferred.await(got)
      const { blocked, written: total } = yield* fillUntilBlocked(t, chunk, 2000)
      expect(blocked).toBe(true)
      yield* Effect.sleep("50 millis")
      const s = stateOf(t)!
      expect(s.socketBufferedBytes).toBeGreaterThan(0)
      expect(s.queuedBytes).toBeLessThanOrEqual(mark + 2 * chunk.length)
      const waiting = yield* Effect.fork(t.write(chunk))
      yield* Effect.sleep("100 millis")
      expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
      client.resume()
      yield* Fiber.join(waiting)
      const all = total + chunk.length
      yield* until(() => received === all, `all ${all} bytes at the client (${received})`)
    }))

  it.scopedLive("NodeSocket: a consumer that does not pull pauses the socket; nothing is lost", () =>
    Effect.gen(function*() {
      const flood = 8 * 1024 * 1024
      const server = net.createServer((s) => {
        s.end(new Uint8Array(flood).fill(1))
      }).listen(0, "127.0.0.1")
      yield* Effect.addFinalizer(() => Effect.sync(() => server.close()))
      yield* Effect.promise(() => new Promise((r) => server.once("listening", r)))
      const socket = yield* clientSocket("tcp", (server.address() as net.AddressInfo).port)
      const t = yield* PlatformSocket.transport(socket, { readHighWaterMark: mark })
      yield* until(() => stateOf(t)!.paused, "the socket paused")
      yield* Effect.sleep("50 millis")
      // A paused socket may still hand over what it had read: a chunk or so past the mark.
      expect(stateOf(t)!.unreadBytes).toBeLessThanOrEqual(mark + 2 * 64 * 1024)
      let total = 0
      for (;;) {
        const chunks = yield* fastPathOf(t)!.takeChunks!
        if (chunks === undefined) break
        for (const c of chunks) total += c.length
      }
      expect(total).toBe(flood)
    }))
})

/** TCP sockets this process holds open (both ends of a loopback connection count). */
const tcpSockets = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length

describe("closing against a peer that never reads nor ends", () => {
  it.scopedLive("NodeSocket: close gives up after closeTimeoutMillis and releases the socket", () =>
    Effect.gen(function*() {
      let peer: net.Socket | undefined
      const server = net.createServer((s) => {
        peer = s
        s.pause()
      }).listen(0, "127.0.0.1")
      yield* Effect.addFinalizer(() => Effect.sync(() => (peer?.destroy(), server.close())))
      yield* Effect.promise(() => new Promise((r) => server.once("listening", r)))
      const socket = yield* clientSocket("tcp", (server.address() as net.AddressInfo).port)
      const t = yield* PlatformSocket.transport(socket, { writeHighWaterMark: 64 * 1024, closeTimeoutMillis: 200 })
      yield* until(() => peer !== undefined, "the peer accepted")
      const open = tcpSockets()
      const chunk = new Uint8Array(64 * 1024).fill(3)
      expect((yield* fillUntilBlocked(t, chunk, 2000)).blocked).toBe(true)
      // Neither the queue nor the peer's end can come; the close must still finish (a generous bound, not a speed check).
      const closed = yield* Effect.timeoutOption(t.close, "10 seconds")
      expect(Option.isSome(closed)).toBe(true)
      expect(yield* Effect.flip(t.write(chunk))).toMatchObject({ _tag: "ConnectionLost", reason: "closed by us" })
      // And the socket was let go, not left ending behind bytes the peer will never read.
      yield* until(() => tcpSockets() === open - 1, `our socket destroyed (${tcpSockets()} TCP sockets open, ${open} before)`)
    }))

  it.scopedLive("WebSocket: a client that never answers the close frame does not hold the server's close", () =>
    Effect.gen(function*() {
      const server = yield* makeServer("websocket")
      const got = yield* Deferred.make<Transport>()
      yield* Effect.forkScoped(
        PlatformSocket.serveTransports(server, (t) => Effect.zipRight(Deferred.succeed(got, t), Effect.never), {
          closeTimeoutMillis: 200
        })
      )
      const construct = yield* Effect.provide(Socket.WebSocketConstructor, NodeSocket.layerWebSocketConstructor)
      const client = construct(`ws://127.0.0.1:${portOf(server)}`) as unknown as PausableWebSocket
      yield* Effect.addFinalizer(() => Effect.sync(() => client.terminate()))
      yield* Effect.promise(() => new Promise<void>((r) => client.once("open", () => r())))
      client.pause()
      const t = yield* Deferred.await(got)
      yield* t.write(new Uint8Array(1000))
      const closed = yield* Effect.timeoutOption(t.close, "10 seconds")
      expect(Option.isSome(closed)).toBe(true)
    }))
})
