/**
 * AmpPool with in-memory workers (AmpTest pairs) and the TestClock: one call
 * per worker, growth to max and shrinking after maxIdle, timeouts that kill
 * and replace, recycling with the user's shutdown command, crashes with and
 * without retries, callbacks to the parent, the bounded queue, start
 * failures, graceful shutdown and its deadline, and the metrics.
 * Child processes (Node and Twisted): test/node/ProcessPool.test.ts and
 * test/interop/ProcessPool.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import { Amp } from "../src/Amp.js"
import * as AmpMetrics from "../src/AmpMetrics.js"
import * as AmpPool from "../src/AmpPool.js"
import * as Argument from "../src/Argument.js"
import * as Command from "../src/Command.js"
import * as Responders from "../src/Responders.js"
import * as AmpTest from "../src/testing/AmpTest.js"

const Sum = Command.make("Sum", { arguments: { a: Argument.Integer, b: Argument.Integer }, response: { total: Argument.Integer } })
const Sleep = Command.make("Sleep", { arguments: { ms: Argument.IntegerNumber }, response: { worker: Argument.Unicode } })
const Crash = Command.make("Crash", { response: { worker: Argument.Unicode } })
const Shutdown = Command.make("Shutdown")
const CallBack = Command.make("CallBack", { arguments: { n: Argument.Integer }, response: { total: Argument.Integer } })

/** A fleet of in-memory workers, and what happened to them. */
const fleet = (options?: { readonly crashes?: number; readonly failStarts?: number }) => {
  const log = {
    started: [] as Array<string>,
    killed: [] as Array<string>,
    shutdowns: [] as Array<string>,
    /** Calls running on each worker right now, and the most at once. */
    running: new Map<string, number>(),
    mostAtOnce: 0
  }
  let crashesLeft = options?.crashes ?? Infinity
  let failStarts = options?.failStarts ?? 0
  const start = Effect.gen(function*() {
    if (failStarts > 0) {
      failStarts--
      return yield* Effect.fail("no worker today" as const)
    }
    const name = `w${log.started.length + 1}`
    log.started.push(name)
    const busy = <A, E, R>(self: Effect.Effect<A, E, R>) =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          const n = (log.running.get(name) ?? 0) + 1
          log.running.set(name, n)
          log.mostAtOnce = Math.max(log.mostAtOnce, n)
        }),
        () => self,
        () => Effect.sync(() => log.running.set(name, log.running.get(name)! - 1))
      )
    const pair = yield* AmpTest.pair(
      Responders.make(
        Responders.respond(Sum, ({ a, b }) => busy(Effect.succeed({ total: a + b }))),
        Responders.respond(Sleep, ({ ms }) => busy(Effect.as(Effect.sleep(Duration.millis(ms)), { worker: name }))),
        Responders.respond(Crash, () =>
          crashesLeft-- > 0
            ? Effect.flatMap(Amp, (amp) => Effect.zipRight(amp.close, Effect.never))
            : Effect.succeed({ worker: name })),
        Responders.respond(Shutdown, () =>
          Effect.sync(() => {
            log.shutdowns.push(name)
            return Responders.answerThenClose({})
          })),
        Responders.respond(CallBack, ({ n }) =>
          Effect.flatMap(Amp, (parent) => Effect.orDie(busy(parent.callRemote(Sum, { a: n, b: 1n })))))
      ),
      { clientResponders: Responders.make(Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a * 100n + b }))) }
    )
    return {
      amp: pair.client,
      name,
      kill: Effect.zipRight(Effect.sync(() => log.killed.push(name)), pair.serverEnd.fail("killed"))
    } satisfies AmpPool.Worker
  })
  return { log, start }
}

/** Lets forked fibers and in-memory deliveries run. */
const settle = Effect.repeatN(Effect.yieldNow(), 50)

