/**
 * Listening: TCP, UNIX sockets, TLS from the first byte. Every accepted
 * connection runs its handler in a scope and a fiber of its own: a handler
 * that fails (or dies) is logged and closes its own connection, nothing
 * else. Closing the server's scope stops listening, closes every live
 * connection, and removes the UNIX socket file it created.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as tls from "node:tls"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import { ListenError } from "../AmpError.js"
import type { TlsOptions, Transport } from "../Transport.js"
import * as NodeTransport from "./NodeTransport.js"

/**
 * Where to listen. Port 0 picks a free port. A TLS server verifies client
 * certificates only when `tls.ca` is given (and then requires one).
 *
 * @since 0.1.0
 */
export type ListenAddress =
  | { readonly _tag: "tcp"; readonly host: string; readonly port: number }
  | { readonly _tag: "unix"; readonly path: string }
  | { readonly _tag: "tls"; readonly host: string; readonly port: number; readonly tls: TlsOptions }

/**
 * The address a server is bound to.
 *
 * @since 0.1.0
 */
export type BoundAddress =
  | { readonly _tag: "tcp" | "tls"; readonly host: string; readonly port: number }
  | { readonly _tag: "unix"; readonly path: string }

/**
 * A running server.
 *
 * @since 0.1.0
 */
export interface Server {
  /** The bound address (the port picked when 0 was asked). */
  readonly address: BoundAddress
  /** The bound address as text: `tcp:HOST:PORT`, `tls:HOST:PORT` or `unix:PATH`. */
  readonly addressText: string
  /** Connections whose handler is running. */
  readonly connections: Effect.Effect<number>
  /** The Node server, for diagnostics (`listening`); the scope owns it. */
  readonly listener: net.Server
}

/**
 * Options of {@link listen}.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Passed to each connection's transport: buffers, close timeout. */
  readonly transport?: Omit<NodeTransport.Options, "role" | "kind">
  /** Most connections at once; more are closed as they arrive. Default 10000. */
  readonly maxConnections?: number
}

/**
 * The address as text.
 *
 * @since 0.1.0
 */
export const format = (address: BoundAddress | ListenAddress): string =>
  address._tag === "unix" ? `unix:${address.path}` : NodeTransport.hostPort(address._tag, address.host, address.port)

/**
 * A UNIX socket file left by a dead process is removed; one that somebody
 * listens on, or a path that is not a socket, is an error (we never delete a
 * file that is not a socket).
 */
const clearStaleSocket = (path: string): Effect.Effect<void, ListenError> =>
  Effect.async<void, ListenError>((resume) => {
    const refuse = (cause: unknown) => resume(Effect.fail(new ListenError({ address: `unix:${path}`, cause })))
    let stat: fs.Stats
    try {
      stat = fs.lstatSync(path)
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === "ENOENT" ? resume(Effect.void) : refuse(e)
    }
    if (!stat.isSocket()) return refuse(new Error(`${path} exists and is not a socket`))
    const probe = net.createConnection({ path })
    probe.once("connect", () => {
      probe.destroy()
      refuse(new Error("another process is listening on it"))
    })
    probe.once("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "ECONNREFUSED") return refuse(e)
      try {
        fs.unlinkSync(path)
        resume(Effect.void)
      } catch (cause) {
        refuse(cause)
      }
    })
    return Effect.sync(() => probe.destroy())
  })

const peerOf = (socket: net.Socket): string =>
  socket.remoteAddress !== undefined && socket.remotePort !== undefined
    ? `(peer ${NodeTransport.hostPort("tcp", socket.remoteAddress, socket.remotePort)})`
    : ""

/**
 * Listens and serves every connection with `handler` until the scope
 * closes. The handler gets the connection's transport and a fresh scope;
 * when it finishes, fails or dies, its scope closes and with it the
 * connection (a failure is logged as a warning).
 *
 * @example
 * const server = yield* NodeServer.listen({ _tag: "tcp", host: "127.0.0.1", port: 0 }, (transport) =>
 *   transport.incoming.pipe(Stream.runForEach((bytes) => Effect.sync(() => transport.write(bytes)))))
 *
 * @since 0.1.0
 */
