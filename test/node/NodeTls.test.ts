/**
 * TLS on the Node transport, at the byte level: StartTLS in both roles,
 * with and without verification, bytes that arrive before the handshake
 * starts, every way a handshake fails, detaching after TLS, and TLS from
 * the first byte.
 */
import { describe, expect, it } from "@effect/vitest"
import * as childProcess from "node:child_process"
import type * as net from "node:net"
import * as path from "node:path"
import { Duplex } from "node:stream"
import * as tls from "node:tls"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as NodeConnect from "../../src/node/NodeConnect.js"
import * as NodeServer from "../../src/node/NodeServer.js"
import * as NodeTransport from "../../src/node/NodeTransport.js"
import { readState, socketOf } from "../../src/node/internal/diagnostics.js"
import type { TlsOptions, TlsSession, WithTlsAndDetach } from "../../src/Transport.js"
import {
  bytes,
  ca,
  certFile,
  clientTls,
  collect,
  eventually,
  once,
  rawClient,
  readBytes,
  readStream,
  readToEnd,
  rogueTls,
  serverTls,
  text,
  echo,
  local,
  portOf
} from "./fixtures/support.js"


/** A server that hands each transport to the test and keeps the connection until the test ends. */
const capturingServer = Effect.gen(function*() {
  const accepted = yield* Deferred.make<WithTlsAndDetach>()
  const server = yield* NodeServer.listen(local, (t) => Effect.zipRight(Deferred.succeed(accepted, t), Effect.never))
  return { server, accepted: Deferred.await(accepted) }
})

/**
 * The StartTLS dance as AMP does it, with a line for the request and one for
 * the answer: the client asks, the server answers and starts TLS, the client
 * starts TLS on reading the answer. Returns both sessions and both transports.
 */
const dance = (serverOptions: TlsOptions, clientOptions: TlsOptions, afterwards: (t: WithTlsAndDetach) => Effect.Effect<void, unknown> = echo) =>
  Effect.gen(function*() {
    const serverSide = yield* Deferred.make<{ readonly session: TlsSession; readonly transport: WithTlsAndDetach }>()
    const server = yield* NodeServer.listen(local, (t) =>
      Effect.gen(function*() {
        const request = yield* readBytes(t, 9)
        expect(text(request.subarray(0, 9))).toBe("STARTTLS\n")
        yield* t.write(bytes("OK\n"))
        const upgrade = yield* t.startTls(serverOptions, request.subarray(9))
        yield* Deferred.succeed(serverSide, { session: yield* upgrade.handshake, transport: t })
        yield* afterwards(t)
      }))
    const client = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port: portOf(server) })
    yield* client.write(bytes("STARTTLS\n"))
    const answer = yield* readBytes(client, 3)
    // A server that takes the TLS client role may have sent its ClientHello right behind the answer.
    expect(text(answer.subarray(0, 3))).toBe("OK\n")
    const upgrade = yield* client.startTls(clientOptions, answer.subarray(3))
    const clientSession = yield* upgrade.handshake
    const { session: serverSession, transport: serverTransport } = yield* Deferred.await(serverSide)
    return { client, clientSession, serverSession, serverTransport }
  })

/** A TLS client's first flight, captured without a network. */
const clientHello = Effect.gen(function*() {
  const held: Array<Buffer> = []
  const wire = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      held.push(chunk)
      callback()
    }
  })
  const client = tls.connect({ socket: wire, rejectUnauthorized: false })
  yield* eventually(() => held.length > 0)
  client.destroy()
  return Buffer.concat(held)
})

