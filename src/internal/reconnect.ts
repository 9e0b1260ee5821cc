/**
 * The machinery of `Reconnecting` and `RemotePool`: the fiber that
 * connects, waits for the end and connects again, and the status the
 * pool routes by.
 */
import type * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import type { Amp } from "../Amp.js"
import { NoMemberAvailable } from "../AmpError.js"
import type { HealthCheck, Options, Reconnecting, Status } from "../Reconnecting.js"
import { Once } from "./once.js"

/** The default backoff: 100 ms, doubling, never more than 5 s apart, without end. */
export const defaultBackoff: Schedule.Schedule<unknown, unknown> = Schedule.union(
  Schedule.exponential(Duration.millis(100)),
  Schedule.spaced(Duration.seconds(5))
)

/** A member as `RemotePool` drives it: the connection plus what the pool needs to route. */
export interface Member extends Reconnecting {
  /** Up and healthy: the connection, without waiting. */
  readonly current: () => Amp | undefined
  readonly unsafeStatus: () => Status
  readonly unsafeLosses: () => number
}

/**
 * A reconnecting connection (`Reconnecting.make`), with `onChange` called
 * at every status change: RemotePool's routing listens.
 */
export const makeMember = <E, R>(
  options: Options<E, R>,
  onChange: () => void,
  /** The `members` count `NoMemberAvailable` reports, and its pool name. */
  report: { readonly pool: string; readonly members: number }
): Effect.Effect<Member, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    const name = options.name ?? "connection"
    const whenDown = options.whenDown ?? "wait"
    const waitTimeout = options.waitTimeout === undefined ? undefined : Duration.decode(options.waitTimeout)
    const driver = yield* Schedule.driver(options.backoff ?? defaultBackoff)
    const context = yield* Effect.context<R>()
    let status: Status = "connecting"
    let current: Amp | undefined
    let connects = 0
    let losses = 0
    let waiters: Array<Once<Amp, NoMemberAvailable>> = []
    const noMember = () => new NoMemberAvailable({ pool: report.pool, members: report.members })

    const setStatus = (next: Status) => {
      if (status === next) return
      status = next
      if (next === "up" && current !== undefined) {
        const ws = waiters
        waiters = []
        for (const w of ws) w.done(Exit.succeed(current))
      } else if (next === "stopped") {
        const ws = waiters
        waiters = []
        for (const w of ws) w.done(Exit.fail(noMember()))
      }
      onChange()
    }

    const healthLoop = (amp: Amp, check: HealthCheck): Effect.Effect<never> => {
      const interval = Duration.decode(check.interval ?? Duration.seconds(5))
      const timeout = Duration.decode(check.timeout ?? Duration.seconds(2))
      return Effect.forever(
        Effect.gen(function*() {
          yield* Effect.sleep(interval)
          const passed = yield* check.check(amp).pipe(Effect.timeout(timeout), Effect.isSuccess)
          if (current === amp) setStatus(passed ? "up" : "unhealthy")
        })
      )
    }

    /** Connects, serves until the connection ends, and again, until the backoff gives up. */
    const supervise = Effect.gen(function*() {
      for (;;) {
        setStatus("connecting")
        const scope = yield* Scope.make()
        const opened = yield* options.connect.pipe(Scope.extend(scope), Effect.provide(context), Effect.exit)
        if (Exit.isFailure(opened)) {
          yield* Scope.close(scope, Exit.void)
          yield* Effect.logDebug(`AMP ${name}: connecting failed`, opened.cause as Cause.Cause<unknown>)
          setStatus("down")
          if (Either.isLeft(yield* Effect.either(driver.next(opened.cause)))) return setStatus("stopped")
          continue
        }
        yield* driver.reset
        connects++
        const amp = opened.value
        current = amp
        setStatus("up")
        if (options.health !== undefined) yield* Effect.forkIn(healthLoop(amp, options.health), scope)
        const reason = yield* amp.ended
        current = undefined
        losses++
        yield* Effect.logDebug(`AMP ${name}: connection lost (${reason._tag}); reconnecting`)
        setStatus("down")
        yield* Scope.close(scope, Exit.void)
      }
    })
    yield* Effect.forkScoped(Effect.interruptible(supervise))
    yield* Effect.addFinalizer(() => Effect.sync(() => setStatus("stopped")))

    const connection: Effect.Effect<Amp, NoMemberAvailable> = Effect.suspend(() => {
      if (status === "up" && current !== undefined) return Effect.succeed(current)
      if (status === "stopped" || whenDown === "fail") return Effect.fail(noMember())
      const waiter = new Once<Amp, NoMemberAvailable>()
      waiters.push(waiter)
      const wait = Effect.ensuring(
        waiter.await,
        Effect.sync(() => {
          waiters = waiters.filter((w) => w !== waiter)
        })
      )
      return waitTimeout === undefined ? wait : Effect.timeoutFail(wait, { duration: waitTimeout, onTimeout: noMember })
    })

    return {
      name,
      status: Effect.sync(() => status),
      connection,
      callRemote: (command, args, callOptions) => Effect.flatMap(connection, (amp) => amp.callRemote(command, args, callOptions)),
      callRemoteString: (command, fields, callOptions) =>
        Effect.flatMap(connection, (amp) => amp.callRemoteString(command, fields, callOptions)),
      counts: Effect.sync(() => ({ connects, losses })),
      current: () => (status === "up" ? current : undefined),
      unsafeStatus: () => status,
      unsafeLosses: () => losses
    } satisfies Member
  })

