/**
 * Clients and servers over loopback: typed connect errors, free ports, UNIX
 * socket files, one connection's failure kept to itself, and what a closed
 * scope leaves behind (nothing).
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import type * as net from "node:net"
import * as path from "node:path"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as NodeConnect from "../../src/node/NodeConnect.js"
import * as NodeServer from "../../src/node/NodeServer.js"
import { socketOf } from "../../src/node/internal/diagnostics.js"
import {
  activeResources,
  bytes,
  certFile,
  eventually,
  freePort,
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

/** A socket file whose listener died without removing it. */
const staleSocket = (socketPath: string) => {
  spawnSync(process.execPath, [
    "-e",
    `require("net").createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, "SIGKILL"))`
  ])
  expect(fs.lstatSync(socketPath).isSocket()).toBe(true)
}

describe("connect errors", () => {
  it.scopedLive("refused, with the address named", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const error = yield* Effect.flip(NodeConnect.connectTcp({ host: "127.0.0.1", port }))
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "refused", address: `tcp:127.0.0.1:${port}` })
      expect(error.message).toContain(`tcp:127.0.0.1:${port}`)
    }))

  it.scopedLive("a UNIX path with nothing there is not found; a stale socket file is refused", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const missing = path.join(dir, "missing.sock")
      expect(yield* Effect.flip(NodeConnect.connectUnix({ path: missing }))).toMatchObject({
        _tag: "ConnectError",
        reason: "not found",
        address: `unix:${missing}`
      })
      const stale = path.join(dir, "stale.sock")
      staleSocket(stale)
      expect(yield* Effect.flip(NodeConnect.connectUnix({ path: stale }))).toMatchObject({ reason: "refused" })
    }))

  it.scopedLive("a server that accepts but never completes the TLS handshake: timeout", () =>
    Effect.gen(function*() {
      const { port } = yield* rawServer(() => undefined)
      const error = yield* Effect.flip(NodeConnect.connectTls({ host: "127.0.0.1", port, timeout: "200 millis" }))
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "timeout", address: `tls:127.0.0.1:${port}` })
    }))

  it.scopedLive("a server that hangs up during the TLS handshake: reason tls", () =>
    Effect.gen(function*() {
      const { port } = yield* rawServer((socket) => socket.once("data", () => socket.destroy()))
      const error = yield* Effect.flip(NodeConnect.connectTls({ host: "127.0.0.1", port }))
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "tls", address: `tls:127.0.0.1:${port}` })
    }))

  it.scopedLive("a failed connect leaves no socket behind", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const { port: silent } = yield* rawServer(() => undefined)
      const before = activeResources()
      yield* Effect.flip(NodeConnect.connectTcp({ host: "127.0.0.1", port }))
      yield* Effect.flip(NodeConnect.connectTls({ host: "127.0.0.1", port: silent, timeout: "50 millis" }))
      yield* eventually(() => activeResources() <= before)
      expect(activeResources()).toBeLessThanOrEqual(before)
    }))
})

