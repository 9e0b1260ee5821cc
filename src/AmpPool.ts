/**
 * A pool of AMP workers used like one connection: `pool.callRemote(...)`
 * runs the call on a worker that is free, starting workers on demand up to
 * `max` and stopping those idle past `maxIdle` down to `min`. It does
 * ampoule's job (`ProcessPool`) for any kind of worker; `effect-amp/node`'s
 * `ProcessPool` makes the workers child processes.
 *
 * Semantics, ampoule's unless said otherwise:
 * - one call per worker at a time (`concurrency` raises it);
 * - a call past `timeout` kills its worker (`Worker.kill`) and fails with
 *   `WorkerTimeout`; the worker is replaced;
 * - after `recycleAfter` calls a worker is stopped (the `shutdown` the user
 *   names is sent, the pool waits for it to go) and replaced;
 * - a worker whose connection ends is replaced; calls on it fail with
 *   `WorkerCrashed` and are retried only with a `retry` schedule;
 * - calls waiting for a worker are bounded (`maxQueued`, then
 *   `PoolQueueFull`; ampoule queues without bound);
 * - a worker may call back while a call is on it: its connection answers
 *   with the responders it was started with;
 * - closing the pool's scope stops taking calls (`PoolClosed`), lets the
 *   calls on workers finish within `drainTimeout`, then stops every worker.
 *
 * Metrics (when `AmpMetrics` are on, read once when the pool is made), tagged
 * `pool`: `amp_pool_workers` (gauge, tag `state`: `busy`, `idle`),
 * `amp_pool_calls_queued` (gauge), `amp_pool_restarts_total` (counter, tag
 * `reason`: `crash`, `timeout`, `recycle`).
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import type { Amp, CallFailure, CallOptions } from "./Amp.js"
import type { AmpBox, ValueInput } from "./AmpBox.js"
import {
  PoolClosed,
  type PoolError,
  PoolQueueFull,
  WorkerCrashed,
  WorkerStartFailed,
  WorkerTimeout
} from "./AmpError.js"
import * as AmpMetrics from "./AmpMetrics.js"
import type * as Command from "./Command.js"
import { Once } from "./internal/once.js"
import { isConnectionEnd, retryCrashed } from "./internal/poolCalls.js"

/**
 * One worker as the pool sees it: its connection, a name for errors and
 * logs, and how to kill it at once (after a timeout). Closing the scope it
 * was started in stops it gracefully.
 *
 * @since 0.1.0
 */
export interface Worker {
  readonly amp: Amp
  /** Shown in errors: a pid, an address. */
  readonly name: string
  /** Ends it now (a child: SIGKILL). Default: close its connection. */
  readonly kill?: Effect.Effect<void>
}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 */
export interface Options<E = never, R = never> {
  /** Starts one worker; it lives as long as the scope it is given. */
  readonly start: Effect.Effect<Worker, E, R | Scope.Scope>
  /** Shown in errors and metric tags. Default `pool`. */
  readonly name?: string
  /** Workers kept running even when idle. Default 0. */
  readonly min?: number
  /** Workers at most. Default 4. */
  readonly max?: number
  /** Calls one worker takes at a time. Default 1, as ampoule. */
  readonly concurrency?: number
  /** A worker idle this long is stopped, unless only `min` are left. Default 20 s, as ampoule. */
  readonly maxIdle?: Duration.DurationInput
  /** A call running longer fails with `WorkerTimeout` and its worker is killed. Default: none. */
  readonly timeout?: Duration.DurationInput
  /** Stop and replace a worker after this many calls. Default: never (ampoule: 500). */
  readonly recycleAfter?: number
  /**
   * How a worker is asked to stop before its scope closes (recycling,
   * shrinking, the pool's shutdown), such as ampoule's `Shutdown` command:
   * `(amp) => amp.callRemote(Shutdown, {})`. The pool then waits up to
   * `stopTimeout` for the worker's connection to end. Default: none (the
   * scope's close ends the connection, which ends a Twisted `AMPChild`).
   */
  readonly shutdown?: (amp: Amp) => Effect.Effect<unknown, unknown>
  /** How long `shutdown` and the end that follows may take. Default 5 s. */
  readonly stopTimeout?: Duration.DurationInput
  /** Calls that may wait for a worker; one more fails with `PoolQueueFull`. Default 10,000. */
  readonly maxQueued?: number
  /** Retries a call that failed with `WorkerCrashed`, on a new worker. Default: no retry. */
  readonly retry?: Schedule.Schedule<unknown, WorkerCrashed>
  /** How long the calls on workers may run on once the pool is closing. Default 10 s. */
  readonly drainTimeout?: Duration.DurationInput
}

