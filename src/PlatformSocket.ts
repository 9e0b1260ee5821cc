/**
 * AMP over `@effect/platform` sockets: a `Transport` from any
 * `Socket.Socket` (a WebSocket from `Socket.makeWebSocket`, a `NodeSocket`,
 * a socket from a `SocketServer`), and AMP servers over a `SocketServer`.
 *
 * Only `@effect/platform` is used here, so this runs wherever the codec and
 * the dispatcher do: in a browser over a WebSocket, too.
 *
 * - Reading: the socket's `run` feeds an inbox that the box protocol drains.
 *   Past `readHighWaterMark` unread bytes the socket is paused, when it can
 *   be: a Node `net.Socket` or a `ws` WebSocket under `@effect/platform-node`.
 *   A socket that cannot pause (a browser's WebSocket, a socket of unknown
 *   make) goes on buffering up to `maxUnreadBytes`; past that the
 *   connection fails with `ConnectionLost` rather than let memory grow.
 * - Writing: `Transport.write` is synchronous and `Socket.writer` is an
 *   Effect, so bytes go into a queue that a writer fiber empties in order.
 *   `write` returns `false` once the bytes queued and not yet written by the
 *   socket (plus, for a WebSocket whose handle is known, its
 *   `bufferedAmount`) pass `writeHighWaterMark`; `writable` waits until they
 *   are back under it.
 * - Closing: everything written so far goes out first, then our side ends
 *   (a WebSocket close frame with code 1000; the end of a `NodeSocket`'s
 *   writable side), then we wait for the peer's end for at most
 *   `closeTimeoutMillis` before the socket is released.
 * - StartTLS and detaching are not possible over these sockets: both fail
 *   with `TransportUnsupported` naming the kind (`websocket`, `socket`).
 *
 * @since 0.1.0
 */
import * as Socket from "@effect/platform/Socket"
import * as SocketServer from "@effect/platform/SocketServer"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { Amp } from "./Amp.js"
import { ConnectionLost } from "./AmpError.js"
import * as AmpConnection from "./AmpConnection.js"
import { Responders } from "./Responders.js"
import { handleOf, make, type WebSocketLike, webSockets } from "./internal/platformSocketTransport.js"
import { Transport } from "./Transport.js"

export type { State } from "./internal/platformSocketTransport.js"

/**
 * Options of {@link transport}.
 *
 * @since 0.1.0
 */
export interface Options {
  /**
   * `info().kind`, and the name in `TransportUnsupported`. Guessed when
   * absent: `websocket` for a socket from {@link makeWebSocket} or served by
   * a WebSocket server, or once the first message shows a WebSocket
   * underneath; `socket` otherwise.
   */
  readonly kind?: string
  /** Bytes queued for writing (and not yet written by the socket) before `write` returns `false`. Default 1 MiB. */
  readonly writeHighWaterMark?: number
  /** Unread bytes before the socket is paused (when it can be). Default 1 MiB. */
  readonly readHighWaterMark?: number
  /** Unread bytes at which a socket that cannot pause fails with `ConnectionLost`. Default 64 MiB. */
  readonly maxUnreadBytes?: number
  /** How long a graceful close waits for the peer's end before the socket is released. Default 2000 ms. */
  readonly closeTimeoutMillis?: number
  /** `info().localAddress` (a socket does not tell). */
  readonly localAddress?: string
  /** `info().peerAddress` (a socket does not tell). */
  readonly peerAddress?: string
}

/**
 * Options of the AMP helpers: the transport's, the box protocol's and the dispatcher's.
 *
 * @since 0.1.0
 */
export interface AmpOptions extends Options, AmpConnection.Options {}

