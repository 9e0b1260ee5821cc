/**
 * Listening: TCP, UNIX sockets, TLS from the first byte. Every accepted
 * connection runs its handler in a scope and a fiber of its own: a handler
 * that fails (or dies) is logged and closes its own connection, nothing
 * else. Closing the server's scope stops listening at once, drains the
 * handlers that asked for it (up to a deadline), closes every live
 * connection, and removes the UNIX socket file it created.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as tls from "node:tls"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Scope from "effect/Scope"
import { ListenError } from "../AmpError.js"
import type { TlsOptions, WithTlsAndDetach } from "../Transport.js"
import { type Config, Connections } from "./internal/serverConnections.js"
import * as NodeTransport from "./NodeTransport.js"
import * as UnixDescriptorTransport from "./UnixDescriptorTransport.js"

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
 * What a handler learns about the server it runs under: the second argument
 * of a {@link listen} handler (one-argument handlers ignore it).
 *
 * A handler takes part in the server's drain by running {@link onDrain} or
 * awaiting {@link draining}: when the server's scope closes, the server then
 * waits for that handler to finish, up to `drainTimeout` plus the transport's
 * close timeout, before it interrupts it. A handler that did neither is
 * interrupted at once, as every handler was before drains existed (a handler
 * that never ends, an echo loop, would otherwise hold the close for the
 * whole deadline).
 *
 * @since 0.1.0
 */
export interface Connection {
  /** Completes when the server starts draining. Awaiting it registers the connection for the drain. */
  readonly draining: Effect.Effect<void>
  /**
   * Runs `effect` in the background (in the handler's scope) once the server
   * starts draining, and registers the connection for the drain. Registering
   * happens when this runs, in the handler's own fiber, so no drain that starts
   * afterwards can miss it.
   */
  readonly onDrain: (effect: Effect.Effect<void>) => Effect.Effect<void, never, Scope.Scope>
  /** How long the handler has, from the start of the drain, to get its answers out (`drainTimeoutMillis`). */
  readonly drainTimeout: Duration.Duration
}

/**
 * Options of {@link listen}.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Passed to each connection's transport: buffers, close timeout. */
  readonly transport?: Omit<NodeTransport.Options, "role" | "kind">
  /**
   * On a `unix` address: carry file descriptors too (`Argument.Descriptor`),
   * over `UnixDescriptorTransport`. Off by default; ignored on other
   * addresses, and without the native addon (descriptor arguments then fail
   * saying how to build it).
   */
  readonly descriptors?: boolean | { readonly maxUnclaimed?: number }
  /**
   * Most connections at once; a connection beyond it is closed as it
   * arrives, with one warning logged through Effect's logger, and the others
   * are untouched. Default {@link defaultMaxConnections}: 10000, or the
   * process's open-file limit less 128 when that is lower. Each connection
   * holds a file descriptor, and running out of them fails every `accept`
   * and every file the process opens; refusing one connection cleanly, with
   * a log line, is better. Node raises its soft open-file limit to the hard
   * one at start-up, and that limit varies (4096 on older systems, 524288
   * under systemd, 1048576 in many containers), so the default follows it
   * (as Redis's `maxclients` does), keeping 128 descriptors for everything
   * else. 10000 is a generous ceiling for an RPC server and bounds memory:
   * at the 16 KB an idle connection may cost, 160 MB.
   */
  readonly maxConnections?: number
  /**
   * How long a drain may take: from the moment the server's scope starts
   * closing, handlers that registered for the drain (see {@link Connection})
   * have this long to finish their running work and send its answers; the
   * server waits this plus the transport's close timeout for them, then
   * interrupts what is left and destroys the sockets still open. Default 5000
   * ms: longer than any answer a healthy RPC server takes, and short enough
   * that the drain (5 s) plus the close (2 s by default) ends well inside the
   * 10 s `docker stop` and the 30 s Kubernetes give a process between
   * SIGTERM and SIGKILL. 0 interrupts every handler at once.
   */
  readonly drainTimeoutMillis?: number
}

/** Descriptors kept for what is not a connection: the listener, stdio, files, DNS, outgoing clients. */
const reservedFds = 128

