/**
 * AMP over real loopback sockets: TCP, UNIX, TLS, StartTLS in both roles,
 * protocol switches, stdio, and what is left after a scope closes.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Duplex } from "node:stream"
import * as tls from "node:tls"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { Amp } from "../../src/Amp.js"
import * as AmpBox from "../../src/AmpBox.js"
import * as BoxCodec from "../../src/BoxCodec.js"
import { BoxDecoder } from "../../src/BoxCodec.js"
import * as Argument from "../../src/Argument.js"
import * as BinaryBoxProtocol from "../../src/BinaryBoxProtocol.js"
import * as Command from "../../src/Command.js"
import * as Demo from "../../src/cli/Demo.js"
import * as ProtocolSwitch from "../../src/ProtocolSwitch.js"
import * as Responders from "../../src/Responders.js"
import * as StartTls from "../../src/StartTls.js"
import * as NodeAmp from "../../src/node/NodeAmp.js"
import * as NodeConnect from "../../src/node/NodeConnect.js"
import * as RawDuplex from "../../src/node/RawDuplex.js"
import * as Stdio from "../../src/node/Stdio.js"
import type { TlsOptions } from "../../src/Transport.js"

const certs = path.join(import.meta.dirname, "..", "certs")
const pem = (name: string) => fs.readFileSync(path.join(certs, name), "utf8")
const serverTls = { cert: pem("server.pem"), key: pem("server.key") }
const clientTls = { cert: pem("client.pem"), key: pem("client.key") }
const ca = pem("ca.pem")

const SwitchToEcho = ProtocolSwitch.make("SwitchToEcho")
/** The next protocol greets first, in the same turn as the answer, then echoes. */
const echoSwitch = ProtocolSwitch.respond(SwitchToEcho, () =>
  Effect.succeed((raw) =>
    Effect.gen(function*() {
      yield* raw.write(new TextEncoder().encode("HELLO;"))
      yield* raw.incoming.pipe(Stream.runForEach((b) => raw.write(b)), Effect.ignore)
    }).pipe(Effect.ignore)
  ))

const responders = (tlsAnswer: TlsOptions = { ...serverTls, ca }) =>
  Responders.layer(...Demo.responders, StartTls.respond(() => Effect.succeed(tlsAnswer)), echoSwitch)

const portOf = (address: { readonly _tag: string }) => (address as unknown as { port: number }).port

const readText = (incoming: Stream.Stream<Uint8Array, unknown>, n: number) =>
  incoming.pipe(Stream.mapConcat((b) => [...b]), Stream.take(n), Stream.runCollect, Effect.map((c) =>
    new TextDecoder().decode(new Uint8Array(Chunk.toArray(c)))))