describe("servers", () => {
  it.scopedLive("port 0 picks a free port; the address comes as a record and as text", () =>
    Effect.gen(function*() {
      const server = yield* NodeServer.listen(local, echo)
      expect(server.address).toMatchObject({ _tag: "tcp", host: "127.0.0.1" })
      expect(portOf(server)).toBeGreaterThan(0)
      expect(server.addressText).toBe(`tcp:127.0.0.1:${portOf(server)}`)
      expect(server.listener.listening).toBe(true)
    }))

  it.scopedLive("a port in use is a ListenError naming the address", () =>
    Effect.gen(function*() {
      const first = yield* NodeServer.listen(local, echo)
      const error = yield* Effect.flip(NodeServer.listen({ ...local, port: portOf(first) }, echo))
      expect(error).toMatchObject({ _tag: "ListenError", address: `tcp:127.0.0.1:${portOf(first)}` })
    }))

  it.scopedLive("UNIX: the socket file lives as long as the server's scope", () =>
    Effect.gen(function*() {
      const socketPath = path.join(yield* tempDir, "amp.sock")
      const scope = yield* Scope.make()
      const server = yield* NodeServer.listen({ _tag: "unix", path: socketPath }, echo).pipe(Scope.extend(scope))
      expect(fs.lstatSync(socketPath).isSocket()).toBe(true)
      const client = yield* NodeConnect.connectUnix({ path: socketPath })
      yield* client.write(bytes("ping"))
      expect(text(yield* readBytes(client, 4))).toBe("ping")
      yield* Scope.close(scope, Exit.void)
      expect(fs.existsSync(socketPath)).toBe(false)
      expect(server.listener.listening).toBe(false)
    }))

  it.scopedLive("UNIX: a stale socket file is replaced; a live one, or a file that is not a socket, is refused and kept", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const socketPath = path.join(dir, "amp.sock")
      staleSocket(socketPath)
      const server = yield* NodeServer.listen({ _tag: "unix", path: socketPath }, echo)
      expect(server.listener.listening).toBe(true)
      const live = yield* Effect.flip(NodeServer.listen({ _tag: "unix", path: socketPath }, echo))
      expect(live).toMatchObject({ _tag: "ListenError", address: `unix:${socketPath}` })
      expect(fs.lstatSync(socketPath).isSocket()).toBe(true)
      const notSocket = path.join(dir, "config.json")
      fs.writeFileSync(notSocket, "{}")
      const refused = yield* Effect.flip(NodeServer.listen({ _tag: "unix", path: notSocket }, echo))
      expect(refused).toMatchObject({ _tag: "ListenError", address: `unix:${notSocket}` })
      expect(fs.readFileSync(notSocket, "utf8")).toBe("{}")
    }))

  it.scopedLive("a handler that fails or dies closes its own connection only", () =>
    Effect.gen(function*() {
      const server = yield* NodeServer.listen(local, (t) =>
        Effect.gen(function*() {
          const first = text(yield* readBytes(t, 4))
          if (first === "fail") return yield* Effect.fail("the handler gave up")
          if (first === "die!") return yield* Effect.dieMessage("the handler crashed")
          yield* t.write(bytes(first))
          yield* echo(t)
        }))
      const port = portOf(server)
      const good = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port })
      yield* good.write(bytes("good"))
      expect(text(yield* readBytes(good, 4))).toBe("good")
      for (const word of ["fail", "die!"]) {
        const bad = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port })
        yield* bad.write(bytes(word))
        expect(yield* readToEnd(bad)).toHaveLength(0)
      }
      yield* eventually(() => Effect.runSync(server.connections) === 1)
      yield* good.write(bytes("still here"))
      expect(text(yield* readBytes(good, 10))).toBe("still here")
      expect(yield* server.connections).toBe(1)
    }))

  it.scopedLive("connections counts the live ones", () =>
    Effect.gen(function*() {
      const server = yield* NodeServer.listen(local, echo)
      const clients = yield* Effect.all(
        [1, 2, 3].map(() => NodeConnect.connectTcp({ host: "127.0.0.1", port: portOf(server) })),
        { concurrency: "unbounded" }
      )
      for (const c of clients) {
        yield* c.write(bytes("x"))
        yield* readBytes(c, 1)
      }
      expect(yield* server.connections).toBe(3)
      yield* clients[0]!.close
      yield* eventually(() => Effect.runSync(server.connections) === 2)
      expect(yield* server.connections).toBe(2)
    }))

  it.scopedLive("maxConnections: one more is closed as it arrives", () =>
    Effect.gen(function*() {
      const server = yield* NodeServer.listen(local, echo, { maxConnections: 1 })
      const first = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port: portOf(server) })
      yield* first.write(bytes("1"))
      yield* readBytes(first, 1)
      const second = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port: portOf(server) })
      yield* second.write(bytes("2"))
      const ended = yield* Effect.either(readToEnd(second))
      expect(ended._tag === "Left" || ended.right.length === 0).toBe(true)
      expect(yield* server.connections).toBe(1)
    }))
})

describe("closing a server's scope", () => {
  it.scopedLive("closes every live connection, runs each handler's finalizers, stops listening; nothing is left", () =>
    Effect.gen(function*() {
      const before = activeResources()
      const finalized: Array<string> = []
      const scope = yield* Scope.make()
      const handlersStarted = yield* Deferred.make<void>()
      let started = 0
      const server = yield* NodeServer.listen(local, (t) =>
        Effect.gen(function*() {
          yield* Effect.addFinalizer(() => Effect.sync(() => finalized.push(t.info().peerAddress ?? "?")))
          if (++started === 2) yield* Deferred.succeed(handlersStarted, undefined)
          // A handler that would run forever, holding a half-read connection.
          yield* Effect.never
        })).pipe(Scope.extend(scope))
      // One client of ours, one raw Node socket.
      const ours = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port: portOf(server) }).pipe(Scope.extend(scope))
      const raw = yield* rawClient(portOf(server))
      const rawClosed = Effect.async<void>((resume) => void raw.once("close", () => resume(Effect.void)))
      const rawWatch = yield* Effect.fork(rawClosed)
      yield* Deferred.await(handlersStarted)
      expect(yield* server.connections).toBe(2)
      const oursEnded = yield* Effect.fork(Effect.either(readToEnd(ours)))
      // The raw client only sees an end if it reads.
      raw.resume()
      yield* Scope.close(scope, Exit.void)
      expect(finalized).toHaveLength(2)
      expect(server.listener.listening).toBe(false)
      expect(socketOf(ours)!.destroyed).toBe(true)
      yield* Fiber.join(rawWatch)
      expect(raw.destroyed).toBe(true)
      const end = yield* Fiber.join(oursEnded)
      expect(end._tag === "Right" || (end.left as { _tag: string })._tag === "ConnectionLost").toBe(true)
      yield* eventually(() => activeResources() <= before)
      expect(activeResources()).toBeLessThanOrEqual(before)
    }))

  it.scopedLive("a TLS server's scope also closes connections stuck in their handshake", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const server = yield* NodeServer.listen(
        {
          _tag: "tls",
          host: "127.0.0.1",
          port: 0,
          tls: { cert: fs.readFileSync(certFile("server.pem")), key: fs.readFileSync(certFile("server.key")) }
        },
        echo
      ).pipe(Scope.extend(scope))
      // A client that connects and never says hello.
      const silent: net.Socket = yield* rawClient(portOf(server))
      const closed = Effect.async<void>((resume) => void silent.once("close", () => resume(Effect.void)))
      const watch = yield* Effect.fork(closed)
      silent.resume()
      yield* Scope.close(scope, Exit.void)
      yield* Fiber.join(watch)
      expect(server.listener.listening).toBe(false)
    }))
})
