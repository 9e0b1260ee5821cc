/**
 * The ProcessPool cases, run against children written in Twisted
 * (test/interop/ProcessPool.test.ts) and in effect-amp
 * (test/node/ProcessPool.test.ts). Both children answer Sum, Quit (answer,
 * then close), Crash (exit 3 mid-call), Hang (no answer) and CallBack (the
 * parent's Sum), over fds 3/4.
 */
import { expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Argument from "../../src/Argument.js"
import * as AmpPool from "../../src/AmpPool.js"
import * as Command from "../../src/Command.js"
import * as Responders from "../../src/Responders.js"
import * as ProcessPool from "../../src/node/ProcessPool.js"
import { alive, openFds } from "./child.js"

export const Sum = Command.make("Sum", { arguments: { a: Argument.Integer, b: Argument.Integer }, response: { total: Argument.Integer } })
export const Quit = Command.make("Quit", { response: { bye: Argument.Unicode } })
export const Crash = Command.make("Crash")
export const Hang = Command.make("Hang")
export const CallBack = Command.make("CallBack", { arguments: { n: Argument.Integer }, response: { total: Argument.Integer } })

/** The parent's Sum, for CallBack: it adds 1000, so the test sees whose answer it was. */
const parentResponders = Responders.layer(Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b + 1000n })))


/** Waits (real time) until `pid` has gone; fails the test after 10 s. */
const gone = (pid: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 200 && alive(pid); i++) yield* Effect.sleep("50 millis")
    expect(alive(pid), `process ${pid} is still running`).toBe(false)
  })

/** Which worker answered: each call goes through `withWorker`, so the test knows the pid. */
const sumOn = (pool: AmpPool.AmpPool, a: bigint) =>
  pool.withWorker((worker) => Effect.map(worker.amp.callRemote(Sum, { a, b: 1n }), ({ total }) => ({ total, pid: Number(worker.name) })))

/** Registers the cases; `spawn` gives the command and arguments of one child (checked when a case runs). */
export const processPoolCases = (spawn: () => { readonly command: string; readonly args: ReadonlyArray<string> }) => {
  const make = (options?: ProcessPool.Options) =>
    Effect.suspend(() => {
      const { args, command } = spawn()
      return ProcessPool.make(command, args, options)
    })

  it.scopedLive("max 2: calls spread over two children, one call per child at a time; a callback reaches the parent", () =>
    Effect.gen(function*() {
      const pool = yield* make({ max: 2 })
      const answers = yield* Effect.all(Array.from({ length: 6 }, (_, i) => sumOn(pool, BigInt(i))), { concurrency: "unbounded" })
      expect(answers.map((a) => a.total)).toEqual([1n, 2n, 3n, 4n, 5n, 6n])
      expect(new Set(answers.map((a) => a.pid)).size).toBe(2)
      expect(yield* pool.callRemote(CallBack, { n: 41n })).toEqual({ total: 1042n })
      expect(yield* pool.stats).toMatchObject({ workers: 2, busy: 0, calls: 7 })
    }).pipe(Effect.provide(parentResponders)), 60_000)

  it.scopedLive("recycleAfter 2 with Quit as the shutdown: each child answers two calls, quits, exits, and is replaced", () =>
    Effect.gen(function*() {
      const pool = yield* make({ max: 1, recycleAfter: 2, shutdown: (amp) => amp.callRemote(Quit, {}) })
      const pids: Array<number> = []
      for (let i = 0; i < 5; i++) pids.push((yield* sumOn(pool, BigInt(i))).pid)
      expect(pids[0]).toBe(pids[1])
      expect(pids[2]).toBe(pids[3])
      expect(new Set(pids).size).toBe(3)
      yield* gone(pids[0]!)
      yield* gone(pids[2]!)
      expect((yield* pool.stats).restarts).toEqual({ crash: 0, timeout: 0, recycle: 2 })
    }), 60_000)

  it.scopedLive("a child that crashes mid-call: WorkerCrashed for the call, a new child for the next", () =>
    Effect.gen(function*() {
      const pool = yield* make({ max: 1 })
      const first = (yield* sumOn(pool, 1n)).pid
      const error = yield* Effect.flip(pool.callRemote(Crash, {}))
      expect(error).toMatchObject({ _tag: "WorkerCrashed", worker: String(first), command: "Crash" })
      yield* gone(first)
      const next = yield* sumOn(pool, 2n)
      expect(next.total).toBe(3n)
      expect(next.pid).not.toBe(first)
      expect((yield* pool.stats).restarts.crash).toBe(1)
    }), 60_000)

  it.scopedLive("a child that hangs past the timeout: WorkerTimeout, the child is killed and replaced", () =>
    Effect.gen(function*() {
      const pool = yield* make({ max: 1, timeout: "300 millis" })
      const first = (yield* sumOn(pool, 1n)).pid
      expect(yield* Effect.flip(pool.callRemote(Hang, {}))).toMatchObject({
        _tag: "WorkerTimeout",
        worker: String(first),
        command: "Hang",
        millis: 300
      })
      yield* gone(first)
      expect((yield* sumOn(pool, 2n)).pid).not.toBe(first)
      expect((yield* pool.stats).restarts.timeout).toBe(1)
    }), 60_000)

  it.scopedLive("closing the pool asks every child to Quit and waits for its exit: no process or descriptor is left, later calls get PoolClosed", () =>
    Effect.gen(function*() {
      const before = openFds()
      const scope = yield* Scope.make()
      const pool = yield* make({ min: 2, max: 3, shutdown: (amp) => amp.callRemote(Quit, {}) }).pipe(Scope.extend(scope))
      const answers = yield* Effect.all([sumOn(pool, 1n), sumOn(pool, 2n), sumOn(pool, 3n)], { concurrency: "unbounded" })
      const pids = [...new Set(answers.map((a) => a.pid))]
      expect(pids.length).toBe(3)
      yield* Scope.close(scope, Exit.void)
      for (const pid of pids) expect(alive(pid), `process ${pid} outlived the pool`).toBe(false)
      expect(openFds()).toBeLessThanOrEqual(before)
      expect(yield* Effect.flip(pool.callRemote(Sum, { a: 1n, b: 1n }))).toMatchObject({ _tag: "PoolClosed" })
    }), 60_000)
}
