/**
 * AMP over any `Transport`: the box protocol and the dispatcher in one step,
 * for the transports of `effect-amp/node`, `PlatformSocket` and your own.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { Amp } from "./Amp.js"
import * as BinaryBoxProtocol from "./BinaryBoxProtocol.js"
import * as BoxDispatcher from "./BoxDispatcher.js"
import * as Responders from "./Responders.js"
import type { Transport } from "./Transport.js"

/**
 * Options of the box protocol and the dispatcher of a connection.
 *
 * @since 0.1.0
 */
export interface Options {
  readonly protocol?: BinaryBoxProtocol.Options
  readonly dispatcher?: BoxDispatcher.Options
}

/**
 * AMP over `transport`, answering with the `Responders` in context, if any:
 * a pure client needs none (the peer's calls then get `UNHANDLED`, as from a
 * Twisted `AMP` with no responders). The connection lives as long as the scope.
 *
 * @since 0.1.0
 */
export const over = (transport: Transport, options?: Options): Effect.Effect<Amp, never, Scope.Scope> =>
  Effect.gen(function*() {
    const protocol = yield* BinaryBoxProtocol.make(transport, options?.protocol)
    const responders = Option.getOrElse(yield* Effect.serviceOption(Responders.Responders), () => Responders.make())
    return yield* BoxDispatcher.make(protocol, responders, options?.dispatcher)
  })

/**
 * {@link over} for a caller with nothing else to do while the connection
 * lives (a server's connection handler): `receive` reads and dispatches the
 * peer's boxes in the caller's fiber, and returns once the connection has
 * ended (or switched); no reader fiber of its own. Run it once, right away.
 *
 * @since 0.1.0
 */
export const overReceiving = (
  transport: Transport,
  options?: Options,
  /** The responders; by default the `Responders` in context, if any. */
  responders?: Responders.Responders
): Effect.Effect<{ readonly amp: Amp; readonly receive: Effect.Effect<void> }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const protocol = yield* BinaryBoxProtocol.make(transport, options?.protocol)
    const answering = responders ??
      Option.getOrElse(yield* Effect.serviceOption(Responders.Responders), () => Responders.make())
    return yield* BoxDispatcher.makeReceiving(protocol, answering, options?.dispatcher)
  })
