/**
 * Closing a server's scope drains it: the listener closes at once, handlers
 * that registered for the drain finish their work (their answers go out),
 * what outlives the deadline is interrupted, and the release is bounded by
 * the deadline plus the close timeout. First with plain handlers over
 * NodeServer, then with AMP (NodeAmp.serve and Amp.drain).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as Argument from "../../src/Argument.js"
import * as Command from "../../src/Command.js"
import * as Demo from "../../src/cli/Demo.js"
import * as Responders from "../../src/Responders.js"
import * as NodeAmp from "../../src/node/NodeAmp.js"
import * as NodeConnect from "../../src/node/NodeConnect.js"
import * as NodeServer from "../../src/node/NodeServer.js"
import { bytes, local, portOf, readBytes, readToEnd, text } from "./fixtures/support.js"

/** Milliseconds since `start`. */
const since = (start: number) => Date.now() - start

/** Closes `scope` in a fiber of its own and measures how long the release took. */
const closeInBackground = (scope: Scope.CloseableScope) =>
  Effect.fork(Effect.sync(() => Date.now()).pipe(
    Effect.flatMap((start) => Effect.as(Scope.close(scope, Exit.void), start)),
    Effect.map(since)
  ))

describe("draining a NodeServer", () => {
  it.scopedLive("a registered handler finishes its work and its reply goes out before the connection closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const working = yield* Deferred.make<void>()
      const server = yield* NodeServer.listen(local, (t, connection) =>
        Effect.gen(function*() {
          yield* connection.onDrain(Effect.void)
          yield* readBytes(t, 2)
          yield* Deferred.succeed(working, undefined)
          // Work that takes longer than the moment the drain starts.
          yield* Effect.sleep("300 millis")
          yield* t.write(bytes("done"))
        })).pipe(Scope.extend(scope))
      const client = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port: portOf(server) })
      yield* client.write(bytes("go"))
      yield* Deferred.await(working)
      const closing = yield* closeInBackground(scope)
      expect(text(yield* readToEnd(client))).toBe("done")
      yield* Fiber.join(closing)
      expect(server.listener.listening).toBe(false)
    }))

  it.scopedLive("new connections are refused as soon as draining starts", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const sawDrain = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const server = yield* NodeServer.listen(local, (_t, connection) =>
        Effect.gen(function*() {
          yield* connection.draining
          yield* Deferred.succeed(sawDrain, undefined)
          // Still working: the drain must not wait for it to refuse newcomers.
          yield* Deferred.await(release)
        }), { drainTimeoutMillis: 10_000 }).pipe(Scope.extend(scope))
      const port = portOf(server)
      yield* NodeConnect.connectTcp({ host: "127.0.0.1", port })
      yield* Effect.sleep("20 millis")
      const closing = yield* closeInBackground(scope)
      yield* Deferred.await(sawDrain)
      expect(server.listener.listening).toBe(false)
      const refused = yield* Effect.flip(NodeConnect.connectTcp({ host: "127.0.0.1", port }))
      expect(refused).toMatchObject({ _tag: "ConnectError", reason: "refused" })
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(closing)
    }))

  it.scopedLive("a handler that never registered is interrupted at once while a registered one still works", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const events: Array<string> = []
      const started = yield* Deferred.make<void>()
      let count = 0
      const server = yield* NodeServer.listen(local, (t, connection) =>
        Effect.gen(function*() {
          const first = text(yield* readBytes(t, 1))
          if (++count === 2) yield* Deferred.succeed(started, undefined)
          if (first === "p") {
            // A one-argument style handler: never looks at the drain.
            yield* Effect.addFinalizer(() => Effect.sync(() => events.push("plain interrupted")))
            return yield* Effect.never
          }
          yield* connection.draining
          yield* Effect.sleep("300 millis")
          events.push("registered done")
        })).pipe(Scope.extend(scope))
      const port = portOf(server)
      const plain = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port })
      const registered = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port })
      yield* plain.write(bytes("p"))
      yield* registered.write(bytes("r"))
      yield* Deferred.await(started)
      yield* Scope.close(scope, Exit.void)
      expect(events).toEqual(["plain interrupted", "registered done"])
    }))

  it.scopedLive("a registered handler slower than the deadline is interrupted at deadline + close timeout; its socket is destroyed", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const working = yield* Deferred.make<void>()
      let interrupted = false
      const server = yield* NodeServer.listen(local, (t, connection) =>
        Effect.gen(function*() {
          yield* connection.onDrain(Effect.void)
          yield* readBytes(t, 1)
          yield* Deferred.succeed(working, undefined)
          yield* Effect.sleep("60 seconds").pipe(Effect.onInterrupt(() => Effect.sync(() => (interrupted = true))))
        }), { drainTimeoutMillis: 200, transport: { closeTimeoutMillis: 300 } }).pipe(Scope.extend(scope))
      const client = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port: portOf(server) })
      yield* client.write(bytes("x"))
      yield* Deferred.await(working)
      const took = yield* Fiber.join(yield* closeInBackground(scope))
      expect(interrupted).toBe(true)
      // It waited for the deadline and the close timeout, then no longer than a generous margin.
      expect(took).toBeGreaterThanOrEqual(450)
      expect(took).toBeLessThan(500 + 1500)
      // The client sees its connection end (clean or not) rather than hang.
      yield* Effect.either(readToEnd(client))
      expect(yield* server.connections).toBe(0)
    }))

  it.scopedLive("drainTimeoutMillis 0 interrupts even registered handlers at once", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const working = yield* Deferred.make<void>()
      const server = yield* NodeServer.listen(local, (t, connection) =>
        Effect.gen(function*() {
          yield* connection.onDrain(Effect.void)
          yield* readBytes(t, 1)
          yield* Deferred.succeed(working, undefined)
          yield* Effect.sleep("60 seconds")
          yield* t.write(bytes("late"))
        }), { drainTimeoutMillis: 0, transport: { closeTimeoutMillis: 0 } }).pipe(Scope.extend(scope))
      const client = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port: portOf(server) })
      yield* client.write(bytes("x"))
      yield* Deferred.await(working)
      const took = yield* Fiber.join(yield* closeInBackground(scope))
      // Far below the 5 s default deadline it would otherwise wait.
      expect(took).toBeLessThan(2000)
      const rest = yield* Effect.either(readToEnd(client))
      expect(rest._tag === "Left" || rest.right.length === 0).toBe(true)
    }))
})

