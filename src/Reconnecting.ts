/**
 * One AMP connection to an endpoint that comes back when it is lost: a
 * fiber connects, waits for the connection's end, and connects again, with
 * the `backoff` schedule spacing the attempts that fail (reset once one
 * succeeds). Calls go to the connection of the moment; while there is none
 * they wait (`whenDown: "wait"`, the default, bounded by `waitTimeout`) or
 * fail at once with `NoMemberAvailable` (`whenDown: "fail"`).
 *
 * A call in flight when the connection drops fails with its typed end
 * (`ConnectionLost`, …) and is not resent: whether a command may run twice
 * is the caller's to say (`Effect.retry`).
 *
 * Health: with `health`, a command the user names is called every
 * `interval`; a member whose check fails or times out is `unhealthy` and
 * gets no calls until a check passes again. Its connection is kept.
 *
 * `RemotePool` spreads calls over several of these.
 *
 * @example
 * const amp = yield* Reconnecting.make({
 *   name: "tcp:10.0.0.7:7710",
 *   connect: NodeAmp.connect({ _tag: "tcp", host: "10.0.0.7", port: 7710 }),
 *   backoff: Schedule.exponential("100 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))
 * })
 * const { total } = yield* amp.callRemote(Sum, { a: 1n, b: 2n })
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { Amp, CallFailure, CallOptions } from "./Amp.js"
import type { AmpBox, ValueInput } from "./AmpBox.js"
import type { NoMemberAvailable } from "./AmpError.js"
import type * as Command from "./Command.js"
import { defaultBackoff as internalDefaultBackoff, makeMember } from "./internal/reconnect.js"

/**
 * A health check: `check` is called on the connection every `interval`
 * (default 5 s); failing, or taking longer than `timeout` (default 2 s),
 * marks the connection unhealthy until a check passes.
 *
 * @since 0.1.0
 */
export interface HealthCheck {
  readonly check: (amp: Amp) => Effect.Effect<unknown, unknown>
  readonly interval?: Duration.DurationInput
  readonly timeout?: Duration.DurationInput
}

/**
 * How calls behave while there is no connection, and how it is kept.
 *
 * @since 0.1.0
 */
export interface ConnectionPolicy {
  /**
   * Spaces the connection attempts that fail; it is reset once one succeeds,
   * and when it ends, reconnecting stops (`stopped`). Default: exponential
   * from 100 ms, at most 5 s apart, without end.
   */
  readonly backoff?: Schedule.Schedule<unknown, unknown>
  readonly health?: HealthCheck
  /** While no connection is up, calls wait (default) or fail with `NoMemberAvailable`. */
  readonly whenDown?: "wait" | "fail"
  /** With `whenDown: "wait"`: how long a call may wait for a connection. Default: no limit. */
  readonly waitTimeout?: Duration.DurationInput
}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 */
export interface Options<E = never, R = never> extends ConnectionPolicy {
  /** Opens one connection; it lives as long as the scope it is given. */
  readonly connect: Effect.Effect<Amp, E, R | Scope.Scope>
  /** Shown in errors and logs: the endpoint. Default `connection`. */
  readonly name?: string
}

/**
 * Where the connection is: `connecting`, `up`, `unhealthy` (up, failing its
 * health check), `down` (waiting to try again), or `stopped` (the backoff
 * schedule ended, or the scope closed).
 *
 * @since 0.1.0
 */
export type Status = "connecting" | "up" | "unhealthy" | "down" | "stopped"

/**
 * A reconnecting connection.
 *
 * @since 0.1.0
 */
export interface Reconnecting {
  readonly name: string
  readonly status: Effect.Effect<Status>
  /** The connection of the moment; waits for one, or fails, as `whenDown` says. */
  readonly connection: Effect.Effect<Amp, NoMemberAvailable>
  readonly callRemote: <C extends Command.Any>(
    command: C,
    args: Command.Arguments<C>,
    options?: CallOptions
  ) => Effect.Effect<Command.Response<C>, Command.Error<C> | CallFailure | NoMemberAvailable>
  readonly callRemoteString: (
    command: string,
    fields?: Readonly<Record<string, ValueInput>>,
    options?: CallOptions
  ) => Effect.Effect<AmpBox, CallFailure | NoMemberAvailable>
  /** Connections made, and lost, since it started. */
  readonly counts: Effect.Effect<{ readonly connects: number; readonly losses: number }>
}

/**
 * The connection in context, for {@link layer}.
 *
 * @since 0.1.0
 */
export const Reconnecting: Context.Tag<Reconnecting, Reconnecting> = Context.GenericTag<Reconnecting>(
  "effect-amp/Reconnecting"
)

/**
 * The default backoff: 100 ms, doubling, never more than 5 s apart, without end.
 *
 * @since 0.1.0
 */
export const defaultBackoff: Schedule.Schedule<unknown, unknown> = internalDefaultBackoff

/**
 * A reconnecting connection; it lives as long as the scope. It starts
 * connecting at once and does not wait for the first connection.
 *
 * @since 0.1.0
 */
export const make = <E, R>(options: Options<E, R>): Effect.Effect<Reconnecting, never, R | Scope.Scope> =>
  Effect.map(
    makeMember(options, () => {}, { pool: options.name ?? "connection", members: 1 }),
    ({ callRemote, callRemoteString, connection, counts, name, status }): Reconnecting => ({
      name,
      status,
      connection,
      callRemote,
      callRemoteString,
      counts
    })
  )

/**
 * {@link make} as a layer providing {@link Reconnecting}: one endpoint,
 * reconnected for the life of the layer.
 *
 * @since 0.1.0
 */
export const layer = <E, R>(options: Options<E, R>): Layer.Layer<Reconnecting, never, Exclude<R, Scope.Scope>> =>
  Layer.scoped(Reconnecting, make(options))