describe("StartTLS", () => {
  it.scopedLive("both sides verify each other with the CA; bytes then flow encrypted both ways", () =>
    Effect.gen(function*() {
      const { client, clientSession, serverSession, serverTransport } = yield* dance(
        { ...serverTls, ca },
        { ...clientTls, ca }
      )
      expect(clientSession.authorized).toBe(true)
      expect(clientSession.peerCertificate?.subject.CN).toBe("effect-amp test server")
      expect(clientSession.peerCertificate?.issuer.CN).toBe("effect-amp test CA")
      expect(clientSession.peerCertificate?.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
      expect(clientSession.peerCertificate?.raw.length).toBeGreaterThan(500)
      expect(clientSession.protocol).toMatch(/^TLSv1\.[23]$/)
      expect(clientSession.cipher).toBeTruthy()
      expect(serverSession.authorized).toBe(true)
      expect(serverSession.peerCertificate?.subject.CN).toBe("effect-amp test client")
      yield* client.write(bytes("secret"))
      expect(text(yield* readBytes(client, 6))).toBe("secret")
      expect(client.info()).toMatchObject({ kind: "tcp", tls: { authorized: true } })
      expect(serverTransport.info().tls?.authorized).toBe(true)
      // The bytes on the wire are TLS records, not the plaintext.
      expect(socketOf(client)).toBeInstanceOf(tls.TLSSocket)
      const again = yield* Effect.flip(client.startTls({ ca }, new Uint8Array()))
      expect(again._tag).toBe("OnlyOneTLS")
    }))

  it.scopedLive("without a CA nobody is verified (Twisted's default), and it still works", () =>
    Effect.gen(function*() {
      const { client, clientSession, serverSession } = yield* dance({ ...serverTls }, {})
      expect(clientSession.authorized).toBe(false)
      expect(clientSession.peerCertificate?.subject.CN).toBe("effect-amp test server")
      expect(serverSession.authorized).toBe(false)
      expect(serverSession.peerCertificate).toBeUndefined()
      yield* client.write(bytes("plain enough"))
      expect(text(yield* readBytes(client, 12))).toBe("plain enough")
    }))

  it.scopedLive("a clean end after bytes came over TLS is a clean end, not a refused certificate", () =>
    Effect.gen(function*() {
      const received = yield* Deferred.make<Either.Either<Uint8Array, unknown>>()
      const { client } = yield* dance({ ...serverTls }, {}, (t) =>
        Effect.flatMap(Effect.either(readToEnd(t)), (r) => Deferred.succeed(received, r)))
      yield* client.write(bytes("ping"))
      yield* client.close
      const result = yield* Deferred.await(received)
      expect(Either.isRight(result) ? text(result.right) : result.left).toBe("ping")
    }))

  it.scopedLive("a role given in the options wins: the accepting side can be the TLS client", () =>
    Effect.gen(function*() {
      const { clientSession, serverSession } = yield* dance(
        { ...clientTls, ca, role: "client" },
        { ...serverTls, ca, role: "server" }
      )
      expect(clientSession.peerCertificate?.subject.CN).toBe("effect-amp test client")
      expect(serverSession.peerCertificate?.subject.CN).toBe("effect-amp test server")
      expect(serverSession.authorized).toBe(true)
    }))

  it.scopedLive("a ClientHello that came with the plaintext request is passed on as leftover", () =>
    Effect.gen(function*() {
      const accepted = yield* Deferred.make<WithTlsAndDetach>()
      const leftoverSize = yield* Deferred.make<number>()
      const server = yield* NodeServer.listen(local, (t) =>
        Effect.gen(function*() {
          yield* Deferred.succeed(accepted, t)
          // Wait until the ClientHello sits behind the request, then consume only the request.
          yield* eventually(() => readState(t)!.bytes > 9)
          const taken = yield* readBytes(t, 10)
          yield* Deferred.succeed(leftoverSize, taken.length - 9)
          const upgrade = yield* t.startTls({ ...serverTls }, taken.subarray(9))
          yield* upgrade.handshake
          yield* echo(t)
        }))
      const client = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port: portOf(server) })
      // The request and, right behind it, the ClientHello, without waiting for an answer.
      yield* client.write(bytes("STARTTLS\n"))
      const upgrade = yield* client.startTls({}, new Uint8Array())
      yield* upgrade.handshake
      expect(yield* Deferred.await(leftoverSize)).toBeGreaterThan(100)
      yield* client.write(bytes("after the hello"))
      expect(text(yield* readBytes(client, 15))).toBe("after the hello")
    }))

  it.scopedLive("leftover first, then the chunks nobody pulled, then the wire: a ClientHello split three ways", () =>
    Effect.gen(function*() {
      const { accepted, server } = yield* capturingServer
      const peer = yield* rawClient(portOf(server))
      // A TLS client whose records we hold back and send by hand.
      const held: Array<Buffer> = []
      let direct = false
      const wire = new Duplex({
        read() {},
        write(chunk: Buffer, _encoding, callback) {
          if (direct) return void peer.write(chunk, callback)
          held.push(chunk)
          callback()
        }
      })
      peer.on("data", (chunk: Buffer) => wire.push(chunk))
      const secure = tls.connect({ socket: wire, ca, checkServerIdentity: () => undefined })
      const plaintext = collect(secure)
      yield* eventually(() => held.length > 0)
      const hello = Buffer.concat(held)
      direct = true
      const transport = yield* accepted
      // "STARTTLS\n" and the first 20 bytes of the hello in one segment: the consumer takes both.
      peer.write(Buffer.concat([Buffer.from("STARTTLS\n"), hello.subarray(0, 20)]))
      const taken = yield* readBytes(transport, 29)
      expect(taken.length).toBe(29)
      // The rest arrives while nobody pulls.
      peer.write(hello.subarray(20))
      yield* eventually(() => readState(transport)!.bytes === hello.length - 20)
      const upgrade = yield* transport.startTls({ ...serverTls }, taken.subarray(9))
      yield* Effect.all([upgrade.handshake, once(secure, "secureConnect")], { concurrency: "unbounded" })
      secure.write("ping")
      expect(text(yield* readBytes(transport, 4))).toBe("ping")
      yield* transport.write(bytes("pong"))
      expect(yield* plaintext.waitFor(4)).toBe("pong")
    }))
})

