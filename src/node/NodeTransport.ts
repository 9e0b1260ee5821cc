/**
 * A `Transport` over a Node socket (TCP, UNIX, TLS) or over a pair of Node
 * streams (stdio, a child's pipes).
 *
 * - Reading: `data` events go into a small inbox that the box protocol
 *   drains (`takeChunks`, or the `incoming` Stream over it). Past
 *   `readBufferChunks` chunks or `readHighWaterMark` bytes waiting there,
 *   the socket is paused until the consumer catches up: Twisted's
 *   `pauseProducing`, and the reason a slow consumer cannot make memory grow.
 * - Writing: straight to the socket (the protocol above batches one
 *   event-loop turn into one write). `write` says `false` past
 *   `writeHighWaterMark` buffered bytes; `writable` waits for `drain`.
 * - StartTLS: the current socket is wrapped in a `TLSSocket`. Bytes already
 *   read past the boundary (`leftover`), then whatever the inbox holds, are
 *   the first TLS records: they are put back in front of the socket's
 *   readable buffer, which `TLSSocket` reads before the wire.
 * - Detach: the socket (plain or TLS) goes to another protocol with the same
 *   care, as a `RawConnection` or as the Node socket itself
 *   ({@link detachToDuplex}).
 *
 * @since 0.1.0
 */
import type { Duplex, Readable, Writable } from "node:stream"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { TransportUnsupported } from "../AmpError.js"
import type { Transport, WithDetach, WithTlsAndDetach } from "../Transport.js"
import { connectionOf, transportOf } from "./internal/ConnectionTransport.js"

export { mapError, secureContextOptions, sessionOf } from "./internal/nodeTls.js"
export { hostPort } from "./internal/streams.js"

/**
 * Options of {@link fromSocket} and {@link fromStreams}.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Which side of the connection we are: the default TLS role (the side that connected is the TLS client). */
  readonly role: "client" | "server"
  /** `tcp`, `unix`, `tls`, `stdio`, `child`... as `info().kind`. Guessed from the socket when absent. */
  readonly kind?: string
  /** Chunks read but not yet taken by the consumer before the socket is paused. Default 16. */
  readonly readBufferChunks?: number
  /** Bytes read but not yet taken by the consumer before the socket is paused. Default 1 MiB. */
  readonly readHighWaterMark?: number
  /** Bytes buffered for writing before `write` returns `false`. Default 1 MiB. */
  readonly writeHighWaterMark?: number
  /** How long a graceful close may take before the socket is destroyed. Default 2000 ms. */
  readonly closeTimeoutMillis?: number
  /** How long a StartTLS handshake may take before it fails with `TlsError` (code `ETIMEDOUT`). Default 30000 ms; 0 waits forever. */
  readonly handshakeTimeoutMillis?: number
  /**
   * Turn Nagle's algorithm off (TCP_NODELAY). Default true: the box protocol
   * already gathers a turn's boxes into one write, so holding a small write
   * back for more only adds a round trip of latency to every lone call.
   */
  readonly noDelay?: boolean
  /** `info().localAddress`, when the socket cannot tell (a UNIX socket's path). */
  readonly localAddress?: string
  /** `info().peerAddress`, when the socket cannot tell (a UNIX socket's path). */
  readonly peerAddress?: string
}

/** Options of {@link fromStreams}. */
export interface StreamOptions extends Options {
  /** Destroy both streams once closed (a child's pipes) rather than only pausing the input (this process's stdin). Default false. */
  readonly destroyOnClose?: boolean
}

/**
 * A transport over a connected socket (TCP, UNIX, or TLS from the first
 * byte). The socket is closed with the scope: a graceful end, then destroyed
 * after `closeTimeoutMillis`.
 *
 * @since 0.1.0
 */
export const fromSocket = (socket: Duplex, options: Options): Effect.Effect<WithTlsAndDetach, never, Scope.Scope> =>
  transportOf({ socket, input: socket, output: socket }, options) as Effect.Effect<
    WithTlsAndDetach,
    never,
    Scope.Scope
  >

/**
 * A transport reading `input` and writing `output` (stdio, a child's pipes).
 * A pair of streams has no TLS capability (StartTLS fails with
 * `TransportUnsupported`); detaching works. Closing ends
 * `output` and lets go of `input` (destroys both with `destroyOnClose`).
 *
 * @since 0.1.0
 */
export const fromStreams = (
  input: Readable,
  output: Writable,
  options: StreamOptions
): Effect.Effect<WithDetach, never, Scope.Scope> =>
  transportOf({ socket: undefined, input, output }, options) as Effect.Effect<
    WithDetach,
    never,
    Scope.Scope
  >

/**
 * Hands the connection to a library that wants a Node `Duplex`: the
 * transport stops reading (its `incoming` ends), `leftover` and every byte
 * it had buffered are put back in front of the socket's readable side, and
 * the socket itself is returned (the `TLSSocket` after StartTLS). It comes
 * back with no reader attached and not flowing: the next `data` listener (or
 * `pipe`) starts it.
 *
 * The transport's scope still owns the socket: keep it open while the
 * duplex is in use. Fails with `TransportUnsupported` for a transport not
 * made by this module (use `RawDuplex.toDuplex` over `detach` there) or one
 * already handed over.
 *
 * @since 0.1.0
 */
export const detachToDuplex = (transport: Transport, leftover: Uint8Array): Effect.Effect<Duplex, TransportUnsupported> =>
  Effect.suspend(() => {
    const connection = connectionOf(transport)
    return connection === undefined
      ? Effect.fail(new TransportUnsupported({ operation: "detachToDuplex", transport: transport.info().kind }))
      : connection.detachToDuplex(leftover)
  })
