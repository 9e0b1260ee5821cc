/**
 * The Node transport over real loopback sockets, at the byte level: round
 * trips, read and write backpressure, closing, and handing the connection
 * to another protocol.
 */
import { describe, expect, it } from "@effect/vitest"
import type * as net from "node:net"
import * as path from "node:path"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as NodeConnect from "../../src/node/NodeConnect.js"
import * as NodeServer from "../../src/node/NodeServer.js"
import * as NodeTransport from "../../src/node/NodeTransport.js"
import { readState, socketOf } from "../../src/node/internal/diagnostics.js"
import type { WithTlsAndDetach } from "../../src/Transport.js"
import {
  bytes,
  collect,
  eventually,
  once,
  rawClient,
  rawServer,
  readBytes,
  readToEnd,
  tempDir,
  text,
  echo,
  local,
  portOf
} from "./fixtures/support.js"
import { fastPathOf } from "../../src/internal/transportFastPath.js"


/** A server whose handler hands each transport to the test, and stays until the test lets go. */
const capturingServer = (options?: NodeServer.Options) =>
  Effect.gen(function*() {
    const accepted = yield* Deferred.make<WithTlsAndDetach>()
    const release = yield* Deferred.make<void>()
    const server = yield* NodeServer.listen(local, (t) =>
      Effect.zipRight(Deferred.succeed(accepted, t), Deferred.await(release)), options)
    return { server, accepted: Deferred.await(accepted), release: Deferred.succeed(release, undefined) }
  })

describe("round trips", () => {
  it.scopedLive("TCP: bytes go out and come back in order; info names both ends", () =>
    Effect.gen(function*() {
      const server = yield* NodeServer.listen(local, echo)
      const client = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port: portOf(server) })
      const payload = Buffer.alloc(300_000)
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) % 251
      expect(fastPathOf(client)!.offer(bytes("hello "))).toBe(true)
      fastPathOf(client)!.offer(payload)
      const back = yield* readBytes(client, 6 + payload.length)
      expect(text(back.subarray(0, 6))).toBe("hello ")
      expect(Buffer.compare(Buffer.from(back.subarray(6)), payload)).toBe(0)
      const info = client.info()
      expect(info.kind).toBe("tcp")
      expect(info.peerAddress).toBe(`tcp:127.0.0.1:${portOf(server)}`)
      expect(info.localAddress).toMatch(/^tcp:127\.0\.0\.1:\d+$/)
      expect(info.tls).toBeUndefined()
    }))

  it.scopedLive("UNIX: a round trip, and the socket path as the address on both sides", () =>
    Effect.gen(function*() {
      const socketPath = path.join(yield* tempDir, "echo.sock")
      const seen = yield* Deferred.make<string | undefined>()
      const server = yield* NodeServer.listen({ _tag: "unix", path: socketPath }, (t) =>
        Effect.zipRight(Deferred.succeed(seen, t.info().localAddress), echo(t)))
      expect(server.addressText).toBe(`unix:${socketPath}`)
      const client = yield* NodeConnect.connectUnix({ path: socketPath })
      fastPathOf(client)!.offer(bytes("over "))
      fastPathOf(client)!.offer(bytes("unix"))
      expect(text(yield* readBytes(client, 9))).toBe("over unix")
      expect(client.info()).toMatchObject({ kind: "unix", peerAddress: `unix:${socketPath}` })
      expect(yield* Deferred.await(seen)).toBe(`unix:${socketPath}`)
    }))

  it.scopedLive("incoming is a Stream of the same bytes, ending when the peer ends", () =>
    Effect.gen(function*() {
      const { port } = yield* rawServer((socket) => socket.end("one two three"))
      const client = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port })
      const all = yield* Stream.runCollect(client.incoming)
      expect(text(Buffer.concat([...all]))).toBe("one two three")
    }))

  it.scopedLive("a reset connection fails incoming with ConnectionLost, reason reset", () =>
    Effect.gen(function*() {
      const { port } = yield* rawServer((socket) => socket.once("data", () => socket.resetAndDestroy()))
      const client = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port })
      fastPathOf(client)!.offer(bytes("provoke"))
      const error = yield* Effect.flip(readToEnd(client))
      expect(error).toMatchObject({ _tag: "ConnectionLost", reason: "reset" })
    }))
})

