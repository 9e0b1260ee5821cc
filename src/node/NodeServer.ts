/**
 * Listening: TCP, UNIX sockets, TLS from the first byte. Every accepted
 * connection runs its handler in a scope and a fiber of its own: a handler
 * that fails closes its own connection and nothing else. Closing the
 * server's scope stops listening, closes every live connection, and removes
 * the UNIX socket file it created.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as tls from "node:tls"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import { ListenError } from "../AmpError.js"
import type { TlsOptions, Transport } from "../Transport.js"
import * as NodeTransport from "./NodeTransport.js"

/** Where to listen. Port 0 picks a free port. */
export type ListenAddress =
  | { readonly _tag: "tcp"; readonly host: string; readonly port: number }
  | { readonly _tag: "unix"; readonly path: string }
  | { readonly _tag: "tls"; readonly host: string; readonly port: number; readonly tls: TlsOptions }

/** The address a server is bound to. */
export type BoundAddress =
  | { readonly _tag: "tcp" | "tls"; readonly host: string; readonly port: number }
  | { readonly _tag: "unix"; readonly path: string }

/** A running server. */
export interface Server {
  readonly address: BoundAddress
  /** The bound address as text: `tcp:HOST:PORT` or `unix:PATH`. */
  readonly addressText: string
  /** Live connections. */
  readonly connections: () => number
}

/** Options of {@link listen}. */
export interface Options {
  readonly transport?: Omit<NodeTransport.Options, "role" | "kind">
  /** Most connections at once; more are refused (closed at once). Default 10000. */
  readonly maxConnections?: number
}

/** The address as text. */
export const format = (address: BoundAddress | ListenAddress): string =>
  address._tag === "unix" ? `unix:${address.path}` : `${address._tag}:${address.host}:${address.port}`

/** A UNIX socket file left by a dead process is removed; one somebody listens on is an error. */
const clearStaleSocket = (path: string): Effect.Effect<void, ListenError> =>
  Effect.async<void, ListenError>((resume) => {
    if (!fs.existsSync(path)) return resume(Effect.void)
    const probe = net.createConnection({ path })
    probe.once("connect", () => {
      probe.destroy()
      resume(Effect.fail(new ListenError({ address: `unix:${path}`, cause: new Error("another process is listening there") })))
    })
    probe.once("error", () => {
      try {
        fs.unlinkSync(path)
        resume(Effect.void)
      } catch (cause) {
        resume(Effect.fail(new ListenError({ address: `unix:${path}`, cause })))
      }
    })
  })

/**
 * Listens and serves every connection with `handler`, until the scope closes.
 *
 * @since 0.1.0
 */
export const listen = <E, R>(
  address: ListenAddress,
  handler: (transport: Transport) => Effect.Effect<void, E, R | Scope.Scope>,
  options?: Options
): Effect.Effect<Server, ListenError, R | Scope.Scope> =>
  Effect.gen(function*() {
    const where = format(address)
    const maxConnections = options?.maxConnections ?? 10000
    if (address._tag === "unix") yield* clearStaleSocket(address.path)
    const fibers = yield* FiberSet.make()
    const run = yield* FiberSet.runtime(fibers)<R>()
    const sockets = new Set<net.Socket>()

    const serve = (socket: net.Socket): Effect.Effect<void, never, R> =>
      Effect.scoped(
        Effect.flatMap(
          NodeTransport.fromSocket(socket, { ...options?.transport, role: "server", kind: address._tag }),
          handler
        )
      ).pipe(
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logWarning(`connection handler on ${where} failed`, cause)
        ),
        Effect.ensuring(Effect.sync(() => socket.destroyed || socket.destroy()))
      )

    const accept = (socket: net.Socket) => {
      if (sockets.size >= maxConnections) return socket.destroy()
      sockets.add(socket)
      socket.once("close", () => sockets.delete(socket))
      // Errors are reported through the transport; this keeps an early one from being unhandled.
      socket.on("error", () => undefined)
      run(serve(socket))
    }

    const server: net.Server = address._tag === "tls"
      ? tls.createServer({
        ...NodeTransport.secureContextOptions(address.tls),
        requestCert: address.tls.ca !== undefined,
        rejectUnauthorized: address.tls.ca !== undefined
      }, accept)
      : net.createServer(accept)
    // A failed TLS handshake of one client must not disturb the server.
    server.on("tlsClientError", () => undefined)

    yield* Effect.acquireRelease(
      Effect.async<void, ListenError>((resume) => {
        const onError = (cause: Error) => resume(Effect.fail(new ListenError({ address: where, cause })))
        server.once("error", onError)
        const onListening = () => {
          server.off("error", onError)
          resume(Effect.void)
        }
        if (address._tag === "unix") server.listen(address.path, onListening)
        else server.listen(address.port, address.host, onListening)
      }),
      () =>
        // Connections first, each closing gracefully through its own scope; then the listener.
        FiberSet.clear(fibers).pipe(
          Effect.zipRight(Effect.async<void>((resume) => {
            server.close(() => resume(Effect.void))
            for (const s of sockets) s.destroy()
          })),
          Effect.zipRight(Effect.sync(() => {
            if (address._tag === "unix" && fs.existsSync(address.path)) fs.rmSync(address.path, { force: true })
          }))
        )
    )

    const bound: BoundAddress = (() => {
      if (address._tag === "unix") return { _tag: "unix", path: address.path }
      const a = server.address() as net.AddressInfo
      return { _tag: address._tag, host: a.address, port: a.port }
    })()
    return { address: bound, addressText: format(bound), connections: () => sockets.size } satisfies Server
  })