export const listen = <E, R>(
  address: ListenAddress,
  handler: (transport: Transport) => Effect.Effect<void, E, R | Scope.Scope>,
  options?: Options
): Effect.Effect<Server, ListenError, Exclude<R, Scope.Scope> | Scope.Scope> =>
  Effect.gen(function*() {
    /** The address for errors and logs: what was asked, then what was bound (the port 0 picked). */
    let where = format(address)
    const maxConnections = options?.maxConnections ?? 10000
    if (address._tag === "unix") yield* clearStaleSocket(address.path)
    const fibers = yield* FiberSet.make<void, never>()
    const run = yield* FiberSet.runtime(fibers)<Exclude<R, Scope.Scope>>()
    /** Every accepted socket (for TLS, the raw one, handshake or not): closing the server destroys what is left. */
    const sockets = new Set<net.Socket>()
    let serving = 0
    let closing = false

    const serve = (socket: net.Socket): Effect.Effect<void, never, Exclude<R, Scope.Scope>> =>
      Effect.scoped(
        Effect.flatMap(
          NodeTransport.fromSocket(socket, {
            ...options?.transport,
            role: "server",
            kind: address._tag,
            ...(address._tag === "unix" ? { localAddress: where } : {})
          }),
          handler
        )
      ).pipe(
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logWarning(`connection handler failed ${peerOf(socket)}`, cause)
        ),
        Effect.ensuring(Effect.sync(() => {
          serving--
          if (!socket.destroyed) socket.destroy()
        })),
        Effect.annotateLogs({ server: where })
      ) as Effect.Effect<void, never, Exclude<R, Scope.Scope>>

    const track = (raw: net.Socket) => {
      // Errors are reported through the transport; this keeps one before it listens from being unhandled.
      raw.on("error", () => undefined)
      if (closing || sockets.size >= maxConnections) return raw.destroy()
      sockets.add(raw)
      raw.once("close", () => sockets.delete(raw))
    }
    const accept = (socket: net.Socket) => {
      socket.on("error", () => undefined)
      if (closing || socket.destroyed) return socket.destroy()
      serving++
      run(serve(socket))
    }

    const server: net.Server = address._tag === "tls"
      ? tls.createServer({
        ...NodeTransport.secureContextOptions(address.tls),
        requestCert: address.tls.ca !== undefined,
        rejectUnauthorized: address.tls.ca !== undefined
      })
      : net.createServer()
    // For TLS, 'connection' is the raw socket before the handshake; the handler gets it after.
    server.on("connection", track)
    server.on(address._tag === "tls" ? "secureConnection" : "connection", accept)
    // A failed TLS handshake concerns that client only.
    server.on("tlsClientError", (error: Error) => void run(Effect.logDebug(`TLS handshake failed on ${where}`, error)))

    let socketInode: number | undefined
    yield* Effect.acquireRelease(
      Effect.async<void, ListenError>((resume) => {
        const onError = (cause: Error) => {
          server.off("listening", onListening)
          resume(Effect.fail(new ListenError({ address: where, cause })))
        }
        const onListening = () => {
          server.off("error", onError)
          // Whatever happens later on the listener is logged, not thrown.
          server.on("error", (error) => void run(Effect.logWarning(`listener ${where} failed`, error)))
          if (address._tag === "unix") socketInode = fs.statSync(address.path).ino
          resume(Effect.void)
        }
        server.once("error", onError)
        server.once("listening", onListening)
        if (address._tag === "unix") server.listen(address.path)
        else server.listen(address.port, address.host)
      }),
      () =>
        Effect.gen(function*() {
          closing = true
          // Stop accepting at once; the callback comes when every connection is gone.
          const stopped = Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
          const stopping = yield* Effect.fork(stopped)
          // Every connection closes through its own scope, all at once (each end is graceful but bounded).
          yield* Fiber.interruptAll(Array.from(fibers))
          for (const s of sockets) s.destroy()
          yield* Fiber.join(stopping)
          // Node removes the file itself; this covers a listener that went away in another way.
          if (address._tag === "unix" && socketInode !== undefined) {
            try {
              if (fs.statSync(address.path).ino === socketInode) fs.rmSync(address.path, { force: true })
            } catch {
              // already gone
            }
          }
        })
    )

    const bound: BoundAddress = (() => {
      if (address._tag === "unix") return { _tag: "unix", path: address.path }
      const a = server.address() as net.AddressInfo
      return { _tag: address._tag, host: a.address, port: a.port }
    })()
    where = format(bound)
    return {
      address: bound,
      addressText: format(bound),
      connections: Effect.sync(() => serving),
      listener: server
    } satisfies Server
  })
