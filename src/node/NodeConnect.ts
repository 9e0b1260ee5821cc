/**
 * Connecting: TCP, UNIX sockets and TLS from the first byte. Each gives a
 * `Transport` whose connection closes with the scope.
 *
 * @since 0.1.0
 */
import * as net from "node:net"
import * as tls from "node:tls"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { ConnectError } from "../AmpError.js"
import type { TlsOptions, Transport } from "../Transport.js"
import * as NodeTransport from "./NodeTransport.js"

/** Where to connect. */
export type Address =
  | { readonly _tag: "tcp"; readonly host: string; readonly port: number }
  | { readonly _tag: "unix"; readonly path: string }
  | { readonly _tag: "tls"; readonly host: string; readonly port: number; readonly tls?: TlsOptions }

/** Options shared by every connection. */
export interface Options {
  /** Give up connecting after this long. Default 10 seconds. */
  readonly timeout?: Duration.DurationInput
  /** Passed to the transport (buffers, close timeout). */
  readonly transport?: Omit<NodeTransport.Options, "role" | "kind">
}

/** The address as text: `tcp:HOST:PORT`, `unix:PATH`, `tls:HOST:PORT`. */
export const format = (address: Address): string =>
  address._tag === "unix" ? `unix:${address.path}` : `${address._tag}:${address.host}:${address.port}`

const reasonOf = (error: NodeJS.ErrnoException, tlsPhase: boolean): ConnectError["reason"] => {
  switch (error.code) {
    case "ECONNREFUSED":
      return "refused"
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "EADDRNOTAVAIL":
      return "unreachable"
    case "ENOENT":
      return "not found"
    case "ETIMEDOUT":
      return "timeout"
    default:
      return tlsPhase || error.code?.startsWith("ERR_SSL") || error.code?.startsWith("ERR_TLS") ? "tls" : "other"
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
        ...(verify && !options.servername ? { checkServerIdentity: () => undefined } : {})
      })
    }
  }
}

/**
 * Connects and returns the transport. Fails with `ConnectError` naming the
 * address: refused, unreachable, not found (a UNIX path), timeout, or tls.
 *
 * @since 0.1.0
 */
export const connect = (address: Address, options?: Options): Effect.Effect<Transport, ConnectError, Scope.Scope> =>
  Effect.gen(function*() {
    const where = format(address)
    const timeout = options?.timeout ?? Duration.seconds(10)
    // Opening is not interruptible (acquireRelease); waiting for the connection is, so the timeout can act.
    const socket = yield* Effect.acquireRelease(
      Effect.sync(() => open(address)),
      (s) => Effect.sync(() => s.destroyed || s.destroy())
    )
    yield* Effect.async<void, ConnectError>((resume) => {
      const ready = address._tag === "tls" ? "secureConnect" : "connect"
      const onReady = () => {
        socket.off("error", onError)
        resume(Effect.void)
      }
      const onError = (error: NodeJS.ErrnoException) => {
        socket.off(ready, onReady)
        resume(Effect.fail(new ConnectError({ address: where, reason: reasonOf(error, address._tag === "tls"), cause: error })))
      }
      socket.once(ready, onReady)
      socket.once("error", onError)
      return Effect.sync(() => {
        socket.off(ready, onReady)
        socket.off("error", onError)
        socket.destroy()
      })
    }).pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => new ConnectError({ address: where, reason: "timeout" })
      })
    )
    return yield* NodeTransport.fromSocket(socket, {
      ...options?.transport,
      role: "client",
      kind: address._tag
    })
  })

/** `connect` to `tcp:host:port`. */
export const tcp = (host: string, port: number, options?: Options) => connect({ _tag: "tcp", host, port }, options)
/** `connect` to a UNIX socket path. */
export const unix = (path: string, options?: Options) => connect({ _tag: "unix", path }, options)
/** `connect` with TLS from the first byte. */
export const tlsConnect = (host: string, port: number, tlsOptions?: TlsOptions, options?: Options) =>
  connect({ _tag: "tls", host, port, ...(tlsOptions ? { tls: tlsOptions } : {}) }, options)