/**
 * The default of {@link Options.maxConnections}: 10000, or the open-file
 * limit less 128 descriptors when that is lower (never under 1). The limit
 * comes from `/proc/self/limits` (Linux); elsewhere, or when it cannot be
 * read or is unlimited, the default is 10000. `procLimits` is that file's
 * text, for tests.
 *
 * @since 0.1.0
 */
export const defaultMaxConnections = (procLimits: string | undefined = readProcLimits()): number => {
  const soft = procLimits?.match(/^Max open files\s+(\d+)/m)?.[1]
  if (soft === undefined) return 10000
  return Math.max(1, Math.min(10000, Number(soft) - reservedFds))
}

const readProcLimits = (): string | undefined => {
  try {
    return fs.readFileSync("/proc/self/limits", "utf8")
  } catch {
    // Not Linux, or no /proc: the fixed default applies.
    return undefined
  }
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

/** Errors are reported through the transport; this keeps one before it listens from being unhandled. */
const ignore = (): void => undefined

const peerOf = (socket: net.Socket): string =>
  socket.remoteAddress !== undefined && socket.remotePort !== undefined
    ? `(peer ${NodeTransport.hostPort("tcp", socket.remoteAddress, socket.remotePort)})`
    : ""

/** The Node listener for `address` (TLS from the first byte for `tls`). */
const makeListener = (address: ListenAddress, pauseOnConnect: boolean): net.Server =>
  address._tag === "tls"
    ? tls.createServer({
      ...NodeTransport.secureContextOptions(address.tls),
      requestCert: address.tls.ca !== undefined,
      rejectUnauthorized: address.tls.ca !== undefined
    })
    : net.createServer({ pauseOnConnect })

/** Starts listening; the UNIX socket file's inode, to remove only our own file later. */
const bind = (
  server: net.Server,
  address: ListenAddress,
  where: () => string,
  run: (effect: Effect.Effect<void>) => unknown
): Effect.Effect<number | undefined, ListenError> =>
  Effect.async<number | undefined, ListenError>((resume) => {
    const onError = (cause: Error) => {
      server.off("listening", onListening)
      resume(Effect.fail(new ListenError({ address: where(), cause })))
    }
    const onListening = () => {
      server.off("error", onError)
      // Whatever happens later on the listener is logged, not thrown.
      server.on("error", (error) => void run(Effect.logWarning(`listener ${where()} failed`, error)))
      resume(Effect.succeed(address._tag === "unix" ? fs.statSync(address.path).ino : undefined))
    }
    server.once("error", onError)
    server.once("listening", onListening)
    if (address._tag === "unix") server.listen(address.path)
    else server.listen(address.port, address.host)
  })

/** Node removes the socket file itself; this covers a listener that went away in another way. */
const removeSocketFile = (path: string, inode: number): void => {
  try {
    if (fs.statSync(path).ino === inode) fs.rmSync(path, { force: true })
  } catch {
    // already gone
  }
}

/**
 * Listens and serves every connection with `handler` until the scope
 * closes. The handler gets the connection's transport, a fresh scope, and a
 * {@link Connection} (to take part in a drain); when it finishes, fails or
 * dies, its scope closes and with it the connection (a failure is logged as
 * a warning).
 *
 * Closing the scope drains: the listener closes at once (new connections are
 * refused), handlers that
 * registered for the drain are told and waited for (`drainTimeoutMillis`
 * plus the close timeout), the others are interrupted at once; at the
 * deadline whatever is left (a TLS handshake still running among it) is
 * interrupted and its socket destroyed; a handshake that completes during
 * the drain is closed at once.
 *
 * @example
 * const server = yield* NodeServer.listen({ _tag: "tcp", host: "127.0.0.1", port: 0 }, (transport) =>
 *   transport.incoming.pipe(Stream.runForEach(transport.write)))
 *
 * @since 0.1.0
 */
export const listen = <E, R>(
  address: ListenAddress,
  handler: (transport: WithTlsAndDetach, connection: Connection) => Effect.Effect<void, E, R | Scope.Scope>,
  options?: Options
): Effect.Effect<Server, ListenError, Exclude<R, Scope.Scope> | Scope.Scope> =>
  Effect.gen(function*() {
    /** The address for errors and logs: what was asked, then what was bound (the port 0 picked). */
    let where = format(address)
    const maxConnections = options?.maxConnections ?? defaultMaxConnections()
    const drainTimeout = Duration.millis(Math.max(0, options?.drainTimeoutMillis ?? 5000))
    const closeTimeout = Duration.millis(options?.transport?.closeTimeoutMillis ?? 2000)
    if (address._tag === "unix") yield* clearStaleSocket(address.path)
    const fibers = yield* FiberSet.make<void, never>()
    const run = yield* FiberSet.runtime(fibers)<never>()
    /** Every accepted socket (for TLS, the raw one, handshake or not): closing the server destroys what is left. */
    const sockets = new Set<net.Socket>()
    /** A socket's 'close' listener (one function for all of them). */
    const forget = function(this: net.Socket) {
      sockets.delete(this)
    }
    let closing = false
    // The addon takes the socket over before Node reads a byte of it (a read would drop its descriptors).
    const withDescriptors = address._tag === "unix" && options?.descriptors !== undefined && options.descriptors !== false &&
      UnixDescriptorTransport.available()
    const connections = new Connections<E, Exclude<R, Scope.Scope>>({
      // R | Scope is Exclude<R, Scope> | Scope, which TypeScript does not see.
      handler: handler as Config<E, Exclude<R, Scope.Scope>>["handler"],
      transportOf: (socket) =>
        (withDescriptors ? UnixDescriptorTransport.fromSocket : NodeTransport.fromSocket)(socket, {
          ...options?.transport,
          ...(typeof options?.descriptors === "object" ? options.descriptors : {}),
          role: "server",
          kind: address._tag,
          ...(address._tag === "unix" ? { localAddress: where } : {})
        }),
      drainTimeout,
      run,
      peerOf
    }, yield* Effect.runtime<Exclude<R, Scope.Scope>>(), where)

    const track = (raw: net.Socket) => {
      // Errors are reported through the transport; this keeps one before it listens from being unhandled.
      raw.on("error", ignore)
      if (closing) return raw.destroy()
      if (sockets.size >= maxConnections) {
        const peer = peerOf(raw)
        raw.destroy()
        run(Effect.logWarning(`refused a connection ${peer}: ${maxConnections} connections open (maxConnections)`).pipe(
          Effect.annotateLogs({ server: where })
        ))
        return
      }
      sockets.add(raw)
      raw.on("close", forget)
    }
    const accept = (socket: net.Socket) => {
      socket.on("error", ignore)
      if (closing || socket.destroyed) return socket.destroy()
      connections.start(socket)
    }

    const server = makeListener(address, withDescriptors)
    // For TLS, 'connection' is the raw socket before the handshake; the handler gets it after.
    server.on("connection", track)
    server.on(address._tag === "tls" ? "secureConnection" : "connection", accept)
    // A failed TLS handshake concerns that client only.
    server.on("tlsClientError", (error: Error) => void run(Effect.logDebug(`TLS handshake failed on ${where}`, error)))

    yield* Effect.acquireRelease(
      bind(server, address, () => where, run),
      (socketInode) =>
        Effect.gen(function*() {
          closing = true
          // Stop accepting at once (before any handler hears of the drain); the callback comes when every connection is gone.
          const stopped = Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
          const stopping = yield* Effect.fork(stopped)
          yield* connections.drain(Duration.sum(drainTimeout, closeTimeout))
          // The deadline has passed (or every handler is done): nothing waits any longer.
          for (const s of sockets) s.destroy()
          yield* connections.interruptAll
          yield* Fiber.interruptAll(Array.from(fibers))
          yield* Fiber.join(stopping)
          if (address._tag === "unix" && socketInode !== undefined) removeSocketFile(address.path, socketInode)
        })
    )

    const bound: BoundAddress = (() => {
      if (address._tag === "unix") return { _tag: "unix", path: address.path }
      const a = server.address() as net.AddressInfo
      return { _tag: address._tag, host: a.address, port: a.port }
    })()
    where = format(bound)
    connections.bound(yield* Effect.annotateLogs(Effect.runtime<Exclude<R, Scope.Scope>>(), { server: where }), where)
    return {
      address: bound,
      addressText: format(bound),
      connections: Effect.sync(() => connections.size),
      listener: server
    } satisfies Server
  })