describe("read backpressure", () => {
  it.scopedLive("a consumer that does not pull pauses the socket; what waits stays bounded while the peer writes 50 MB", () =>
    Effect.gen(function*() {
      const total = 50 * 1024 * 1024
      const { accepted, server } = yield* capturingServer({ transport: { readHighWaterMark: 256 * 1024 } })
      const peer = yield* rawClient(portOf(server))
      // The peer writes as fast as its socket lets it.
      const writer = yield* Effect.fork(Effect.gen(function*() {
        const block = Buffer.alloc(64 * 1024, 0x61)
        for (let sent = 0; sent < total; sent += block.length) {
          if (!peer.write(block)) yield* once(peer, "drain")
        }
      }))
      const transport = yield* accepted
      yield* eventually(() => readState(transport)!.paused)
      const paused = readState(transport)!
      expect(paused.bytes).toBeLessThanOrEqual(256 * 1024 + 64 * 1024)
      expect(paused.chunks).toBeLessThanOrEqual(17)
      expect((socketOf(transport) as net.Socket).isPaused()).toBe(true)
      // Now a consumer takes it all; what waits never passes the marks.
      let received = 0
      let mostWaiting = 0
      while (received < total) {
        mostWaiting = Math.max(mostWaiting, readState(transport)!.bytes)
        const chunks = yield* fastPathOf(transport)!.takeChunks!
        for (const c of chunks!) received += c.length
      }
      yield* Fiber.join(writer)
      expect(received).toBe(total)
      expect(mostWaiting).toBeLessThanOrEqual(256 * 1024 + 64 * 1024)
    }), { timeout: 60_000 })

  it.scopedLive("the chunk count is a mark of its own (readBufferChunks)", () =>
    Effect.gen(function*() {
      const { accepted, server } = yield* capturingServer({ transport: { readBufferChunks: 2 } })
      const peer = yield* rawClient(portOf(server))
      const transport = yield* accepted
      // Small chunks, one at a time, so that each is its own 'data' event.
      for (let i = 0; i < 3; i++) {
        peer.write(bytes(`chunk ${i};`))
        yield* eventually(() => readState(transport)!.chunks === i + 1)
      }
      expect(readState(transport)).toEqual({ chunks: 3, bytes: 24, paused: true })
      expect(text(yield* readBytes(transport, 24))).toBe("chunk 0;chunk 1;chunk 2;")
      expect(readState(transport)!.paused).toBe(false)
    }))
})

describe("write backpressure", () => {
  it.scopedLive("write says false past the mark; writable completes once the socket drains", () =>
    Effect.gen(function*() {
      const { accepted, server } = yield* capturingServer()
      const client = yield* NodeConnect.connectTcp({
        host: "127.0.0.1",
        port: portOf(server),
        transport: { writeHighWaterMark: 64 * 1024 }
      })
      const receiver = yield* accepted
      // Nobody reads on the other side: the kernel's buffers fill, then ours.
      const block = new Uint8Array(256 * 1024).fill(0x62)
      let written = 0
      for (;;) {
        written += block.length
        if (!fastPathOf(client)!.offer(block)) break
      }
      const socket = socketOf(client) as net.Socket
      expect(socket.writableLength).toBeGreaterThan(64 * 1024)
      // The public write waits with the rest, until the peer reads (the kernel may still take some first).
      let waiting = yield* Effect.fork(client.write(block))
      for (let i = 0; i < 50 && Option.isSome(yield* Effect.zipRight(Effect.sleep("100 millis"), Fiber.poll(waiting))); i++) {
        written += block.length
        waiting = yield* Effect.fork(client.write(block))
      }
      expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
      // The reader starts: everything arrives, and the writer may go on.
      const reader = yield* Effect.fork(readBytes(receiver, written + block.length))
      yield* Fiber.join(waiting)
      expect(socket.writableLength).toBeLessThanOrEqual(64 * 1024)
      expect((yield* Fiber.join(reader)).length).toBe(written + block.length)
    }), { timeout: 60_000 })
})

describe("closing", () => {
  it.scopedLive("close sends what was written, ends gracefully, and is idempotent", () =>
    Effect.gen(function*() {
      const got = yield* Deferred.make<string>()
      const server = yield* NodeServer.listen(local, (t) => Effect.flatMap(readToEnd(t), (b) => Deferred.succeed(got, text(b))))
      const client = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port: portOf(server) })
      fastPathOf(client)!.offer(bytes("last words"))
      yield* Effect.all([client.close, client.close], { concurrency: "unbounded" })
      yield* client.close
      expect(yield* Deferred.await(got)).toBe("last words")
      expect(socketOf(client)!.destroyed).toBe(true)
      expect(fastPathOf(client)!.offer(bytes("late"))).toBe(false)
      expect((yield* Effect.flip(client.write(bytes("late"))))._tag).toBe("ConnectionLost")
      expect(yield* fastPathOf(client)!.takeChunks!).toBeUndefined()
    }))

  it.scopedLive("a peer that never ends its side is cut off after the close timeout", () =>
    Effect.gen(function*() {
      const { port } = yield* rawServer(() => undefined, { allowHalfOpen: true })
      const client = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port, transport: { closeTimeoutMillis: 100 } })
      yield* client.close
      expect(socketOf(client)!.destroyed).toBe(true)
    }))

  it.scopedLive("the scope closes the connection; the peer sees a clean end", () =>
    Effect.gen(function*() {
      const seen = yield* Deferred.make<ReturnType<typeof collect>>()
      const { port } = yield* rawServer((socket) => void Deferred.unsafeDone(seen, Effect.succeed(collect(socket))))
      const socket = yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port })
        fastPathOf(client)!.offer(bytes("bye"))
        return socketOf(client)!
      }))
      expect(socket.destroyed).toBe(true)
      const received = yield* Deferred.await(seen)
      expect(yield* received.waitFor(100)).toBe("bye")
      expect(received.ended()).toBe(true)
    }))
})

