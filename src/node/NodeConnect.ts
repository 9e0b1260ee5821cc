/**
 * Connecting: TCP, UNIX sockets, and TLS from the first byte. Each gives a
 * `Transport` whose connection closes with the scope (a graceful end, then
 * destroyed after a bounded wait).
 *
 * @since 0.1.0
 */
import * as net from "node:net"
import * as tls from "node:tls"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { ConnectError } from "../AmpError.js"
import type { TlsOptions, WithTlsAndDetach } from "../Transport.js"
import * as NodeTransport from "./NodeTransport.js"
import * as UnixDescriptorTransport from "./UnixDescriptorTransport.js"

/**
 * Where to connect.
 *
 * @since 0.1.0
 */
export type Address =
  | { readonly _tag: "tcp"; readonly host: string; readonly port: number }
  | { readonly _tag: "unix"; readonly path: string }
  | { readonly _tag: "tls"; readonly host: string; readonly port: number; readonly tls?: TlsOptions }

/**
 * Options shared by every connection.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Give up connecting (TLS handshake included) after this long. Default 10 seconds. */
  readonly timeout?: Duration.DurationInput
  /** Passed to the transport: buffers, close timeout. */
  readonly transport?: Omit<NodeTransport.Options, "role" | "kind">
  /**
   * On a `unix` address: carry file descriptors too (`Argument.Descriptor`),
   * over `UnixDescriptorTransport`. Off by default; ignored on other
   * addresses, and without the native addon (descriptor arguments then fail
   * saying how to build it).
   */
  readonly descriptors?: boolean | { readonly maxUnclaimed?: number }
}

/**
 * The address as text: `tcp:HOST:PORT`, `unix:PATH`, `tls:HOST:PORT`.
 *
 * @since 0.1.0
 */
export const format = (address: Address): string =>
  address._tag === "unix" ? `unix:${address.path}` : NodeTransport.hostPort(address._tag, address.host, address.port)

const reasonOf = (error: NodeJS.ErrnoException, tlsAddress: boolean): ConnectError["reason"] => {
  switch (error.code) {
    case "ECONNREFUSED":
      return "refused"
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "EADDRNOTAVAIL":
      return "unreachable"
    case "ENOENT":
    case "ENOTFOUND":
      return "not found"
    case "ETIMEDOUT":
      return "timeout"
    default:
      // Past the TCP connect, anything on a TLS address is the handshake failing.
      return tlsAddress || error.code?.startsWith("ERR_SSL") || error.code?.startsWith("ERR_TLS") ? "tls" : "other"
  }
}

const open = (address: Address): net.Socket => {
  switch (address._tag) {
    case "tcp":
      return net.createConnection({ host: address.host, port: address.port })
    case "unix":
      return net.createConnection({ path: address.path })
    case "tls": {
      const options = address.tls ?? {}
      const verify = options.ca !== undefined
      return tls.connect({
        host: address.host,
        port: address.port,
        ...NodeTransport.secureContextOptions(options),
        rejectUnauthorized: verify,
        ...(options.servername ? { servername: options.servername } : {}),
        // As with StartTLS: `ca` checks the chain; the name is checked when `servername` asks for it.
        ...(options.servername ? {} : { checkServerIdentity: () => undefined })
      })
    }
  }
}

/**
 * Connects and returns the transport. Fails with a `ConnectError` naming
 * the address and the reason: `refused`, `unreachable`, `not found` (a UNIX
 * path, an unknown host), `timeout`, or `tls` (the handshake failed,
 * including our refusal of the server's certificate).
 *
 * TLS: with `ca`, the server's certificate must verify against it (and
 * match `servername` when one is given); without `ca`, the server is not
 * verified, as with Twisted's StartTLS.
 *
 * @since 0.1.0
 */
