/**
 * The pool over remote AMP servers instead of processes: each member is a
 * {@link Reconnecting} connection to one endpoint, and each call goes to
 * one member that is up and healthy, the least busy (ties in turn). A
 * member whose connection fails is routed around until it is back; calls
 * on it when it failed fail with `WorkerCrashed` (retried on another member
 * only with a `retry` schedule). While no member is up, calls wait or fail
 * with `NoMemberAvailable`, as `whenDown` says.
 *
 * It is an `AmpPool`: code written against `AmpPool.AmpPool` runs on
 * workers or on servers alike, so outgrowing one machine means a new layer.
 * Closing its scope stops taking calls (`PoolClosed`), lets those in flight
 * finish within `drainTimeout`, then closes the connections.
 *
 * With `effect-amp/node`, `NodeAmp.member(address)` makes a member from a
 * tcp, unix or tls address.
 *
 * @example
 * const pool = yield* RemotePool.make({
 *   members: [NodeAmp.member({ _tag: "tcp", host: "10.0.0.7", port: 7710 }), NodeAmp.member({ _tag: "tcp", host: "10.0.0.8", port: 7710 })],
 *   health: { check: (amp) => amp.callRemote(Ping, {}), interval: "5 seconds" }
 * })
 * const { total } = yield* pool.callRemote(Sum, { a: 1n, b: 2n })
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { Amp, CallOptions } from "./Amp.js"
import { NoMemberAvailable, PoolClosed, type PoolError, PoolQueueFull, WorkerCrashed } from "./AmpError.js"
import * as AmpPool from "./AmpPool.js"
import { isConnectionEnd, retryCrashed } from "./internal/poolCalls.js"
import { makeMember, type Member } from "./internal/reconnect.js"
import type * as Reconnecting from "./Reconnecting.js"

/**
 * One endpoint: a name (shown in errors and as the `worker` of a call) and
 * how to open a connection to it.
 *
 * @since 0.1.0
 */
export interface Endpoint<E = never, R = never> {
  readonly name: string
  readonly connect: Effect.Effect<Amp, E, R | Scope.Scope>
}

/**
 * Options of {@link make}; `backoff`, `health`, `whenDown` and
 * `waitTimeout` apply to every member.
 *
 * @since 0.1.0
 */
export interface Options<E = never, R = never> extends Reconnecting.ConnectionPolicy {
  readonly members: ReadonlyArray<Endpoint<E, R>>
  /** Shown in errors. Default `remote`. */
  readonly name?: string
  /** Calls one member takes at a time. Default: no limit (a server answers many at once). */
  readonly concurrency?: number
  /** Calls that may wait for a member; one more fails with `PoolQueueFull`. Default 10,000. */
  readonly maxQueued?: number
  /** Retries a call that failed with `WorkerCrashed`, on whichever member is up. Default: no retry. */
  readonly retry?: Schedule.Schedule<unknown, WorkerCrashed>
  /** How long the calls in flight may run on once the pool is closing. Default 10 s. */
  readonly drainTimeout?: Duration.DurationInput
}

/**
 * The pool: an `AmpPool`, plus the status of each member.
 *
 * @since 0.1.0
 */
export interface RemotePool extends AmpPool.AmpPool {
  readonly members: Effect.Effect<ReadonlyArray<{ readonly name: string; readonly status: Reconnecting.Status; readonly calls: number }>>
}

interface Slot {
  readonly member: Member
  inFlight: number
  calls: number
}

/**
 * Makes the pool; it lives as long as the scope. It starts connecting to
 * every member at once and does not wait for them.
 *
 * @since 0.1.0
 */