describe("detach", () => {
  it.scopedLive("the raw connection gets the leftover, then what was buffered, then later bytes, in order", () =>
    Effect.gen(function*() {
      const { accepted, server } = yield* capturingServer()
      const peer = yield* rawClient(portOf(server))
      const transport = yield* accepted
      peer.write("AMP|NEXT1")
      const first = yield* readBytes(transport, 9)
      // The box protocol consumed "AMP|"; the rest is the next protocol's.
      const leftover = first.subarray(4)
      peer.write("NEXT2")
      yield* eventually(() => readState(transport)!.bytes === 5)
      const raw = yield* transport.detach(leftover)
      // The transport is done: its stream ends and writes are refused.
      expect(yield* fastPathOf(transport)!.takeChunks!).toBeUndefined()
      expect(fastPathOf(transport)!.offer(bytes("x"))).toBe(false)
      expect((yield* Effect.flip(transport.detach(new Uint8Array())))._tag).toBe("TransportUnsupported")
      peer.write("NEXT3")
      const pull = yield* Stream.toPull(raw.incoming)
      let got = ""
      while (got.length < 15) got += (yield* pull).pipe(Chunk.toArray, (c) => text(Buffer.concat(c)))
      expect(got).toBe("NEXT1NEXT2NEXT3")
      const back = collect(peer)
      yield* raw.write(bytes("reply"))
      expect(yield* back.waitFor(5)).toBe("reply")
      expect(raw.info().kind).toBe("tcp")
      // The peer's end is the raw connection's end.
      peer.end()
      expect(Option.isNone(yield* Effect.flip(pull))).toBe(true)
    }))

  it.scopedLive("once handed over: StartTLS and writable say so, and close still closes the socket", () =>
    Effect.gen(function*() {
      const { accepted, server } = yield* capturingServer()
      const peer = yield* rawClient(portOf(server))
      const transport = yield* accepted
      const raw = yield* transport.detach(new Uint8Array())
      const tls = yield* Effect.flip(transport.startTls({}, new Uint8Array()))
      expect(tls).toMatchObject({ _tag: "TransportUnsupported", transport: "tcp (handed to another protocol)" })
      expect(yield* Effect.flip(fastPathOf(transport)!.writable)).toMatchObject({ reason: "closed by us", detail: "handed to another protocol" })
      const back = collect(peer)
      yield* raw.write(bytes("still mine"))
      expect(yield* back.waitFor(10)).toBe("still mine")
      yield* raw.end
      expect(socketOf(transport)!.destroyed).toBe(true)
      // Closed after being handed over: still handed over, and written bytes are refused.
      expect((yield* Effect.flip(transport.detach(new Uint8Array())))._tag).toBe("TransportUnsupported")
      expect((yield* Effect.flip(raw.write(bytes("late"))))._tag).toBe("ConnectionLost")
    }))

  it.scopedLive("detachToDuplex hands over the socket itself, leftover and buffered bytes first", () =>
    Effect.gen(function*() {
      const { accepted, server } = yield* capturingServer()
      const peer = yield* rawClient(portOf(server))
      const transport = yield* accepted
      peer.write("AMP|one,")
      const first = yield* readBytes(transport, 8)
      peer.write("two,")
      yield* eventually(() => readState(transport)!.bytes === 4)
      const duplex = yield* NodeTransport.detachToDuplex(transport, first.subarray(4))
      expect(duplex).toBe(socketOf(transport))
      expect(yield* fastPathOf(transport)!.takeChunks!).toBeUndefined()
      const received = collect(duplex)
      peer.write("three")
      expect(yield* received.waitFor(13)).toBe("one,two,three")
      const back = collect(peer)
      duplex.write("ok")
      expect(yield* back.waitFor(2)).toBe("ok")
    }))

  it.scopedLive("detachToDuplex after the peer ended: the leftover, then the end", () =>
    Effect.gen(function*() {
      const { accepted, server } = yield* capturingServer()
      const peer = yield* rawClient(portOf(server))
      const transport = yield* accepted
      peer.end("AMP|tail")
      const first = yield* readBytes(transport, 8)
      expect(yield* fastPathOf(transport)!.takeChunks!).toBeUndefined()
      const duplex = yield* NodeTransport.detachToDuplex(transport, first.subarray(4))
      const received = collect(duplex)
      expect(yield* received.waitFor(100)).toBe("tail")
      expect(received.ended()).toBe(true)
    }))
})