describe("NodeAmp over TCP and UNIX sockets", () => {
  it.scopedLive("a client calls a server on a free TCP port", () =>
    Effect.gen(function*() {
      const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 })
      expect(portOf(server.address)).toBeGreaterThan(0)
      expect(server.addressText).toMatch(/^tcp:127\.0\.0\.1:\d+$/)
      const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port: portOf(server.address) })
      expect(yield* amp.callRemote(Demo.Sum, { a: 13n, b: 81n })).toEqual({ total: 94n })
      expect(amp.info().peerAddress).toBe(server.addressText)
    }).pipe(Effect.provide(responders())))

  it.scopedLive("UNIX sockets, and the socket file goes with the server's scope", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "amp-"))
      const socketPath = path.join(dir, "amp.sock")
      yield* Effect.scoped(Effect.gen(function*() {
        yield* NodeAmp.serve({ _tag: "unix", path: socketPath })
        expect(fs.existsSync(socketPath)).toBe(true)
        const amp = yield* NodeAmp.connect({ _tag: "unix", path: socketPath })
        expect(yield* amp.callRemote(Demo.Echo, { text: "über 🐍" })).toEqual({ text: "über 🐍" })
      }))
      expect(fs.existsSync(socketPath)).toBe(false)
    }).pipe(Effect.provide(responders())))

  it.scopedLive("a stale UNIX socket file is replaced; a live one is refused", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "amp-"))
      const socketPath = path.join(dir, "amp.sock")
      // A socket file whose listener died without cleaning up.
      spawnSync(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, "SIGKILL"))`])
      expect(fs.lstatSync(socketPath).isSocket()).toBe(true)
      yield* NodeAmp.serve({ _tag: "unix", path: socketPath })
      const second = yield* Effect.flip(NodeAmp.serve({ _tag: "unix", path: socketPath }))
      expect(second).toMatchObject({ _tag: "ListenError", address: `unix:${socketPath}` })
    }).pipe(Effect.provide(responders())))

  it.scopedLive("a refused connection is a typed ConnectError naming the address", () =>
    Effect.gen(function*() {
      const free = yield* Effect.promise(() =>
        new Promise<number>((resolve) => {
          const s = net.createServer().listen(0, "127.0.0.1", () => {
            const port = (s.address() as net.AddressInfo).port
            s.close(() => resolve(port))
          })
        })
      )
      const error = yield* Effect.flip(NodeConnect.tcp("127.0.0.1", free))
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "refused", address: `tcp:127.0.0.1:${free}` })
      const missing = yield* Effect.flip(NodeConnect.unix("/nonexistent/amp.sock"))
      expect(missing).toMatchObject({ _tag: "ConnectError", reason: "not found" })
    }))

  it.scopedLive("a connection that never completes times out with a typed error", () =>
    Effect.gen(function*() {
      // A TLS client against a plain server that never answers the ClientHello.
      const server = net.createServer(() => undefined).listen(0, "127.0.0.1")
      yield* Effect.addFinalizer(() => Effect.sync(() => server.close()))
      yield* Effect.promise(() => new Promise((r) => server.once("listening", r)))
      const port = (server.address() as net.AddressInfo).port
      const error = yield* Effect.flip(NodeConnect.tlsConnect("127.0.0.1", port, {}, { timeout: "200 millis" }))
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "timeout", address: `tls:127.0.0.1:${port}` })
    }))

  it.scopedLive("one connection failing leaves the server and the others alone; closing the server closes them", () =>
    Effect.gen(function*() {
      const serverScope = yield* Effect.scope
      void serverScope
      const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 })
      const port = portOf(server.address)
      const good = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port })
      const bad = net.createConnection({ host: "127.0.0.1", port })
      yield* Effect.promise(() => new Promise((r) => bad.once("connect", r)))
      bad.write(new Uint8Array([0x01, 0x00])) // a key length of 256: that connection is dropped
      yield* Effect.promise(() => new Promise((r) => bad.once("close", r)))
      expect(yield* good.callRemote(Demo.Sum, { a: 1n, b: 2n })).toEqual({ total: 3n })
      // The server learns of the bad connection's end a moment after the client does.
      while ((yield* server.connections) !== 1) yield* Effect.sleep("5 millis")
      expect(yield* server.connections).toBe(1)
    }).pipe(Effect.provide(responders())))

  it.scopedLive("closing the server's scope closes live connections; no socket, server or timer is left", () =>
    Effect.gen(function*() {
      const counted = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap" || r === "TCPServerWrap" || r === "Timeout").length
      const before = counted()
      const client = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 })
        const raw = net.createConnection({ host: "127.0.0.1", port: portOf(server.address) })
        yield* Effect.promise(() => new Promise((r) => raw.once("connect", r)))
        yield* Effect.sleep("20 millis")
        expect(yield* server.connections).toBe(1)
        return raw
      }))
      yield* Effect.promise(() => new Promise((r) => (client.closed ? r(undefined) : client.once("close", r))))
      yield* Effect.sleep("20 millis")
      const after = counted()
      expect(client.destroyed).toBe(true)
      expect(after).toBeLessThanOrEqual(before)
    }).pipe(Effect.provide(responders())))
})

describe("backpressure", () => {
  it.scopedLive("a peer floods 500 MB at a responder that handles one box per millisecond: memory stays bounded, no box is lost", () =>
    Effect.gen(function*() {
      const Slow = Command.make("Slow", { arguments: { seq: Argument.IntegerNumber, blob: Argument.String }, requiresAnswer: false })
      const seen: Array<number> = []
      const layer = Responders.layer(Responders.respond(Slow, ({ seq }) => Effect.as(Effect.sleep("1 millis"), {}).pipe(Effect.tap(() => void seen.push(seq)))))
      const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 }, { dispatcher: { maxConcurrentCommands: 1 } }).pipe(
        Effect.provide(layer)
      )
      const transport = yield* NodeConnect.tcp("127.0.0.1", portOf(server.address))
      const sender = yield* BinaryBoxProtocol.make(transport)
      const blob = new Uint8Array(65000).fill(7)
      const count = Math.ceil((500 * 1024 * 1024) / 65000)
      global.gc?.()
      const before = process.memoryUsage().rss
      let peak = before
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10)
      yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(sampler)))
      for (let seq = 0; seq < count; seq++) {
        yield* sender.sendBox(AmpBox.make({ _command: "Slow", seq: String(seq), blob }))
      }
      while (seen.length < count) yield* Effect.sleep("20 millis")
      expect(seen).toEqual(Array.from({ length: count }, (_, i) => i))
      // Sender, receiver and their buffers share this process; 500 MB went through it.
      expect(peak - before).toBeLessThan(150 * 1024 * 1024)
      console.log(`flood: ${count} boxes, peak RSS growth ${((peak - before) / 1048576).toFixed(1)} MB`)
    }), { timeout: 120_000 })
})

describe("StartTLS between two boxes", () => {
  it.scopedLive("the client asks, verifies the server, and calls queued during the handshake go out encrypted", () =>
    Effect.gen(function*() {
      const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 })
      const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port: portOf(server.address) })
      const [session, queued] = yield* Effect.all([
        amp.startTls({ ...clientTls, ca }),
        amp.callRemote(Demo.Sum, { a: 40n, b: 2n })
      ], { concurrency: "unbounded" })
      expect(session.authorized).toBe(true)
      expect(session.peerCertificate?.subject.CN).toBe("effect-amp test server")
      expect(queued).toEqual({ total: 42n })
      expect(amp.info().tls?.authorized).toBe(true)
      const again = yield* Effect.flip(amp.startTls({ ca }))
      expect(again._tag).toBe("OnlyOneTLS")
    }).pipe(Effect.provide(responders())))

  it.scopedLive("the accepting side asks too; TLS roles follow the connection", () =>
    Effect.gen(function*() {
      let serverSide: Amp | undefined
      const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 }, {
        onConnection: (amp) => Effect.sync(() => void (serverSide = amp))
      })
      const client = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port: portOf(server.address) }).pipe(
        Effect.provide(Responders.layer(...Demo.responders, StartTls.respond(() => Effect.succeed({ ...clientTls }))))
      )
      yield* client.callRemote(Demo.Sum, { a: 1n, b: 1n })
      const session = yield* serverSide!.startTls({ ...serverTls })
      expect(session.protocol).toMatch(/TLS/)
      expect(yield* serverSide!.callRemote(Demo.Sum, { a: 2n, b: 2n })).toEqual({ total: 4n })
      expect(yield* client.callRemote(Demo.Sum, { a: 3n, b: 3n })).toEqual({ total: 6n })
    }).pipe(Effect.provide(responders())))

  it.scopedLive("a peer that rejects our certificate gives a typed error, and outstanding calls get it", () =>
    Effect.gen(function*() {
      const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 })
      const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port: portOf(server.address) })
      const rogue = { cert: pem("rogue.pem"), key: pem("rogue.key"), ca }
      const result = yield* Effect.either(
        Effect.zipRight(amp.startTls(rogue), amp.callRemote(Demo.Sum, { a: 1n, b: 1n }))
      )
      expect(result._tag).toBe("Left")
      const ended = yield* amp.ended
      expect(["PeerVerifyError", "TlsError"]).toContain(ended._tag)
    }).pipe(Effect.provide(responders())))

  it.scopedLive("we refuse a server whose certificate our authorities did not sign", () =>
    Effect.gen(function*() {
      const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 }).pipe(
        Effect.provide(responders({ cert: pem("rogue.pem"), key: pem("rogue.key"), ca }))
      )
      const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port: portOf(server.address) })
      const error = yield* Effect.flip(amp.startTls({ ...clientTls, ca }))
      expect(error).toMatchObject({ _tag: "TlsError" })
    }).pipe(Effect.provide(responders())))

  it.scopedLive("a ClientHello in the same write as the StartTLS request is not parsed as a box", () =>
    Effect.gen(function*() {
      const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 }).pipe(
        Effect.provide(responders({ ...serverTls }))
      )
      const socket = net.createConnection({ host: "127.0.0.1", port: portOf(server.address) })
      yield* Effect.promise(() => new Promise((r) => socket.once("connect", r)))
      // A TLS client whose records go straight to the socket, corked with the request,
      // and whose input is whatever follows the plaintext answer box.
      const decoder = new BoxDecoder()
      let answer: AmpBox.AmpBox | undefined
      const inner = new Duplex({
        read() {},
        write(chunk, _e, cb) {
          socket.write(chunk, cb)
        }
      })
      socket.on("data", (chunk: Buffer) => {
        if (answer !== undefined) return void inner.push(chunk)
        decoder.push(chunk)
        answer = decoder.next()
        if (answer !== undefined) {
          const rest = decoder.takeLeftover()
          if (rest.length > 0) inner.push(rest)
        }
      })
      socket.cork()
      socket.write(BoxCodec.encodeBox(AmpBox.make({ _command: "StartTLS", _ask: "1" })))
      const secure = tls.connect({ socket: inner, ca, checkServerIdentity: () => undefined })
      process.nextTick(() => socket.uncork())
      yield* Effect.promise(() => new Promise((r) => secure.once("secureConnect", r)))
      expect(answer?.getText("_answer")).toBe("1")
      secure.write(BoxCodec.encodeBox(AmpBox.make({ _command: "Sum", _ask: "2", a: "20", b: "22" })))
      const reply = yield* Effect.promise(() => new Promise<Buffer>((r) => secure.once("data", r)))
      expect(BoxCodec.parse(reply)[0]!.toTextRecord()).toEqual({ total: "42", _answer: "2" })
      secure.destroy()
    }).pipe(Effect.provide(responders())))

  it.scopedLive("a handshake cut off half-way ends the connection with a typed cause", () =>
    Effect.gen(function*() {
      let serverSide: Amp | undefined
      const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 }, {
        onConnection: (amp) => Effect.sync(() => void (serverSide = amp))
      }).pipe(Effect.provide(responders({ ...serverTls })))
      const socket = net.createConnection({ host: "127.0.0.1", port: portOf(server.address) })
      yield* Effect.promise(() => new Promise((r) => socket.once("connect", r)))
      socket.write(BoxCodec.encodeBox(AmpBox.make({ _command: "StartTLS", _ask: "1" })))
      yield* Effect.promise(() => new Promise((r) => socket.once("data", r)))
      // The first bytes of a TLS record header, then nothing: the peer goes away mid-handshake.
      socket.end(new Uint8Array([0x16, 0x03, 0x01, 0x02]))
      const ended = yield* serverSide!.ended
      expect(["PeerVerifyError", "TlsError"]).toContain(ended._tag)
    }).pipe(Effect.provide(responders())))
})

describe("protocol switch over sockets", () => {
  it.scopedLive("bytes that follow the answer belong to the next protocol, also as a Duplex", () =>
    Effect.gen(function*() {
      const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 })
      const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port: portOf(server.address) })
      const { connection } = yield* amp.switchProtocol(SwitchToEcho, {})
      const duplex = yield* RawDuplex.toDuplex(connection)
      const received: Array<Buffer> = []
      duplex.on("data", (b: Buffer) => received.push(b))
      duplex.write("ping")
      yield* Effect.promise(() =>
        new Promise<void>((r) => {
          const check = () => (Buffer.concat(received).toString() === "HELLO;ping" ? r() : setTimeout(check, 5))
          check()
        })
      )
      expect(Buffer.concat(received).toString()).toBe("HELLO;ping")
    }).pipe(Effect.provide(responders())))

  it.scopedLive("a switch works after StartTLS", () =>
    Effect.gen(function*() {
      const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 })
      const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port: portOf(server.address) })
      yield* amp.startTls({ ...clientTls, ca })
      const { connection } = yield* amp.switchProtocol(SwitchToEcho, {})
      yield* connection.write(new TextEncoder().encode("tls!"))
      expect(yield* readText(connection.incoming, 10)).toBe("HELLO;tls!")
      expect(connection.info().tls?.authorized).toBe(true)
    }).pipe(Effect.provide(responders())))
})

describe("stdio", () => {
  it.scopedLive("drives a child that serves AMP on its stdin and stdout", () =>
    Effect.gen(function*() {
      const script = path.join(import.meta.dirname, "fixtures", "stdio-server.ts")
      const child = yield* Stdio.spawn(process.execPath, ["--import", "tsx", script])
      const amp = yield* NodeAmp.over(child.transport)
      expect(yield* amp.callRemote(Demo.Sum, { a: 2n, b: 3n })).toEqual({ total: 5n })
      const tlsError = yield* Effect.flip(amp.startTls())
      expect(tlsError._tag).toBe("UnhandledCommand")
    }).pipe(Effect.provide(Responders.none)))
})