/**
 * A `Transport` over an `@effect/platform` socket. Waits until the socket is
 * open (fails with `ConnectionLost` when it cannot open) and runs it until
 * the scope closes, which closes the connection gracefully.
 *
 * A WebSocket's text messages are read as their UTF-8 bytes; what we send
 * are binary messages, one per write (small writes of one turn joined).
 *
 * @example
 * import { NodeSocket } from "@effect/platform-node"
 * import { PlatformSocket } from "effect-amp/platform"
 *
 * const program = Effect.gen(function*() {
 *   const socket = yield* NodeSocket.makeNet({ host: "127.0.0.1", port: 7710 })
 *   const transport = yield* PlatformSocket.transport(socket)
 *   yield* transport.write(new Uint8Array([0, 4, 0x70, 0x69, 0x6e, 0x67]))
 * })
 *
 * @since 0.1.0
 */
export const transport = (socket: Socket.Socket, options?: Options): Effect.Effect<Transport, ConnectionLost, Scope.Scope> =>
  Effect.flatMap(Effect.context<never>(), (context) => make(socket, options, handleOf(context)))

/**
 * {@link transport} over the `Socket.Socket` in context, as a layer.
 *
 * @example
 * const TransportLive = PlatformSocket.layer().pipe(Layer.provide(NodeSocket.layerWebSocket("ws://127.0.0.1:8080")))
 *
 * @since 0.1.0
 */
export const layer = (options?: Options): Layer.Layer<Transport, ConnectionLost, Socket.Socket> =>
  Layer.scoped(Transport, Effect.flatMap(Socket.Socket, (socket) => transport(socket, options)))

/**
 * AMP over an `@effect/platform` socket, answering the peer's calls with the
 * `Responders` in context, if any (a pure client needs none). The
 * connection lives as long as the scope.
 *
 * @example
 * // In a browser: the platform's WebSocket and the codec are all it takes.
 * const program = Effect.gen(function*() {
 *   const socket = yield* PlatformSocket.makeWebSocket("wss://example.org/amp")
 *   const amp = yield* PlatformSocket.amp(socket)
 *   return yield* amp.callRemote(Sum, { a: 1n, b: 2n })
 * }).pipe(Effect.scoped, Effect.provide(Socket.layerWebSocketConstructorGlobal))
 *
 * @since 0.1.0
 */
export const amp = (socket: Socket.Socket, options?: AmpOptions): Effect.Effect<Amp, ConnectionLost, Scope.Scope> =>
  Effect.flatMap(transport(socket, options), (t) => AmpConnection.over(t, options))

/**
 * {@link amp} over the `Socket.Socket` in context, as a layer providing `Amp`.
 *
 * @example
 * const AmpLive = PlatformSocket.layerAmp().pipe(
 *   Layer.provide(NodeSocket.layerNet({ host: "127.0.0.1", port: 7710 }))
 * )
 *
 * @since 0.1.0
 */
export const layerAmp = (options?: AmpOptions): Layer.Layer<Amp, ConnectionLost, Socket.Socket> =>
  Layer.scoped(Amp, Effect.flatMap(Socket.Socket, (socket) => amp(socket, options)))

/**
 * `Socket.makeWebSocket`, with two things AMP wants: binary messages arrive
 * as `ArrayBuffer`s (a browser's default, `Blob`, is read asynchronously),
 * and the transport knows the WebSocket underneath, so that `write` counts
 * its `bufferedAmount` and `info().kind` is `websocket` from the start.
 * Uses the `Socket.WebSocketConstructor` in context
 * (`Socket.layerWebSocketConstructorGlobal` in a browser,
 * `NodeSocket.layerWebSocketConstructor` under Node).
 *
 * @example
 * const socket = yield* PlatformSocket.makeWebSocket("ws://127.0.0.1:8080")
 * const amp = yield* PlatformSocket.amp(socket)
 *
 * @since 0.1.0
 */