// ---------------------------------------------------------------------------
// AMP
// ---------------------------------------------------------------------------

const Slow = Command.make("Slow", { arguments: { ms: Argument.Integer }, response: { ms: Argument.Integer } })

/** Responders with `Slow`, which signals `started` once `n` calls of it are running. */
const slowResponders = (started: Deferred.Deferred<void>, n: number) => {
  let running = 0
  return Responders.layer(
    ...Demo.responders,
    Responders.respond(Slow, ({ ms }) =>
      Effect.gen(function*() {
        if (++running === n) yield* Deferred.succeed(started, undefined)
        yield* Effect.sleep(`${Number(ms)} millis`)
        return { ms }
      }))
  )
}

describe("draining an AMP server", () => {
  it.scopedLive("a 1 s responder in flight when the scope closes: its caller gets the answer, not ConnectionLost", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const started = yield* Deferred.make<void>()
      const server = yield* NodeAmp.serve(local).pipe(Effect.provide(slowResponders(started, 1)), Scope.extend(scope))
      const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port: portOf(server) }).pipe(
        Effect.provide(Responders.none)
      )
      const call = yield* Effect.fork(amp.callRemote(Slow, { ms: 1000n }))
      yield* Deferred.await(started)
      const closing = yield* closeInBackground(scope)
      expect(yield* Fiber.join(call)).toEqual({ ms: 1000n })
      // The server then ends the connection itself (a clean close, not a reset), and its release completes.
      expect(yield* amp.ended).toMatchObject({ _tag: "ConnectionLost", reason: "closed" })
      yield* Fiber.join(closing)
    }))

  it.scopedLive("a responder slower than the deadline: its caller gets UnknownRemoteError; the release ends within deadline + margin", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const started = yield* Deferred.make<void>()
      const server = yield* NodeAmp.serve(local, { drainTimeoutMillis: 300 }).pipe(
        Effect.provide(slowResponders(started, 3)),
        Scope.extend(scope)
      )
      const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port: portOf(server) }).pipe(
        Effect.provide(Responders.none)
      )
      // Two too slow, one quick enough: each caller gets what its responder managed.
      const calls = yield* Effect.fork(Effect.all([
        Effect.either(amp.callRemote(Slow, { ms: 60_000n })),
        Effect.either(amp.callRemote(Slow, { ms: 60_000n })),
        Effect.either(amp.callRemote(Slow, { ms: 100n }))
      ], { concurrency: "unbounded" }))
      yield* Deferred.await(started)
      const closing = yield* closeInBackground(scope)
      const [slow1, slow2, quick] = yield* Fiber.join(calls)
      for (const slow of [slow1, slow2]) {
        expect(slow).toMatchObject({ _tag: "Left", left: { _tag: "UnknownRemoteError", command: "Slow" } })
        expect((slow as { left: { description: string } }).left.description).toMatch(/shut down/)
      }
      expect(quick).toMatchObject({ _tag: "Right", right: { ms: 100n } })
      const took = yield* Fiber.join(closing)
      expect(took).toBeGreaterThanOrEqual(250)
      // Deadline 300 ms; the 2 s close timeout is never needed with a peer that closes.
      expect(took).toBeLessThan(300 + 1500)
    }))

  it.scopedLive("while draining, the listener refuses newcomers and a drained connection dispatches no new command", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const started = yield* Deferred.make<void>()
      const server = yield* NodeAmp.serve(local, { drainTimeoutMillis: 2000 }).pipe(
        Effect.provide(slowResponders(started, 1)),
        Scope.extend(scope)
      )
      const port = portOf(server)
      const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port }).pipe(Effect.provide(Responders.none))
      const slow = yield* Effect.fork(amp.callRemote(Slow, { ms: 500n }))
      yield* Deferred.await(started)
      const closing = yield* closeInBackground(scope)
      yield* Effect.sleep("50 millis")
      expect(server.listener.listening).toBe(false)
      expect(yield* Effect.flip(NodeConnect.connectTcp({ host: "127.0.0.1", port }))).toMatchObject({ reason: "refused" })
      // Sent after the drain began: not dispatched, so it fails with the connection's end.
      const late = yield* Effect.either(amp.callRemote(Demo.Sum, { a: 1n, b: 2n }))
      expect(late._tag).toBe("Left")
      expect(yield* Fiber.join(slow)).toEqual({ ms: 500n })
      yield* Fiber.join(closing)
    }))
})
