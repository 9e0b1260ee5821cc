/**
 * The public face of a {@link NodeConnection}: a `Transport` whose members
 * are made on first read and then kept (a connection the box protocol
 * drives through the fast path never reads most of them), and whose fast
 * path is the connection itself.
 *
 * Internal: not exported by the package. (Not tagged internal for tsc:
 * `stripInternal` would drop this file's first import from its .d.ts.)
 */
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import { FastPathId, fastPathOf, writeThrough } from "../../internal/transportFastPath.js"
import type { Transport } from "../../Transport.js"
import type { StreamOptions } from "../NodeTransport.js"
import { type Io, NodeConnection } from "./NodeConnection.js"

/** Over a pair of streams: no TLS capability. */
class ConnectionTransport implements Transport {
  readonly canStartTls: boolean
  readonly #connection: NodeConnection
  #incoming: Transport["incoming"] | undefined = undefined
  #write: Transport["write"] | undefined = undefined
  #detach: NonNullable<Transport["detach"]> | undefined = undefined
  #info: Transport["info"] | undefined = undefined

  constructor(connection: NodeConnection) {
    this.#connection = connection
    // Whether it can at the start (the dispatcher asks once, before any StartTLS).
    this.canStartTls = connection.canStartTls
  }

  /** The connection is the fast path (and what `connectionOf` finds). */
  get [FastPathId](): NodeConnection {
    return this.#connection
  }

  get incoming(): Transport["incoming"] {
    return (this.#incoming ??= this.#connection.inbox.stream())
  }

  get write(): Transport["write"] {
    return (this.#write ??= writeThrough(this.#connection))
  }

  get close(): Effect.Effect<void> {
    return this.#connection.close
  }

  get detach(): NonNullable<Transport["detach"]> {
    const c = this.#connection
    return (this.#detach ??= (leftover) => c.detach(leftover))
  }

  get info(): Transport["info"] {
    const c = this.#connection
    return (this.#info ??= () => c.info())
  }
}

/** Over a socket: StartTLS too. */
class SocketTransport extends ConnectionTransport {
  #startTls: NonNullable<Transport["startTls"]> | undefined = undefined

  get startTls(): NonNullable<Transport["startTls"]> {
    const c = this[FastPathId]
    return (this.#startTls ??= (options, leftover) => c.startTls(options, leftover))
  }
}

const plainConnection = (io: Io, options: StreamOptions): NodeConnection => new NodeConnection(io, options)

/**
 * The transport over a connection on `io`, made when this runs (by `make`:
 * a subclass of NodeConnection may carry more) and closed with the current scope.
 */
export const transportOf = (
  io: Io,
  options: StreamOptions,
  make: (io: Io, options: StreamOptions) => NodeConnection = plainConnection
): Effect.Effect<Transport, never, Scope.Scope> =>
  Effect.flatMap(Effect.scope, (scope) => {
    const connection = make(io, options)
    // addFinalizerExit, not addFinalizer: the latter wraps the finalizer in one more closure and effect.
    return Effect.as(
      Scope.addFinalizerExit(scope, () => connection.close),
      connection.hasSocket ? new SocketTransport(connection) : new ConnectionTransport(connection)
    )
  })

/** The connection under a transport made by {@link transportOf}, if it is one. */
export const connectionOf = (transport: Transport): NodeConnection | undefined => {
  const fast = fastPathOf(transport)
  return fast instanceof NodeConnection ? fast : undefined
}
