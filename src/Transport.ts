/**
 * The byte pipe under an AMP connection.
 *
 * A `Transport` is what `BinaryBoxProtocol` needs from a connection and nothing
 * more: bytes in as a `Stream`, bytes out as an Effect that waits while the
 * peer is not reading, a graceful close and what is known of the two ends.
 * Two capabilities are optional, declared by being there:
 * upgrading to TLS in place (`startTls`) and handing the raw connection to
 * another protocol (`detach`). Where one is absent, StartTLS or a protocol
 * switch fails with `TransportUnsupported` naming the transport's kind.
 *
 * Implementations: the in-memory pair (`MemoryTransport`, for tests, runs
 * anywhere), the Node sockets under `effect-amp/node` and `@effect/platform`
 * sockets under `effect-amp/platform`. Ours also carry an internal fast path
 * (a write that never suspends, several chunks per system call, every waiting
 * chunk in one pull, descriptor passing); a transport of your own needs only
 * this interface, and the box protocol queues its boxes for it.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import type { ConnectionLost, OnlyOneTLS, PeerVerifyError, TlsError, TransportUnsupported } from "./AmpError.js"

/** What is known about the two ends of a connection. */
export interface ConnectionInfo {
  /** `tcp`, `unix`, `tls`, `stdio`, `child`, `memory`, ... */
  readonly kind: string
  readonly localAddress?: string
  readonly peerAddress?: string
  /** Set once TLS runs (from the first byte or after StartTLS). */
  readonly tls?: TlsSession
}

/** The peer certificate as Node reports it, reduced to what is portable. */
export interface PeerCertificate {
  readonly subject: Readonly<Record<string, string | ReadonlyArray<string>>>
  readonly issuer: Readonly<Record<string, string | ReadonlyArray<string>>>
  readonly fingerprint256: string
  readonly validFrom: string
  readonly validTo: string
  /** DER bytes. */
  readonly raw: Uint8Array
}

/** An established TLS session. */
export interface TlsSession {
  /** Whether the peer's certificate verified against our authorities. */
  readonly authorized: boolean
  readonly peerCertificate?: PeerCertificate
  readonly protocol?: string
  readonly cipher?: string
}

/**
 * How to run TLS. Certificates and keys are PEM text or bytes.
 *
 * With no `cert`, the side runs TLS without a certificate of its own, as
 * Twisted's StartTLS does by default (a TLS *server* needs one, so the
 * transport generates nothing: the server side must bring a certificate).
 */
export interface TlsOptions {
  /** Our certificate chain (PEM). */
  readonly cert?: string | Uint8Array
  /** Our private key (PEM). */
  readonly key?: string | Uint8Array
  /**
   * Authorities that must have signed the peer's certificate. When given, the
   * peer must present a certificate that verifies; when absent, the peer is
   * not verified (Twisted's default for StartTLS).
   */
  readonly ca?: string | Uint8Array | ReadonlyArray<string | Uint8Array>
  /** Server name to send (SNI) and to check the peer's certificate against, for the client role. */
  readonly servername?: string
  /**
   * Which TLS role to take. Defaults to the connection's role: the side that
   * connected is the TLS client, the side that accepted is the TLS server
   * (this is what Twisted does, whichever side asked for StartTLS).
   */
  readonly role?: "client" | "server"
}

/** A connection taken over by another protocol (see `ProtocolSwitch`). */
export interface RawConnection {
  /** Every byte after the AMP boundary, starting with those already read. */
  readonly incoming: Stream.Stream<Uint8Array, ConnectionLost>
  readonly write: (bytes: Uint8Array) => Effect.Effect<void, ConnectionLost>
  /** Graceful end of our side. */
  readonly end: Effect.Effect<void>
  readonly info: () => ConnectionInfo
}

/** The result of starting a TLS upgrade: the handshake runs in the background. */
export interface TlsUpgrade {
  /** Completes when the handshake has finished, with the session. */
  readonly handshake: Effect.Effect<TlsSession, TlsError | PeerVerifyError | ConnectionLost>
}

/**
 * A bidirectional byte pipe.
 *
 * `incoming` is pulled by exactly one consumer (the box protocol). It ends
 * when the peer closes cleanly and fails with `ConnectionLost` (or a TLS
 * error) otherwise. After `startTls` the same stream goes on with plaintext.
 *
 * @since 0.1.0
 */
export interface Transport {
  readonly incoming: Stream.Stream<Uint8Array, ConnectionLost | TlsError | PeerVerifyError>
  /**
   * Sends bytes to the peer, in order. Completes once they are queued and the
   * bytes buffered in the transport are under its high-water mark, so a writer
   * that waits for each write is held back by a peer that does not read. Fails
   * with `ConnectionLost` once the connection has gone; bytes written after
   * our own close are dropped.
   */
  readonly write: (bytes: Uint8Array) => Effect.Effect<void, ConnectionLost>
  /** Ends our side gracefully (after what was written), then tears the connection down after a bounded wait. Idempotent. */
  readonly close: Effect.Effect<void>
  /**
   * Capability: starts TLS on this connection. `leftover` holds bytes already
   * read past the last box: they, then any bytes the transport buffered but
   * nobody pulled yet, are the first TLS records. Writes after this call are
   * encrypted. Absent where TLS cannot run in place (a pipe, an in-memory
   * pair, a WebSocket).
   */
  readonly startTls?: (
    options: TlsOptions,
    leftover: Uint8Array
  ) => Effect.Effect<TlsUpgrade, OnlyOneTLS | TransportUnsupported | TlsError>
  /**
   * Capability: gives the raw connection away. `leftover` (then whatever the
   * transport buffered) comes first on the returned connection's `incoming`.
   * After this, `incoming` of the transport ends and `write` is refused.
   * Absent where the bytes cannot be handed over (a `@effect/platform` socket).
   */
  readonly detach?: (leftover: Uint8Array) => Effect.Effect<RawConnection, TransportUnsupported>
  /**
   * Whether `startTls` can work here now: a plaintext socket can; one that
   * runs TLS from its first byte has the capability (it answers `OnlyOneTLS`)
   * but cannot. Default `false`. Only where it can does the dispatcher answer
   * a peer's StartTLS that no responder of ours handles (Twisted's default
   * responder); elsewhere that StartTLS is `UNHANDLED`.
   */
  readonly canStartTls?: boolean
  readonly info: () => ConnectionInfo
}

/**
 * A transport that has both capabilities: a Node socket (`NodeTransport.fromSocket`).
 *
 * @since 0.1.0
 */
export type WithTlsAndDetach = Transport & Required<Pick<Transport, "startTls" | "detach">>

/**
 * A transport that can be handed over: a socket, a pair of streams, the in-memory pair.
 *
 * @since 0.1.0
 */
export type WithDetach = Transport & Required<Pick<Transport, "detach">>

/**
 * The connection a `BinaryBoxProtocol` layer runs over (the interface and its tag share a name).
 *
 * @since 0.1.0
 */
export const Transport: Context.Tag<Transport, Transport> = Context.GenericTag<Transport>("effect-amp/Transport")
