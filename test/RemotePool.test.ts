/**
 * Reconnecting and RemotePool over in-memory servers that can be killed,
 * refuse connections and come back, on the TestClock: reconnection spaced
 * by the backoff, calls that wait or fail fast while nothing is up, health
 * checks that route around a member, calls spread over the members, a
 * member's loss failing only its own calls, traffic returning to it, and a
 * draining close. Over real sockets with Twisted servers:
 * test/interop/RemotePool.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as Argument from "../src/Argument.js"
import * as Command from "../src/Command.js"
import * as Reconnecting from "../src/Reconnecting.js"
import * as RemotePool from "../src/RemotePool.js"
import * as Responders from "../src/Responders.js"
import * as AmpTest from "../src/testing/AmpTest.js"
import type * as MemoryTransport from "../src/MemoryTransport.js"

const Where = Command.make("Where", { arguments: { ms: Argument.IntegerNumber }, response: { server: Argument.Unicode } })
const Ping = Command.make("Ping")

/** An in-memory server that can refuse connections, be killed, and fail its health check. */
const server = (name: string) => {
  const state = {
    up: true,
    healthy: true,
    attempts: 0,
    ends: [] as Array<MemoryTransport.Control>
  }
  const endpoint: RemotePool.Endpoint<string> = {
    name,
    connect: Effect.suspend(() => {
      state.attempts++
      if (!state.up) return Effect.fail(`${name} refused`)
      return Effect.map(
        AmpTest.pair(
          Responders.make(
            Responders.respond(Where, ({ ms }) => Effect.as(Effect.sleep(Duration.millis(ms)), { server: name })),
            Responders.respond(Ping, () => (state.healthy ? Effect.succeed({}) : Effect.never))
          )
        ),
        (pair) => {
          state.ends.push(pair.serverEnd)
          return pair.client
        }
      )
    })
  }
  /** Drops every connection and refuses new ones. */
  const kill = Effect.suspend(() => {
    state.up = false
    return Effect.forEach(state.ends.splice(0), (end) => end.fail(`${name} killed`), { discard: true })
  })
  return { state, endpoint, kill, restart: Effect.sync(() => (state.up = true)) }
}

const settle = Effect.repeatN(Effect.yieldNow(), 50)
const backoff = Schedule.spaced("1 second")

describe("Reconnecting", () => {
  it.scoped("reconnects after a loss, attempts spaced by the backoff while refused; calls wait for the connection", () =>
    Effect.gen(function*() {
      const a = server("a")
      const amp = yield* Reconnecting.make({ ...a.endpoint, backoff })
      expect(yield* amp.callRemote(Where, { ms: 0 })).toEqual({ server: "a" })
      yield* a.kill
      yield* settle
      expect(yield* amp.status).toBe("down")
      const waiting = yield* Effect.fork(amp.callRemote(Where, { ms: 0 }))
      const before = a.state.attempts
      yield* TestClock.adjust("3 seconds")
      yield* settle
      expect(a.state.attempts - before).toBe(3)
      expect(waiting.unsafePoll()).toBeNull()
      yield* a.restart
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(waiting)).toEqual({ server: "a" })
      expect(yield* amp.status).toBe("up")
      expect(yield* amp.counts).toEqual({ connects: 2, losses: 1 })
    }))

  it.scoped("whenDown fail: NoMemberAvailable at once; waitTimeout bounds a wait; a backoff that ends stops it", () =>
    Effect.gen(function*() {
      const a = server("a")
      a.state.up = false
      const fast = yield* Reconnecting.make({ ...a.endpoint, backoff, whenDown: "fail" })
      yield* settle
      expect(yield* Effect.flip(fast.callRemote(Where, { ms: 0 }))).toMatchObject({ _tag: "NoMemberAvailable", pool: "a" })
      const patient = yield* Reconnecting.make({ ...a.endpoint, backoff, waitTimeout: "2 seconds" })
      const call = yield* Effect.fork(Effect.flip(patient.callRemote(Where, { ms: 0 })))
      yield* settle
      yield* TestClock.adjust("2 seconds")
      expect(yield* Fiber.join(call)).toMatchObject({ _tag: "NoMemberAvailable" })
      const giving = yield* Reconnecting.make({ ...a.endpoint, backoff: Schedule.recurs(2) })
      yield* settle
      yield* TestClock.adjust("1 second")
      expect(yield* giving.status).toBe("stopped")
      expect(yield* Effect.flip(giving.callRemote(Where, { ms: 0 }))).toMatchObject({ _tag: "NoMemberAvailable" })
    }))

  it.scoped("a failing health check marks the connection unhealthy and calls wait; a passing one brings it back", () =>
    Effect.gen(function*() {
      const a = server("a")
      const amp = yield* Reconnecting.make({
        ...a.endpoint,
        health: { check: (c) => c.callRemote(Ping, {}), interval: "1 second", timeout: "500 millis" }
      })
      yield* settle
      a.state.healthy = false
      yield* TestClock.adjust("1500 millis")
      yield* settle
      expect(yield* amp.status).toBe("unhealthy")
      const call = yield* Effect.fork(amp.callRemote(Where, { ms: 0 }))
      yield* settle
      expect(call.unsafePoll()).toBeNull()
      a.state.healthy = true
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(call)).toEqual({ server: "a" })
      expect(yield* amp.status).toBe("up")
    }))
})