export const makeWebSocket = (
  url: string | Effect.Effect<string>,
  options?: Parameters<typeof Socket.makeWebSocket>[1]
): Effect.Effect<Socket.Socket, never, Socket.WebSocketConstructor> =>
  Effect.gen(function*() {
    const construct = yield* Socket.WebSocketConstructor
    let current: WebSocketLike | undefined
    const socket = yield* Socket.makeWebSocket(url, options).pipe(
      Effect.provideService(Socket.WebSocketConstructor, (u, protocols) => {
        const ws = construct(u, protocols)
        ws.binaryType = "arraybuffer"
        current = ws as unknown as WebSocketLike
        return ws
      })
    )
    webSockets.set(socket, () => current)
    return socket
  })

/**
 * Runs `server`, handing each connection to `handler` as a `Transport`.
 * The handler runs in the connection's scope, which closes the transport
 * when the handler is done. Never returns: fork it, or run it as
 * the program. A connection that fails to open is dropped.
 *
 * @example
 * const server = yield* NodeSocketServer.makeWebSocket({ host: "127.0.0.1", port: 0 })
 * yield* Effect.forkScoped(PlatformSocket.serveTransports(server, (t) => echo(t)))
 *
 * @since 0.1.0
 */
export const serveTransports = <A, E, R>(
  server: SocketServer.SocketServer["Type"],
  handler: (transport: Transport) => Effect.Effect<A, E, R>,
  options?: Options
): Effect.Effect<never, SocketServer.SocketServerError, Exclude<R, Scope.Scope>> =>
  server.run((socket) =>
    Effect.scoped(Effect.flatMap(transport(socket, options), handler)).pipe(
      Effect.catchIf((e): e is ConnectionLost => e instanceof ConnectionLost, () => Effect.void)
    )
  )

/**
 * Serves AMP on a `SocketServer` (a platform-node WebSocket server, a
 * `NodeSocketServer`, ...): each connection gets its own dispatcher over the
 * `Responders` in context and lives until the peer goes. `onConnection`
 * runs for each new connection (logs, calls towards the client). Never
 * returns: fork it, or use {@link layerServe}.
 *
 * @example
 * const server = yield* NodeSocketServer.makeWebSocket({ host: "127.0.0.1", port: 8080 })
 * yield* PlatformSocket.serve(server).pipe(Effect.provide(Responders.layer(...Demo.responders)))
 *
 * @since 0.1.0
 */
export const serve = <E = never, R = never>(
  server: SocketServer.SocketServer["Type"],
  options?: AmpOptions & { readonly onConnection?: (amp: Amp) => Effect.Effect<void, E, R> }
): Effect.Effect<never, SocketServer.SocketServerError, Responders | R> =>
  Effect.flatMap(Responders, (responders) =>
    serveTransports(
      server,
      (t) =>
        Effect.gen(function*() {
          const connection = yield* AmpConnection.over(t, options).pipe(Effect.provideService(Responders, responders))
          const hook = options?.onConnection
            ? yield* Effect.forkScoped(Effect.ignoreLogged(options.onConnection(connection)))
            : undefined
          yield* connection.done
          // A short grace so a hook that watches `amp.ended` sees the end.
          if (hook) yield* Effect.timeoutOption(Fiber.await(hook), "1 second")
        }),
      options
    ))

/**
 * {@link serve} on the `SocketServer` in context, for the life of the layer.
 *
 * @example
 * const ServerLive = PlatformSocket.layerServe().pipe(
 *   Layer.provide([NodeSocketServer.layerWebSocket({ host: "127.0.0.1", port: 8080 }), Responders.layer(...Demo.responders)])
 * )
 *
 * @since 0.1.0
 */
export const layerServe = <E = never, R = never>(
  options?: AmpOptions & { readonly onConnection?: (amp: Amp) => Effect.Effect<void, E, R> }
): Layer.Layer<never, never, SocketServer.SocketServer | Responders | R> =>
  Layer.scopedDiscard(
    Effect.flatMap(SocketServer.SocketServer, (server) => Effect.forkScoped(Effect.ignoreLogged(serve(server, options))))
  )