/** Options of one call through the pool. */
export interface PoolCallOptions extends CallOptions {
  /** Overrides the pool's `retry` for this call. */
  readonly retry?: Schedule.Schedule<unknown, WorkerCrashed>
}

/**
 * A snapshot of the pool.
 *
 * @since 0.1.0
 */
export interface Stats {
  readonly workers: number
  readonly busy: number
  readonly idle: number
  readonly starting: number
  readonly queued: number
  /** Calls answered or failed since the pool started. */
  readonly calls: number
  /** Workers replaced, by why. */
  readonly restarts: { readonly crash: number; readonly timeout: number; readonly recycle: number }
}

/**
 * The pool: `callRemote` and `callRemoteString` as on one `Amp`, each call
 * on one worker.
 *
 * @since 0.1.0
 */
export interface AmpPool {
  readonly name: string
  readonly callRemote: <C extends Command.Any>(
    command: C,
    args: Command.Arguments<C>,
    options?: PoolCallOptions
  ) => Effect.Effect<Command.Response<C>, Command.Error<C> | CallFailure | PoolError>
  readonly callRemoteString: (
    command: string,
    fields?: Readonly<Record<string, ValueInput>>,
    options?: PoolCallOptions
  ) => Effect.Effect<AmpBox, CallFailure | PoolError>
  /** Runs `f` with a worker of its own (one of its `concurrency` slots) for several calls in a row. */
  readonly withWorker: <A, E, R>(f: (worker: Worker) => Effect.Effect<A, E, R>) => Effect.Effect<A, E | PoolError, R>
  readonly stats: Effect.Effect<Stats>
}

/**
 * The pool in context, for {@link layer}.
 *
 * @since 0.1.0
 */
export const AmpPool: Context.Tag<AmpPool, AmpPool> = Context.GenericTag<AmpPool>("effect-amp/AmpPool")

type Restart = keyof Stats["restarts"]

/** A running worker and its bookkeeping. */
class Member {
  busy = 0
  calls = 0
  idleSince: number
  /** `retiring`: no new call, stopped once its calls are done; `stopping`: on its way out. */
  state: "serving" | "retiring" | "stopping" = "serving"
  constructor(readonly worker: Worker, readonly scope: Scope.CloseableScope, now: number) {
    this.idleSince = now
  }
}

/** A call waiting for a worker. */
type Waiter = Once<Member, PoolError>

/**
 * `amp_pool_workers`: workers by `pool` and `state` (`busy`, `idle`).
 *
 * @since 0.1.0
 */
export const workersGauge: Metric.Metric.Gauge<number> = Metric.gauge("amp_pool_workers", {
  description: "pool workers, by state"
})

/**
 * `amp_pool_calls_queued`: calls waiting for a worker, by `pool`.
 *
 * @since 0.1.0
 */
export const queuedGauge: Metric.Metric.Gauge<number> = Metric.gauge("amp_pool_calls_queued", {
  description: "calls waiting for a pool worker"
})

/**
 * `amp_pool_restarts_total`: workers replaced, by `pool` and `reason` (`crash`, `timeout`, `recycle`).
 *
 * @since 0.1.0
 */
export const restartsCounter: Metric.Metric.Counter<number> = Metric.counter("amp_pool_restarts_total", {
  description: "pool workers replaced, by reason"
})

/**
 * Makes a pool; it lives as long as the scope, and its close drains it
 * (see the module's doc). Starts `min` workers first and waits for them.
 *
 * @since 0.1.0
 */