describe("RemotePool", () => {
  it.scoped("spreads calls over the members: the least busy first, in turn among equals", () =>
    Effect.gen(function*() {
      const servers = [server("a"), server("b"), server("c")]
      const pool = yield* RemotePool.make({ members: servers.map((s) => s.endpoint), backoff })
      yield* settle
      const calls = yield* Effect.forkAll(Array.from({ length: 9 }, () => pool.callRemote(Where, { ms: 100 })))
      yield* settle
      yield* TestClock.adjust("100 millis")
      const answers = (yield* Fiber.join(calls)).map((a) => a.server).sort()
      expect(answers).toEqual(["a", "a", "a", "b", "b", "b", "c", "c", "c"])
      // Not only in turn: while one member has a long call, the short ones go to the others.
      const long = yield* Effect.fork(pool.callRemote(Where, { ms: 1000 }))
      yield* settle
      const short: Array<string> = []
      for (let i = 0; i < 6; i++) short.push((yield* pool.callRemote(Where, { ms: 0 })).server)
      yield* TestClock.adjust("1 second")
      const longOn = (yield* Fiber.join(long)).server
      expect(short).not.toContain(longOn)
      expect(new Set(short).size).toBe(2)
    }))

  it.scoped("a killed member fails only its own calls (WorkerCrashed), is routed around, and gets traffic again once back", () =>
    Effect.gen(function*() {
      const [a, b] = [server("a"), server("b")]
      const pool = yield* RemotePool.make({ members: [a.endpoint, b.endpoint], backoff })
      yield* settle
      const calls = yield* Effect.forkAll(Array.from({ length: 4 }, () => Effect.either(pool.callRemote(Where, { ms: 100 }))))
      yield* settle
      yield* a.kill
      yield* settle
      yield* TestClock.adjust("100 millis")
      const outcomes = yield* Fiber.join(calls)
      const failed = outcomes.filter((o) => o._tag === "Left").map((o) => o.left)
      expect(failed).toHaveLength(2)
      for (const e of failed) expect(e).toMatchObject({ _tag: "WorkerCrashed", worker: "a", command: "Where" })
      expect(outcomes.filter((o) => o._tag === "Right").map((o) => o.right.server)).toEqual(["b", "b"])
      // Down: every call goes to b.
      for (let i = 0; i < 4; i++) expect((yield* pool.callRemote(Where, { ms: 0 })).server).toBe("b")
      yield* a.restart
      yield* TestClock.adjust("1 second")
      yield* settle
      expect((yield* pool.members).map((m) => m.status)).toEqual(["up", "up"])
      const after = yield* Effect.forkAll(Array.from({ length: 4 }, () => pool.callRemote(Where, { ms: 10 })))
      yield* settle
      yield* TestClock.adjust("10 millis")
      expect((yield* Fiber.join(after)).filter((x) => x.server === "a")).toHaveLength(2)
      expect((yield* pool.stats).restarts.crash).toBe(1)
    }))

  it.scoped("with a retry schedule, a call lost with its member is rerun on another", () =>
    Effect.gen(function*() {
      const [a, b] = [server("a"), server("b")]
      const pool = yield* RemotePool.make({ members: [a.endpoint, b.endpoint], backoff, retry: Schedule.recurs(1) })
      yield* settle
      const calls = yield* Effect.forkAll(Array.from({ length: 2 }, () => pool.callRemote(Where, { ms: 100 })))
      yield* settle
      yield* a.kill
      yield* settle
      yield* TestClock.adjust("200 millis")
      expect((yield* Fiber.join(calls)).map((x) => x.server)).toEqual(["b", "b"])
    }))

  it.scoped("nothing up: calls fail with NoMemberAvailable when told to, or wait for the first member back", () =>
    Effect.gen(function*() {
      const [a, b] = [server("a"), server("b")]
      a.state.up = false
      b.state.up = false
      const fast = yield* RemotePool.make({ members: [a.endpoint, b.endpoint], backoff, whenDown: "fail" })
      yield* settle
      expect(yield* Effect.flip(fast.callRemote(Where, { ms: 0 }))).toMatchObject({ _tag: "NoMemberAvailable", members: 2 })
      const patient = yield* RemotePool.make({ members: [a.endpoint, b.endpoint], backoff })
      const call = yield* Effect.fork(patient.callRemote(Where, { ms: 0 }))
      yield* settle
      yield* b.restart
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(call)).toEqual({ server: "b" })
    }))

  it.scoped("an unhealthy member gets no calls", () =>
    Effect.gen(function*() {
      const [a, b] = [server("a"), server("b")]
      const pool = yield* RemotePool.make({
        members: [a.endpoint, b.endpoint],
        health: { check: (c) => c.callRemote(Ping, {}), interval: "1 second", timeout: "500 millis" }
      })
      yield* settle
      a.state.healthy = false
      yield* TestClock.adjust("1500 millis")
      yield* settle
      expect((yield* pool.members).map((m) => m.status)).toEqual(["unhealthy", "up"])
      for (let i = 0; i < 4; i++) expect((yield* pool.callRemote(Where, { ms: 0 })).server).toBe("b")
    }))

  it.scoped("closing drains: calls in flight finish, new ones get PoolClosed", () =>
    Effect.gen(function*() {
      const a = server("a")
      const scope = yield* Scope.make()
      const pool = yield* RemotePool.make({ members: [a.endpoint], backoff }).pipe(Scope.extend(scope))
      yield* settle
      const call = yield* Effect.fork(pool.callRemote(Where, { ms: 1000 }))
      yield* settle
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* settle
      expect(yield* Effect.flip(pool.callRemote(Where, { ms: 0 }))).toMatchObject({ _tag: "PoolClosed" })
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(call)).toEqual({ server: "a" })
      yield* Fiber.join(closing)
    }))
})