describe("TLS handshake failures", () => {
  it.scopedLive("a Node peer that refuses our certificate: PeerVerifyError for us, TlsError for it", () =>
    Effect.gen(function*() {
      const serverResult = yield* Deferred.make<Either.Either<TlsSession, unknown>>()
      const server = yield* NodeServer.listen(local, (t) =>
        Effect.gen(function*() {
          const upgrade = yield* t.startTls({ ...serverTls, ca }, new Uint8Array())
          yield* Deferred.succeed(serverResult, yield* Effect.either(upgrade.handshake))
          yield* echo(t)
        }))
      const client = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port: portOf(server) })
      const upgrade = yield* client.startTls({ ...rogueTls }, new Uint8Array())
      // TLS 1.3 ends the client's handshake before the server judges it: the refusal shows as the end of incoming.
      const handshake = yield* Effect.either(upgrade.handshake)
      const ended = yield* Effect.flip(readBytes(client, 1))
      expect(ended).toMatchObject({ _tag: "PeerVerifyError" })
      if (Either.isLeft(handshake)) expect(handshake.left._tag).toBe("PeerVerifyError")
      const refused = yield* Deferred.await(serverResult)
      expect(refused).toMatchObject({ _tag: "Left", left: { _tag: "TlsError" } })
    }))

  it.scopedLive("an OpenSSL peer that refuses our certificate with an alert: PeerVerifyError", () =>
    Effect.gen(function*() {
      const python = yield* Effect.acquireRelease(
        Effect.sync(() =>
          childProcess.spawn("/usr/bin/python3", [
            path.join(import.meta.dirname, "fixtures", "tls_server.py"),
            certFile("server.pem"),
            certFile("server.key"),
            certFile("ca.pem")
          ], { stdio: ["ignore", "pipe", "pipe"] })
        ),
        (p) => Effect.sync(() => p.kill())
      )
      const port = Number((yield* collect(python.stdout!).waitFor(2)).trim().split("\n")[0])
      const client = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port })
      const upgrade = yield* client.startTls({ ...rogueTls }, new Uint8Array())
      const handshake = yield* Effect.either(upgrade.handshake)
      const ended = yield* Effect.flip(readBytes(client, 1))
      expect(ended).toMatchObject({ _tag: "PeerVerifyError" })
      expect((ended as { detail: string }).detail).toMatch(/alert|certificate/i)
      if (Either.isLeft(handshake)) expect(handshake.left._tag).toBe("PeerVerifyError")
    }))

  it.scopedLive("we refuse a certificate our CA did not sign: TlsError for us, PeerVerifyError for the peer", () =>
    Effect.gen(function*() {
      const serverResult = yield* Deferred.make<Either.Either<TlsSession, unknown>>()
      const server = yield* NodeServer.listen(local, (t) =>
        Effect.gen(function*() {
          const upgrade = yield* t.startTls({ ...rogueTls }, new Uint8Array())
          yield* Deferred.succeed(serverResult, yield* Effect.either(upgrade.handshake))
        }))
      const client = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port: portOf(server) })
      const upgrade = yield* client.startTls({ ca }, new Uint8Array())
      const error = yield* Effect.flip(upgrade.handshake)
      expect(error).toMatchObject({ _tag: "TlsError" })
      expect((error as { code?: string }).code).toMatch(/UNABLE_TO_VERIFY|SELF_SIGNED|UNABLE_TO_GET_ISSUER/)
      // incoming ends with the same cause.
      expect(yield* Effect.flip(readBytes(client, 1))).toBe(error)
      expect(yield* Deferred.await(serverResult)).toMatchObject({ _tag: "Left", left: { _tag: "PeerVerifyError" } })
    }))

  it.scopedLive("a handshake cut off half-way (the peer ends after a partial record) is a typed error on both channels", () =>
    Effect.gen(function*() {
      const { accepted, server } = yield* capturingServer
      const peer = yield* rawClient(portOf(server))
      const transport = yield* accepted
      const upgrade = yield* transport.startTls({ ...serverTls }, new Uint8Array())
      peer.end(new Uint8Array([0x16, 0x03, 0x01, 0x02]))
      const error = yield* Effect.flip(upgrade.handshake)
      expect(error).toMatchObject({ _tag: "PeerVerifyError" })
      expect(yield* Effect.flip(readBytes(transport, 1))).toBe(error)
    }))

  it.scopedLive("the peer ended and left before StartTLS began: the handshake and incoming fail with PeerVerifyError", () =>
    Effect.gen(function*() {
      const { accepted, server } = yield* capturingServer
      const peer = yield* rawClient(portOf(server))
      const transport = yield* accepted
      peer.end(Buffer.concat([Buffer.from("STARTTLS\n"), Buffer.from([0x16, 0x03, 0x01, 0x02])]))
      const taken = yield* readBytes(transport, 13)
      yield* eventually(() => socketOf(transport)!.destroyed)
      const upgrade = yield* transport.startTls({ ...serverTls }, taken.subarray(9))
      const error = yield* Effect.flip(upgrade.handshake)
      expect(error).toMatchObject({ _tag: "PeerVerifyError" })
      expect(yield* Effect.flip(readBytes(transport, 1))).toBe(error)
    }))

  it.scopedLive("the peer's end waits behind a paused socket: TLS gets the bytes and the end, and fails, not hangs", () =>
    Effect.gen(function*() {
      const accepted = yield* Deferred.make<WithTlsAndDetach>()
      const server = yield* NodeServer.listen(local, (t) => Effect.zipRight(Deferred.succeed(accepted, t), Effect.never), {
        transport: { readBufferChunks: 1 }
      })
      const peer = yield* rawClient(portOf(server))
      const transport = yield* accepted
      const state = () => readState(transport)!
      // Two chunks of a record header fill the inbox and pause the socket...
      peer.write(new Uint8Array([0x16, 0x03]))
      yield* eventually(() => state().chunks === 1)
      peer.write(new Uint8Array([0x01, 0x02]))
      yield* eventually(() => state().paused)
      // ...so the third and the FIN wait in the socket, the end not yet reported.
      peer.end(new Uint8Array([0x00]))
      const socket = socketOf(transport) as net.Socket
      yield* eventually(() => (socket as unknown as { _readableState: { ended: boolean } })._readableState.ended)
      expect(socket.readableEnded).toBe(false)
      const upgrade = yield* transport.startTls({ ...serverTls }, new Uint8Array())
      const error = yield* Effect.flip(upgrade.handshake)
      expect(["PeerVerifyError", "TlsError"]).toContain(error._tag)
      expect(yield* Effect.flip(readBytes(transport, 1))).toBe(error)
    }))

  it.scopedLive("a peer that resets after its ClientHello: PeerVerifyError", () =>
    Effect.gen(function*() {
      const { accepted, server } = yield* capturingServer
      const peer = yield* rawClient(portOf(server))
      const transport = yield* accepted
      const upgrade = yield* transport.startTls({ ...serverTls }, new Uint8Array())
      peer.write(yield* clientHello)
      // The server has answered the hello: the handshake is under way.
      yield* eventually(() => peer.bytesRead > 0)
      peer.resetAndDestroy()
      const error = yield* Effect.flip(upgrade.handshake)
      expect(error).toMatchObject({ _tag: "PeerVerifyError" })
    }))

  it.scopedLive("a peer that goes silent mid-handshake: TlsError ETIMEDOUT after handshakeTimeoutMillis", () =>
    Effect.gen(function*() {
      const accepted = yield* Deferred.make<WithTlsAndDetach>()
      const server = yield* NodeServer.listen(local, (t) => Effect.zipRight(Deferred.succeed(accepted, t), Effect.never), {
        transport: { handshakeTimeoutMillis: 200 }
      })
      const peer = yield* rawClient(portOf(server))
      const transport = yield* accepted
      const upgrade = yield* transport.startTls({ ...serverTls }, new Uint8Array())
      peer.write(new Uint8Array([0x16, 0x03, 0x01]))
      const error = yield* Effect.flip(upgrade.handshake)
      expect(error).toMatchObject({ _tag: "TlsError", code: "ETIMEDOUT" })
      expect(yield* Effect.flip(readBytes(transport, 1))).toBe(error)
    }))

  it.scopedLive("our close during a handshake fails it with ConnectionLost, closed by us; StartTLS then refuses", () =>
    Effect.gen(function*() {
      const { accepted, server } = yield* capturingServer
      const peer = yield* rawClient(portOf(server))
      const transport = yield* accepted
      const upgrade = yield* transport.startTls({ ...serverTls }, new Uint8Array())
      // Half a ClientHello: the handshake waits for the rest.
      peer.write(new Uint8Array([0x16, 0x03, 0x01]))
      yield* transport.close
      expect(yield* Effect.flip(upgrade.handshake)).toMatchObject({ _tag: "ConnectionLost", reason: "closed by us" })
      expect(yield* Effect.flip(transport.startTls({ ...serverTls }, new Uint8Array()))).toMatchObject({ _tag: "OnlyOneTLS" })
    }))

  it.scopedLive("StartTLS after our close: TlsError, the connection is already closed", () =>
    Effect.gen(function*() {
      const { accepted, server } = yield* capturingServer
      yield* rawClient(portOf(server))
      const transport = yield* accepted
      yield* transport.close
      expect(yield* Effect.flip(transport.startTls({ ...serverTls }, new Uint8Array()))).toMatchObject({
        _tag: "TlsError",
        detail: "the connection is already closed"
      })
    }))

  it.scopedLive("bad TLS settings fail startTls itself and leave the connection usable", () =>
    Effect.gen(function*() {
      const { accepted, server } = yield* capturingServer
      const peer = yield* rawClient(portOf(server))
      const transport = yield* accepted
      const error = yield* Effect.flip(transport.startTls({ cert: "not a certificate", key: "nor a key" }, new Uint8Array()))
      expect(error).toMatchObject({ _tag: "TlsError" })
      peer.write("still plain")
      expect(text(yield* readBytes(transport, 11))).toBe("still plain")
    }))
})