describe("AmpPool", () => {
  it.scoped("runs one call per worker at a time, grows to max on demand, and queues the rest", () =>
    Effect.gen(function*() {
      const { log, start } = fleet()
      const pool = yield* AmpPool.make({ start, max: 3 })
      expect((yield* pool.stats).workers).toBe(0)
      const calls = yield* Effect.forkAll(Array.from({ length: 9 }, () => pool.callRemote(Sleep, { ms: 1000 })))
      yield* settle
      const stats = yield* pool.stats
      expect(stats).toMatchObject({ workers: 3, busy: 3, queued: 6 })
      yield* TestClock.adjust("1 second")
      yield* settle
      expect((yield* pool.stats).queued).toBe(3)
      yield* TestClock.adjust("2 seconds")
      const answers = yield* Fiber.join(calls)
      expect(answers.map((a) => a.worker).sort()).toEqual(["w1", "w1", "w1", "w2", "w2", "w2", "w3", "w3", "w3"])
      expect(log.started).toEqual(["w1", "w2", "w3"])
      expect(log.mostAtOnce).toBe(1)
      expect(yield* pool.stats).toMatchObject({ workers: 3, busy: 0, idle: 3, calls: 9 })
    }))

  it.scoped("concurrency lets one worker take several calls at once", () =>
    Effect.gen(function*() {
      const { log, start } = fleet()
      const pool = yield* AmpPool.make({ start, max: 2, concurrency: 4 })
      const calls = yield* Effect.forkAll(Array.from({ length: 8 }, () => pool.callRemote(Sleep, { ms: 10 })))
      yield* settle
      expect(yield* pool.stats).toMatchObject({ workers: 2, queued: 0 })
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(calls)
      expect(log.mostAtOnce).toBe(4)
    }))

  it.scoped("starts min workers up front, and stops workers idle past maxIdle down to min", () =>
    Effect.gen(function*() {
      const { log, start } = fleet()
      const pool = yield* AmpPool.make({ start, min: 1, max: 4, maxIdle: "20 seconds" })
      expect((yield* pool.stats).workers).toBe(1)
      const calls = yield* Effect.forkAll(Array.from({ length: 4 }, () => pool.callRemote(Sleep, { ms: 1 })))
      yield* settle
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(calls)
      expect((yield* pool.stats).workers).toBe(4)
      yield* TestClock.adjust("15 seconds")
      yield* settle
      expect((yield* pool.stats).workers).toBe(4)
      yield* TestClock.adjust("15 seconds")
      yield* settle
      expect((yield* pool.stats).workers).toBe(1)
      expect(log.killed).toEqual([])
      // A call after the shrink goes to the worker left; none is started.
      expect(yield* pool.callRemote(Sum, { a: 1n, b: 2n })).toEqual({ total: 3n })
      expect(log.started.length).toBe(4)
    }))

  it.scoped("a call past the timeout fails with WorkerTimeout, its worker is killed and replaced", () =>
    Effect.gen(function*() {
      const { log, start } = fleet()
      const pool = yield* AmpPool.make({ start, min: 1, max: 1, timeout: "1 second" })
      const call = yield* Effect.fork(Effect.flip(pool.callRemote(Sleep, { ms: 60_000 })))
      yield* settle
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(call)
      expect(error).toMatchObject({ _tag: "WorkerTimeout", worker: "w1", command: "Sleep", millis: 1000 })
      yield* settle
      expect(log.killed).toEqual(["w1"])
      expect(yield* pool.callRemote(Sleep, { ms: 0 })).toEqual({ worker: "w2" })
      expect((yield* pool.stats).restarts).toEqual({ crash: 0, timeout: 1, recycle: 0 })
      // The call's own timeout overrides the pool's.
      const quick = yield* Effect.fork(Effect.flip(pool.callRemote(Sleep, { ms: 500 }, { timeout: "100 millis" })))
      yield* settle
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(quick)).toMatchObject({ _tag: "WorkerTimeout", worker: "w2", millis: 100 })
    }))

  it.scoped("recycles a worker after recycleAfter calls: the shutdown command, its end, then a new worker", () =>
    Effect.gen(function*() {
      const { log, start } = fleet()
      const pool = yield* AmpPool.make({
        start,
        max: 1,
        recycleAfter: 3,
        shutdown: (amp) => amp.callRemote(Shutdown, {})
      })
      const workers: Array<string> = []
      for (let i = 0; i < 7; i++) workers.push((yield* pool.callRemote(Sleep, { ms: 0 })).worker)
      expect(workers).toEqual(["w1", "w1", "w1", "w2", "w2", "w2", "w3"])
      yield* settle
      expect(log.shutdowns).toEqual(["w1", "w2"])
      expect(log.killed).toEqual([])
      expect((yield* pool.stats).restarts).toEqual({ crash: 0, timeout: 0, recycle: 2 })
    }))

  it.scoped("a worker that goes away fails its call with WorkerCrashed and is replaced; a retry schedule reruns it", () =>
    Effect.gen(function*() {
      const { log, start } = fleet({ crashes: 2 })
      const pool = yield* AmpPool.make({ start, max: 1 })
      const error = yield* Effect.flip(pool.callRemote(Crash, {}))
      expect(error).toMatchObject({ _tag: "WorkerCrashed", worker: "w1", command: "Crash" })
      expect(error._tag === "WorkerCrashed" && error.cause._tag).toBe("ConnectionLost")
      yield* settle
      expect((yield* pool.stats).restarts.crash).toBe(1)
      // With a retry: the second crash is retried on a new worker.
      expect(yield* pool.callRemote(Crash, {}, { retry: Schedule.recurs(1) })).toEqual({ worker: "w3" })
      expect(log.started).toEqual(["w1", "w2", "w3"])
    }))

  it.scoped("a worker can call the parent back while a call is on it", () =>
    Effect.gen(function*() {
      const { start } = fleet()
      const pool = yield* AmpPool.make({ start, max: 2 })
      expect(yield* pool.callRemote(CallBack, { n: 7n })).toEqual({ total: 701n })
    }))

  it.scoped("the queue is bounded: one call more fails with PoolQueueFull; an interrupted call leaves it", () =>
    Effect.gen(function*() {
      const { start } = fleet()
      const pool = yield* AmpPool.make({ start, max: 1, maxQueued: 2 })
      const running = yield* Effect.fork(pool.callRemote(Sleep, { ms: 1000 }))
      yield* settle
      const queued = yield* Effect.forkAll([pool.callRemote(Sleep, { ms: 0 }), pool.callRemote(Sleep, { ms: 0 })])
      yield* settle
      expect(yield* Effect.flip(pool.callRemote(Sum, { a: 1n, b: 1n }))).toMatchObject({ _tag: "PoolQueueFull", limit: 2 })
      const third = yield* Effect.fork(pool.callRemote(Sleep, { ms: 0 }))
      yield* settle
      expect((yield* Fiber.await(third))._tag).toBe("Failure")
      yield* Fiber.interrupt(queued)
      expect((yield* pool.stats).queued).toBe(0)
      const fourth = yield* Effect.fork(pool.callRemote(Sleep, { ms: 0 }))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(running)).toEqual({ worker: "w1" })
      expect(yield* Fiber.join(fourth)).toEqual({ worker: "w1" })
    }))

  it.scoped("a start that fails fails the waiting calls with WorkerStartFailed; min workers that cannot start fail make", () =>
    Effect.gen(function*() {
      const first = fleet({ failStarts: 1 })
      const pool = yield* AmpPool.make({ start: first.start, max: 1 })
      const error = yield* Effect.flip(pool.callRemote(Sum, { a: 1n, b: 1n }))
      expect(error).toMatchObject({ _tag: "WorkerStartFailed", pool: "pool" })
      expect(yield* pool.callRemote(Sum, { a: 1n, b: 1n })).toEqual({ total: 2n })
      const second = fleet({ failStarts: 1 })
      expect(yield* Effect.flip(AmpPool.make({ start: second.start, min: 2 }))).toBe("no worker today")
    }))

  it.scoped("closing the pool refuses new and queued calls, lets calls on workers finish, then stops every worker", () =>
    Effect.gen(function*() {
      const { log, start } = fleet()
      const scope = yield* Scope.make()
      const pool = yield* AmpPool.make({ start, max: 2, shutdown: (amp) => amp.callRemote(Shutdown, {}) }).pipe(
        Scope.extend(scope)
      )
      const onWorkers = yield* Effect.forkAll([pool.callRemote(Sleep, { ms: 3000 }), pool.callRemote(Sleep, { ms: 2000 })])
      yield* settle
      const queued = yield* Effect.fork(Effect.flip(pool.callRemote(Sum, { a: 1n, b: 1n })))
      yield* settle
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* settle
      expect(yield* Fiber.join(queued)).toMatchObject({ _tag: "PoolClosed" })
      expect(yield* Effect.flip(pool.callRemote(Sum, { a: 1n, b: 1n }))).toMatchObject({ _tag: "PoolClosed" })
      yield* TestClock.adjust("3 seconds")
      expect((yield* Fiber.join(onWorkers)).map((a) => a.worker).sort()).toEqual(["w1", "w2"])
      yield* Fiber.join(closing)
      expect(log.shutdowns.sort()).toEqual(["w1", "w2"])
    }))

  it.scoped("calls still on workers at the drain deadline fail with PoolClosed", () =>
    Effect.gen(function*() {
      const { start } = fleet()
      const scope = yield* Scope.make()
      const pool = yield* AmpPool.make({ start, max: 1, drainTimeout: "1 second" }).pipe(Scope.extend(scope))
      const call = yield* Effect.fork(Effect.flip(pool.callRemote(Sleep, { ms: 60_000 })))
      yield* settle
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      expect(yield* Fiber.join(call)).toMatchObject({ _tag: "PoolClosed" })
    }))

  it.scoped("publishes busy and idle workers, queued calls and restarts when metrics are on", () =>
    Effect.gen(function*() {
      const { start } = fleet({ crashes: 1 })
      const pool = yield* AmpPool.make({ start, max: 1, name: "metered" }).pipe(AmpMetrics.withMetrics)
      const workers = (state: string) =>
        Metric.value(AmpPool.workersGauge.pipe(Metric.tagged("pool", "metered"), Metric.tagged("state", state)))
      const running = yield* Effect.fork(pool.callRemote(Sleep, { ms: 1000 }))
      const queued = yield* Effect.fork(pool.callRemote(Sleep, { ms: 0 }))
      yield* settle
      expect((yield* workers("busy")).value).toBe(1)
      expect((yield* Metric.value(AmpPool.queuedGauge.pipe(Metric.tagged("pool", "metered")))).value)
        .toBe(1)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(running)
      yield* Fiber.join(queued)
      expect((yield* workers("busy")).value).toBe(0)
      expect((yield* workers("idle")).value).toBe(1)
      yield* Effect.flip(pool.callRemote(Crash, {}))
      yield* settle
      const restarts = AmpPool.restartsCounter.pipe(
        Metric.tagged("pool", "metered"),
        Metric.tagged("reason", "crash")
      )
      expect((yield* Metric.value(restarts)).count).toBe(1)
    }))
})