export const make: <E, R>(options: Options<E, R>) => Effect.Effect<RemotePool, never, R | Scope.Scope> = Effect.fn(
  "RemotePool.make"
)(function*<E, R>(options: Options<E, R>) {
  const name = options.name ?? "remote"
  const concurrency = options.concurrency ?? Infinity
  const maxQueued = options.maxQueued ?? 10_000
  const drainTimeout = Duration.decode(options.drainTimeout ?? Duration.seconds(10))
  const whenDown = options.whenDown ?? "wait"
  const waitTimeout = options.waitTimeout === undefined ? undefined : Duration.decode(options.waitTimeout)
  const report = { pool: name, members: options.members.length }
  let waiters: Array<() => void> = []
  const wake = () => {
    const ws = waiters
    waiters = []
    for (const w of ws) w()
  }
  let closed = false
  let calls = 0
  let inFlight = 0
  let drained: Deferred.Deferred<void> | undefined
  let turn = 0

  // Closing: refuse calls, let those in flight finish, then the members' connections close
  // (their finalizers were added before this one, so they run after it).
  const slots: Array<Slot> = []
  for (const endpoint of options.members) {
    const member = yield* makeMember(
      {
        name: endpoint.name,
        connect: endpoint.connect,
        ...(options.backoff !== undefined ? { backoff: options.backoff } : {}),
        ...(options.health !== undefined ? { health: options.health } : {})
      },
      wake,
      report
    )
    slots.push({ member, inFlight: 0, calls: 0 })
  }
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      closed = true
      wake()
      if (inFlight > 0) {
        drained = yield* Deferred.make<void>()
        // A finalizer is uninterruptible: the wait must be made interruptible for the deadline to cut it.
        yield* Effect.timeout(Effect.interruptible(Deferred.await(drained)), drainTimeout).pipe(Effect.ignore)
      }
    })
  )

  /** The member up with the fewest calls in flight, in turn among equals. */
  const pick = (): Slot | undefined => {
    let best: Slot | undefined
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[(turn + i) % slots.length]!
      if (slot.member.current() === undefined || slot.inFlight >= concurrency) continue
      if (best === undefined || slot.inFlight < best.inFlight) best = slot
    }
    if (best !== undefined) turn = (slots.indexOf(best) + 1) % slots.length
    return best
  }
  const anyUp = () => slots.some((s) => s.member.current() !== undefined)
  const noMember = () => new NoMemberAvailable(report)

  const acquireNow = (): Effect.Effect<Slot, PoolError> | undefined => {
    if (closed) return Effect.fail(new PoolClosed({ pool: name }))
    const slot = pick()
    if (slot !== undefined) {
      slot.inFlight++
      inFlight++
      return Effect.succeed(slot)
    }
    if (whenDown === "fail" && !anyUp()) return Effect.fail(noMember())
    if (slots.every((s) => s.member.unsafeStatus() === "stopped")) return Effect.fail(noMember())
    if (waiters.length >= maxQueued) return Effect.fail(new PoolQueueFull({ pool: name, limit: maxQueued }))
    return undefined
  }

  /** Waits for a member with a free slot, woken by every status change and every call's end. */
  const waitForSlot: Effect.Effect<Slot, PoolError> = Effect.suspend(() =>
    acquireNow() ??
      Effect.zipRight(
        Effect.async<void>((resume) => {
          const w = () => resume(Effect.void)
          waiters.push(w)
          return Effect.sync(() => {
            waiters = waiters.filter((x) => x !== w)
          })
        }),
        waitForSlot
      )
  )
  const acquire: Effect.Effect<Slot, PoolError> = Effect.suspend(() =>
    acquireNow() ??
      (waitTimeout === undefined
        ? waitForSlot
        : Effect.timeoutFail(waitForSlot, { duration: waitTimeout, onTimeout: () => (anyUp() ? new PoolQueueFull({ pool: name, limit: maxQueued }) : noMember()) }))
  )

  const release = (slot: Slot) =>
    Effect.sync(() => {
      slot.inFlight--
      slot.calls++
      inFlight--
      calls++
      if (inFlight === 0 && drained !== undefined) Deferred.unsafeDone(drained, Exit.void)
      wake()
    })

  const onMember = <A, E2, R2>(
    command: string,
    use: (amp: Amp, slot: Slot) => Effect.Effect<A, E2, R2>
  ): Effect.Effect<A, E2 | PoolError, R2> =>
    Effect.acquireUseRelease(
      acquire,
      (slot) => {
        const amp = slot.member.current()
        // Picked as up in this same step, so it still is; the guard keeps the types honest.
        if (amp === undefined) return Effect.fail(noMember())
        return Effect.mapError(use(amp, slot), (e): E2 | PoolError =>
          isConnectionEnd(e) ? new WorkerCrashed({ pool: name, worker: slot.member.name, command, cause: e }) : e)
      },
      release
    )

  const callOptionsOf = (callOptions: CallOptions | undefined): CallOptions | undefined =>
    callOptions?.timeout === undefined ? undefined : { timeout: callOptions.timeout }

  const pool: RemotePool = {
    name,
    callRemote: (command, args, callOptions) =>
      retryCrashed(
        onMember(command.name, (amp) => amp.callRemote(command, args, callOptionsOf(callOptions))),
        callOptions?.retry ?? options.retry
      ),
    callRemoteString: (command, fields, callOptions) =>
      retryCrashed(
        onMember(command, (amp) => amp.callRemoteString(command, fields, callOptionsOf(callOptions))),
        callOptions?.retry ?? options.retry
      ),
    withWorker: (f) => onMember("withWorker", (amp, slot) => f({ amp, name: slot.member.name })),
    stats: Effect.sync(() => {
      let up = 0
      let busy = 0
      let connecting = 0
      let losses = 0
      for (const s of slots) {
        const status = s.member.unsafeStatus()
        if (status === "up" || status === "unhealthy") up++
        if (status === "connecting") connecting++
        if (s.inFlight > 0) busy++
        losses += s.member.unsafeLosses()
      }
      return {
        workers: up,
        busy,
        idle: up - busy,
        starting: connecting,
        queued: waiters.length,
        calls,
        restarts: { crash: losses, timeout: 0, recycle: 0 }
      }
    }),
    members: Effect.sync(() => slots.map((s) => ({ name: s.member.name, status: s.member.unsafeStatus(), calls: s.calls })))
  }
  return pool
})

/**
 * {@link make} as a layer providing `AmpPool.AmpPool`: code written against
 * a pool of workers runs on remote servers unchanged.
 *
 * @since 0.1.0
 */
export const layer = <E, R>(options: Options<E, R>): Layer.Layer<AmpPool.AmpPool, never, Exclude<R, Scope.Scope>> =>
  Layer.scoped(AmpPool.AmpPool, make(options))