export const make: <E, R>(options: Options<E, R>) => Effect.Effect<AmpPool, E, R | Scope.Scope> = Effect.fn(
  "AmpPool.make"
)(function*<E, R>(options: Options<E, R>) {
  const name = options.name ?? "pool"
  const min = options.min ?? 0
  const max = Math.max(1, options.max ?? 4, min)
  const concurrency = Math.max(1, options.concurrency ?? 1)
  const maxIdle = Duration.decode(options.maxIdle ?? Duration.seconds(20))
  const timeout = options.timeout === undefined ? undefined : Duration.decode(options.timeout)
  const stopTimeout = Duration.decode(options.stopTimeout ?? Duration.seconds(5))
  const drainTimeout = Duration.decode(options.drainTimeout ?? Duration.seconds(10))
  const maxQueued = options.maxQueued ?? 10_000
  const metrics = (yield* FiberRef.get(AmpMetrics.enabled))
    ? {
      busy: workersGauge.pipe(Metric.tagged("pool", name), Metric.tagged("state", "busy")),
      idle: workersGauge.pipe(Metric.tagged("pool", name), Metric.tagged("state", "idle")),
      queued: queuedGauge.pipe(Metric.tagged("pool", name)),
      restarts: (reason: Restart) => restartsCounter.pipe(Metric.tagged("pool", name), Metric.tagged("reason", reason))
    }
    : undefined

  // Workers and the pool's fibers live in a scope of their own, made before the shutdown's
  // finalizer so that it closes after that finalizer has drained the calls.
  const poolScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.parallel)
  const context = yield* Effect.context<R>()
  const members: Array<Member> = []
  const waiters: Array<Waiter> = []
  let starting = 0
  /** Out of service and not yet gone: they still count against `max`. */
  let stopping = 0
  let calls = 0
  let onWorkers = 0
  let closed = false
  let drained: Deferred.Deferred<void> | undefined
  const restarts = { crash: 0, timeout: 0, recycle: 0 }

  const busyCount = () => {
    let busy = 0
    for (const m of members) if (m.busy > 0) busy++
    return busy
  }

  const publish = () => {
    if (metrics === undefined) return
    const busy = busyCount()
    metrics.busy.unsafeUpdate(busy, [])
    metrics.idle.unsafeUpdate(members.length - busy, [])
    metrics.queued.unsafeUpdate(waiters.length, [])
  }

  const countRestart = (reason: Restart) => {
    restarts[reason]++
    metrics?.restarts(reason).unsafeUpdate(1, [])
  }

  /** Hands free slots of `member` to waiting calls. */
  const serveWaiters = (member: Member) => {
    while (member.state === "serving" && member.busy < concurrency && waiters.length > 0) {
      member.busy++
      waiters.shift()!.done(Exit.succeed(member))
    }
  }

  const failWaiters = (error: PoolError) => {
    for (const waiter of waiters.splice(0)) waiter.done(Exit.fail(error))
  }

  /** Starts workers while calls wait for more slots than are coming, or while fewer than `min` run. */
  const grow: Effect.Effect<void> = Effect.suspend(() => {
    const forks: Array<Effect.Effect<unknown>> = []
    const live = () => members.length + starting
    while (
      !closed && live() + stopping < max &&
      (live() < min || waiters.length > starting * concurrency)
    ) {
      starting++
      forks.push(Effect.forkIn(Effect.interruptible(startOne), poolScope))
    }
    return Effect.all(forks, { discard: true })
  })

  /** Takes `member` out of service now (no call is handed to it from here on). */
  const takeOut = (member: Member, state: "retiring" | "stopping") => {
    if (member.state === "serving") {
      const i = members.indexOf(member)
      if (i >= 0) members.splice(i, 1)
      stopping++
    }
    member.state = state
    publish()
  }

  /** The user's shutdown, then the end of the worker's connection, within `stopTimeout`. */
  const askToStop = (member: Member): Effect.Effect<void> =>
    options.shutdown === undefined ? Effect.void : options.shutdown(member.worker.amp).pipe(
      Effect.zipRight(member.worker.amp.ended),
      // Run from finalizers too: a timeout can only cut off what is interruptible.
      Effect.interruptible,
      Effect.timeout(stopTimeout),
      Effect.ignore
    )

  /**
   * Stops a member taken out of service, in the background: killed, or asked
   * with the user's shutdown and given `stopTimeout` to go; then its scope is
   * closed and a replacement started if one is needed.
   */
  const stopLater = (member: Member, how: "kill" | "ask" | "gone"): Effect.Effect<void> => {
    takeOut(member, "stopping")
    const ask = how === "kill" ? (member.worker.kill ?? member.worker.amp.close) : how === "gone" ? Effect.void : askToStop(member)
    return Effect.forkIn(
      Effect.interruptible(ask).pipe(
        Effect.zipRight(Scope.close(member.scope, Exit.void)),
        Effect.ensuring(Effect.suspend(() => {
          stopping--
          return grow
        }))
      ),
      poolScope
    ).pipe(Effect.asVoid)
  }

  /** Starts one worker and puts it in service; fails with the start's error. */
  const startMember: Effect.Effect<void, E> = Effect.gen(function*() {
    const scope = yield* Scope.fork(poolScope, ExecutionStrategy.sequential)
    const started = yield* options.start.pipe(Scope.extend(scope), Effect.provide(context), Effect.exit)
    starting--
    if (Exit.isFailure(started)) {
      yield* Scope.close(scope, Exit.void)
      // Calls wait on; they fail only when nothing is left that could serve them.
      if (members.length === 0 && starting === 0) failWaiters(new WorkerStartFailed({ pool: name, cause: started.cause }))
      publish()
      return yield* started
    }
    if (closed) return yield* Scope.close(scope, Exit.void)
    const member = new Member(started.value, scope, yield* Clock.currentTimeMillis)
    members.push(member)
    serveWaiters(member)
    publish()
    // A worker whose connection ends is gone: replace it, unless it was already on its way out.
    yield* Effect.forkIn(Effect.flatMap(member.worker.amp.ended, () => lost(member)), scope)
  })

  const startOne: Effect.Effect<void> = startMember.pipe(
    Effect.catchAllCause((cause) => Effect.logDebug(`AmpPool ${name}: a worker did not start`, cause))
  )

  const lost = (member: Member): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (closed || member.state === "stopping") return Effect.void
      countRestart("crash")
      return stopLater(member, "gone")
    })

  const acquire: Effect.Effect<Member, PoolError> = Effect.suspend(() => {
    if (closed) return Effect.fail(new PoolClosed({ pool: name }))
    for (const member of members) {
      if (member.busy < concurrency) {
        member.busy++
        publish()
        return Effect.succeed(member)
      }
    }
    if (waiters.length >= maxQueued) return Effect.fail(new PoolQueueFull({ pool: name, limit: maxQueued }))
    const waiter: Waiter = new Once()
    waiters.push(waiter)
    publish()
    return grow.pipe(
      Effect.zipRight(waiter.await),
      Effect.onInterrupt(() =>
        Effect.suspend(() => {
          const i = waiters.indexOf(waiter)
          if (i >= 0) {
            waiters.splice(i, 1)
            publish()
            return Effect.void
          }
          // Handed a slot as it was interrupted: give the slot back.
          const exit = waiter.exit
          return exit !== undefined && Exit.isSuccess(exit) ? release(exit.value, "unused") : Effect.void
        })
      )
    )
  })

  /** Frees a slot of `member` after a call that ended with `outcome`. */
  const release = (member: Member, outcome: "ok" | "timeout" | "crash" | "unused"): Effect.Effect<void> =>
    Effect.gen(function*() {
      member.busy--
      if (outcome !== "unused") {
        member.calls++
        calls++
      }
      if (outcome === "timeout" && member.state !== "stopping") {
        countRestart("timeout")
        yield* stopLater(member, "kill")
      } else if (outcome === "crash") {
        yield* lost(member)
      } else if (
        member.state === "serving" && options.recycleAfter !== undefined && member.calls >= options.recycleAfter
      ) {
        countRestart("recycle")
        takeOut(member, "retiring")
      }
      // A retiring worker is stopped once its other calls are done.
      if (member.state === "retiring" && member.busy === 0) yield* stopLater(member, "ask")
      if (member.busy === 0) member.idleSince = yield* Clock.currentTimeMillis
      serveWaiters(member)
      publish()
    })

  /** Runs `use` on a worker slot, with the call's timeout, and frees the slot. */
  const onWorker = <A, E2, R2>(
    command: string,
    use: (member: Member) => Effect.Effect<A, E2, R2>,
    callTimeout: Duration.Duration | undefined
  ): Effect.Effect<A, E2 | PoolError, R2> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        const member = yield* restore(acquire)
        onWorkers++
        const call = Effect.mapError(use(member), (e): E2 | PoolError =>
          !isConnectionEnd(e)
            ? e
            : closed
            // Cut off by the pool's shutdown, past its drain deadline.
            ? new PoolClosed({ pool: name })
            : new WorkerCrashed({ pool: name, worker: member.worker.name, command, cause: e }))
        const timed = callTimeout === undefined ? call : Effect.timeoutFail(call, {
          duration: callTimeout,
          onTimeout: () =>
            new WorkerTimeout({ pool: name, worker: member.worker.name, command, millis: Duration.toMillis(callTimeout) })
        })
        const exit = yield* Effect.exit(restore(timed))
        const error = Exit.isFailure(exit) ? failureOf(exit.cause) : undefined
        yield* release(
          member,
          error instanceof WorkerTimeout ? "timeout" : error instanceof WorkerCrashed ? "crash" : "ok"
        )
        onWorkers--
        if (onWorkers === 0 && drained !== undefined) Deferred.unsafeDone(drained, Exit.void)
        return yield* exit
      })
    )

  const timeoutOf = (callOptions: CallOptions | undefined) =>
    callOptions?.timeout === undefined ? timeout : Duration.decode(callOptions.timeout)

  // The idle reaper: stops workers idle past maxIdle, down to min.
  const maxIdleMillis = Duration.toMillis(maxIdle)
  yield* Effect.forkIn(
    Effect.interruptible(Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(Duration.millis(Math.max(10, maxIdleMillis / 2)))
        const now = yield* Clock.currentTimeMillis
        for (const member of [...members]) {
          if (members.length <= min) break
          if (member.busy === 0 && now - member.idleSince >= maxIdleMillis) yield* stopLater(member, "ask")
        }
      }
    })),
    poolScope
  )

  // Shutdown: refuse new calls, let those on workers finish (up to drainTimeout), stop every worker.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      closed = true
      failWaiters(new PoolClosed({ pool: name }))
      if (onWorkers > 0) {
        drained = yield* Deferred.make<void>()
        // A finalizer is uninterruptible: the wait must be made interruptible for the deadline to cut it.
        yield* Effect.timeout(Effect.interruptible(Deferred.await(drained)), drainTimeout).pipe(Effect.ignore)
      }
      yield* Effect.forEach([...members], (member) => {
        takeOut(member, "stopping")
        return Effect.zipRight(askToStop(member), Scope.close(member.scope, Exit.void))
      }, { concurrency: "unbounded", discard: true })
    })
  )

  // The first `min` workers are started here, so that a pool that cannot start fails at once.
  starting += min
  yield* Effect.all(Array.from({ length: min }, () => startMember), { concurrency: "unbounded", discard: true })

  const pool: AmpPool = {
    name,
    callRemote: (command, args, callOptions) =>
      retryCrashed(
        onWorker(command.name, (m) => m.worker.amp.callRemote(command, args), timeoutOf(callOptions)),
        callOptions?.retry ?? options.retry
      ),
    callRemoteString: (command, fields, callOptions) =>
      retryCrashed(
        onWorker(command, (m) => m.worker.amp.callRemoteString(command, fields), timeoutOf(callOptions)),
        callOptions?.retry ?? options.retry
      ),
    withWorker: (f) => onWorker("withWorker", (m) => f(m.worker), undefined),
    stats: Effect.sync(() => {
      let busy = 0
      for (const m of members) if (m.busy > 0) busy++
      return {
        workers: members.length,
        busy,
        idle: members.length - busy,
        starting,
        queued: waiters.length,
        calls,
        restarts: { ...restarts }
      }
    })
  }
  return pool
})

/** The first typed failure of a cause: all the pool's bookkeeping looks at. */
const failureOf = <E>(cause: Cause.Cause<E>): E | undefined => Option.getOrUndefined(Cause.failureOption(cause))

/**
 * {@link make} as a layer providing {@link AmpPool}.
 *
 * @since 0.1.0
 */
export const layer = <E, R>(options: Options<E, R>): Layer.Layer<AmpPool, E, Exclude<R, Scope.Scope>> =>
  Layer.scoped(AmpPool, make(options))
