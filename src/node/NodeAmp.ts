/**
 * AMP connections and servers on Node sockets: the transports of this
 * folder with `BinaryBoxProtocol` and `BoxDispatcher` on top.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { Amp } from "../Amp.js"
import type { ConnectError, ListenError } from "../AmpError.js"
import * as AmpConnection from "../AmpConnection.js"
import type * as RemotePool from "../RemotePool.js"
import * as Responders from "../Responders.js"
import type { Transport } from "../Transport.js"
import { Once } from "../internal/once.js"
import * as NodeConnect from "./NodeConnect.js"
import * as NodeServer from "./NodeServer.js"

/** Options of the AMP layers over a transport. */
export type AmpOptions = AmpConnection.Options

/**
 * AMP over a transport you already have (`AmpConnection.over`): the
 * `Responders` in context answer the peer, if there are any.
 *
 * @since 0.1.0
 */
export const over: (transport: Transport, options?: AmpOptions) => Effect.Effect<Amp, never, Scope.Scope> = AmpConnection.over

/**
 * Connects and speaks AMP.
 *
 * @example
 * const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port: 7710 })
 */
export const connect = (
  address: NodeConnect.Address,
  options?: AmpOptions & NodeConnect.Options
): Effect.Effect<Amp, ConnectError, Scope.Scope> =>
  Effect.flatMap(NodeConnect.connect(address, options), (t) => over(t, options))

/**
 * An endpoint for `RemotePool` and `Reconnecting`: the address, formatted,
 * as its name, and {@link connect} to it.
 *
 * @example
 * const pool = yield* RemotePool.make({ members: [NodeAmp.member({ _tag: "tcp", host: "10.0.0.7", port: 7710 })] })
 */
export const member = (
  address: NodeConnect.Address,
  options?: AmpOptions & NodeConnect.Options
): RemotePool.Endpoint<ConnectError> => ({ name: NodeConnect.format(address), connect: connect(address, options) })

/** `connect` as a layer providing `Amp`. */
export const layerConnect = (
  address: NodeConnect.Address,
  options?: AmpOptions & NodeConnect.Options
): Layer.Layer<Amp, ConnectError> => Layer.scoped(Amp, connect(address, options))

/**
 * Serves AMP: every connection gets its own dispatcher over the
 * `Responders` in context, and lives until the peer goes (or a protocol it
 * switched to finishes). `onConnection` runs for each new connection (logs,
 * calls towards the client).
 *
 * Closing the scope drains every connection (`Amp.drain`): the listener
 * closes at once, no new command is dispatched, running responders have
 * `drainTimeoutMillis` (default 5 s) to answer, calls still running then are
 * answered with `UNKNOWN` (the caller gets `UnknownRemoteError`), and each
 * connection closes after writing what it had queued.
 *
 * @example
 * const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 7710 })
 */
export const serve = <E = never, R = never>(
  address: NodeServer.ListenAddress,
  options?: AmpOptions & NodeServer.Options & {
    readonly onConnection?: (amp: Amp) => Effect.Effect<void, E, R>
  }
): Effect.Effect<NodeServer.Server, ListenError, Responders.Responders | R | Scope.Scope> =>
  Effect.gen(function*() {
    const responders = yield* Responders.Responders
    return yield* NodeServer.listen(
      address,
      // A chain of effects rather than Effect.gen: a generator alive per connection costs its own prototype and shape.
      (transport, connection) =>
        Effect.suspend(() => {
          // Registered before the dispatcher exists, so no drain can start between the two unseen.
          const built = new Once<Amp>()
          const drain = Effect.flatMap(built.await, (amp) => amp.drain(connection.drainTimeout))
          return Effect.zipRight(
            connection.onDrain(drain),
            // The responders as an argument: providing them would copy the fiber's refs for each connection.
            Effect.flatMap(AmpConnection.overReceiving(transport, options, responders), ({ amp, receive }) => {
              built.done(Exit.succeed(amp))
              // The boxes are read here, in the handler's fiber: a connection costs one fiber.
              const serving = Effect.zipRight(receive, amp.done)
              const onConnection = options?.onConnection
              if (onConnection === undefined) return serving
              return Effect.flatMap(Effect.forkScoped(Effect.ignoreLogged(onConnection(amp))), (hook) =>
                // A short grace so a hook that watches `amp.ended` (to log it, say) sees the end.
                Effect.zipRight(serving, Effect.timeoutOption(Fiber.await(hook), "1 second")))
            })
          )
        }),
      options
    )
  })