describe("detach after StartTLS", () => {
  it.scopedLive("the raw connection carries plaintext over the TLS session, leftover first", () =>
    Effect.gen(function*() {
      const { client, serverTransport } = yield* dance({ ...serverTls }, {}, () => Effect.never)
      yield* client.write(bytes("AMP|NEXT1"))
      const first = yield* readBytes(serverTransport, 9)
      yield* client.write(bytes("NEXT2"))
      yield* eventually(() => readState(serverTransport)!.bytes === 5)
      const raw = yield* serverTransport.detach(first.subarray(4))
      expect(raw.info().tls).toBeDefined()
      yield* client.write(bytes("NEXT3"))
      const all = yield* readStream(raw.incoming, 15)
      expect(all).toBe("NEXT1NEXT2NEXT3")
      yield* raw.write(bytes("raw reply"))
      expect(text(yield* readBytes(client, 9))).toBe("raw reply")
    }))

  it.scopedLive("detachToDuplex after StartTLS gives the TLSSocket, with the leftover in front", () =>
    Effect.gen(function*() {
      const { client, serverTransport } = yield* dance({ ...serverTls }, {}, () => Effect.never)
      yield* client.write(bytes("AMP|tail"))
      const first = yield* readBytes(serverTransport, 8)
      const duplex = yield* NodeTransport.detachToDuplex(serverTransport, first.subarray(4))
      expect(duplex).toBeInstanceOf(tls.TLSSocket)
      const received = collect(duplex)
      yield* client.write(bytes("+more"))
      expect(yield* received.waitFor(9)).toBe("tail+more")
      duplex.write("back")
      expect(text(yield* readBytes(client, 4))).toBe("back")
    }))
})