export const connect: (address: Address, options?: Options) => Effect.Effect<WithTlsAndDetach, ConnectError, Scope.Scope> = Effect
  .fn("NodeConnect.connect")(function*(address: Address, options?: Options) {
    const where = format(address)
    const timeout = options?.timeout ?? Duration.seconds(10)
    const withDescriptors = address._tag === "unix" && options?.descriptors !== undefined && options.descriptors !== false &&
      UnixDescriptorTransport.available()
    // Opening is not interruptible (acquireRelease); waiting for the connection is, so the timeout can act.
    const socket = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const s = open(address)
        // Nothing may be read before the addon takes the socket over (a read would drop descriptors).
        if (withDescriptors) s.pause()
        return s
      }),
      (s) => Effect.sync(() => s.destroyed || s.destroy())
    )
    // Until the transport listens: an error between connecting and that must not be unhandled.
    socket.on("error", () => undefined)
    yield* Effect.async<void, ConnectError>((resume) => {
      const ready = address._tag === "tls" ? "secureConnect" : "connect"
      const cleanup = () => {
        socket.off(ready, onReady)
        socket.off("error", onError)
        socket.off("close", onClose)
      }
      const onReady = () => {
        cleanup()
        resume(Effect.void)
      }
      const onError = (error: NodeJS.ErrnoException) => {
        cleanup()
        resume(Effect.fail(new ConnectError({ address: where, reason: reasonOf(error, address._tag === "tls"), cause: error })))
      }
      const onClose = () => {
        cleanup()
        resume(Effect.fail(new ConnectError({ address: where, reason: address._tag === "tls" ? "tls" : "other" })))
      }
      socket.once(ready, onReady)
      socket.once("error", onError)
      socket.once("close", onClose)
      return Effect.sync(() => {
        cleanup()
        socket.destroy()
      })
    }).pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => new ConnectError({ address: where, reason: "timeout" })
      })
    )
    return yield* (withDescriptors ? UnixDescriptorTransport.fromSocket : NodeTransport.fromSocket)(socket, {
      ...options?.transport,
      ...(typeof options?.descriptors === "object" ? options.descriptors : {}),
      role: "client",
      kind: address._tag,
      ...(address._tag === "unix" ? { peerAddress: where } : {})
    })
  })

/**
 * `connect` to `tcp:host:port`.
 *
 * @since 0.1.0
 */
export const tcp = (host: string, port: number, options?: Options): Effect.Effect<WithTlsAndDetach, ConnectError, Scope.Scope> =>
  connect({ _tag: "tcp", host, port }, options)

/**
 * `connect` to a UNIX socket path.
 *
 * @since 0.1.0
 */
export const unix = (path: string, options?: Options): Effect.Effect<WithTlsAndDetach, ConnectError, Scope.Scope> =>
  connect({ _tag: "unix", path }, options)

/**
 * `connect` with TLS from the first byte.
 *
 * @since 0.1.0
 */
export const tlsConnect = (
  host: string,
  port: number,
  tlsOptions?: TlsOptions,
  options?: Options
): Effect.Effect<WithTlsAndDetach, ConnectError, Scope.Scope> =>
  connect({ _tag: "tls", host, port, ...(tlsOptions ? { tls: tlsOptions } : {}) }, options)

/**
 * `connect` to `tcp:host:port`, options in one record.
 *
 * @example
 * const transport = yield* NodeConnect.connectTcp({ host: "127.0.0.1", port: 7710, timeout: "5 seconds" })
 *
 * @since 0.1.0
 */
export const connectTcp = (
  options: { readonly host: string; readonly port: number } & Options
): Effect.Effect<WithTlsAndDetach, ConnectError, Scope.Scope> =>
  connect({ _tag: "tcp", host: options.host, port: options.port }, options)

/**
 * `connect` to a UNIX socket, options in one record.
 *
 * @since 0.1.0
 */
export const connectUnix = (options: { readonly path: string } & Options): Effect.Effect<WithTlsAndDetach, ConnectError, Scope.Scope> =>
  connect({ _tag: "unix", path: options.path }, options)

/**
 * `connect` with TLS from the first byte, options in one record
 * (`ca`, `cert`, `key`, `servername` as in `TlsOptions`).
 *
 * @since 0.1.0
 */
export const connectTls = (
  options: { readonly host: string; readonly port: number } & Omit<TlsOptions, "role"> & Options
): Effect.Effect<WithTlsAndDetach, ConnectError, Scope.Scope> => {
  const { ca, cert, host, key, port, servername } = options
  const tlsOptions: TlsOptions = {
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
    ...(servername !== undefined ? { servername } : {})
  }
  return connect({ _tag: "tls", host, port, tls: tlsOptions }, options)
}