describe("TLS from the first byte", () => {
  it.scopedLive("connectTls to a TLS server that requires client certificates; both sides see the session", () =>
    Effect.gen(function*() {
      const seen = yield* Deferred.make<WithTlsAndDetach>()
      const server = yield* NodeServer.listen(
        { _tag: "tls", host: "127.0.0.1", port: 0, tls: { ...serverTls, ca } },
        (t) => Effect.zipRight(Deferred.succeed(seen, t), echo(t))
      )
      expect(server.addressText).toMatch(/^tls:127\.0\.0\.1:\d+$/)
      const client = yield* NodeConnect.connectTls({ host: "127.0.0.1", port: portOf(server), ...clientTls, ca })
      expect(client.info()).toMatchObject({
        kind: "tls",
        peerAddress: server.addressText,
        tls: { authorized: true, peerCertificate: { subject: { CN: "effect-amp test server" } } }
      })
      yield* client.write(bytes("hello tls"))
      expect(text(yield* readBytes(client, 9))).toBe("hello tls")
      const serverSide = yield* Deferred.await(seen)
      expect(serverSide.info().tls).toMatchObject({ authorized: true, peerCertificate: { subject: { CN: "effect-amp test client" } } })
      expect((yield* Effect.flip(client.startTls({}, new Uint8Array())))._tag).toBe("OnlyOneTLS")
    }))

  it.scopedLive("connectTls refuses a server our CA did not sign: ConnectError, reason tls", () =>
    Effect.gen(function*() {
      const server = yield* NodeServer.listen({ _tag: "tls", host: "127.0.0.1", port: 0, tls: { ...rogueTls } }, echo)
      const error = yield* Effect.flip(NodeConnect.connectTls({ host: "127.0.0.1", port: portOf(server), ca }))
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "tls", address: server.addressText })
    }))

  it.scopedLive("connectTls with servername checks the name too", () =>
    Effect.gen(function*() {
      const server = yield* NodeServer.listen({ _tag: "tls", host: "127.0.0.1", port: 0, tls: { ...serverTls } }, echo)
      const port = portOf(server)
      const good = yield* NodeConnect.connectTls({ host: "127.0.0.1", port, ca, servername: "localhost" })
      expect(good.info().tls?.authorized).toBe(true)
      const error = yield* Effect.flip(NodeConnect.connectTls({ host: "127.0.0.1", port, ca, servername: "example.org" }))
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "tls" })
    }))
})
