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
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { Amp } from "./Amp.js"
import { ConnectionLost } from "./AmpError.js"
import * as AmpConnection from "./AmpConnection.js"
import { concatBytes } from "./internal/bytes.js"
import { describe } from "./internal/messages.js"
import { Responders } from "./Responders.js"
import { type ConnectionInfo, Transport } from "./Transport.js"

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
 * What the transport sees of its queues, for tests and diagnostics.
 *
 * @since 0.1.0
 */
export interface State {
  /** Bytes given to `write` that the socket's writer has not finished writing. */
  readonly queuedBytes: number
  /** The WebSocket's `bufferedAmount`, when its handle is known (else 0). */
  readonly socketBufferedBytes: number
  /** Bytes read and not yet taken by the consumer. */
  readonly unreadBytes: number
  /** Whether the socket is paused because of them. */
  readonly paused: boolean
}

const MiB = 1024 * 1024
/** How often the writer looks at a WebSocket's `bufferedAmount` while it is over the mark: WebSockets have no drain event. */
const bufferedPollMillis = 5
/** Small chunks of one batch are joined into one write (one WebSocket message) up to this size. */
const coalesceBytes = 64 * 1024

// ---------------------------------------------------------------------------
// What lies under a Socket
// ---------------------------------------------------------------------------

/** The parts of the socket under a `Socket.Socket` that the transport can use. */
interface Handle {
  readonly kind: "websocket" | "socket"
  readonly pause?: () => void
  readonly resume?: () => void
  /** Bytes the socket holds for sending (a WebSocket's `bufferedAmount`). */
  readonly buffered?: () => number
}

/** The WebSocket, as far as the transport uses it (the DOM type lacks `ws`'s `pause`). */
interface WebSocketLike {
  readonly bufferedAmount: number
  binaryType: string
  readonly pause?: () => void
  readonly resume?: () => void
}

/** The Node socket (`net.Socket`) under a `NodeSocket`, without importing Node. */
interface PausableLike {
  readonly pause: () => void
  readonly resume: () => void
}

/**
 * The tag `@effect/platform-node` provides a `NodeSocket`'s `net.Socket`
 * under. Looked up by its key, so this module imports nothing from Node.
 */
const NetSocket = Context.GenericTag<PausableLike>("@effect/platform-node/NodeSocket/NetSocket")

const webSocketHandle = (ws: WebSocketLike): Handle => {
  const pause = ws.pause
  const resume = ws.resume
  return {
    kind: "websocket",
    ...(typeof pause === "function" && typeof resume === "function"
      ? { pause: () => pause.call(ws), resume: () => resume.call(ws) }
      : {}),
    buffered: () => ws.bufferedAmount
  }
}

const netHandle = (s: PausableLike): Handle => ({
  kind: "socket",
  pause: () => s.pause(),
  resume: () => s.resume()
})

/** The handle in `context`: the WebSocket or `net.Socket` the platform provides to a socket's handlers. */
const handleOf = (context: Context.Context<never>): Handle | undefined => {
  const ws = Context.getOption(context, Socket.WebSocket)
  if (Option.isSome(ws)) return webSocketHandle(ws.value as unknown as WebSocketLike)
  const net = Context.getOption(context, NetSocket)
  return Option.isSome(net) ? netHandle(net.value) : undefined
}

/** Sockets made by {@link makeWebSocket}, with their WebSocket once it exists. */
const webSockets = new WeakMap<Socket.Socket, () => WebSocketLike | undefined>()

// ---------------------------------------------------------------------------
// The inbox: what was read and not yet taken
// ---------------------------------------------------------------------------

class Inbox {
  private items: Array<Uint8Array> = []
  bytes = 0
  private exit: Exit.Exit<void, ConnectionLost> | undefined = undefined
  private waiters: Array<() => void> = []
  paused = false
  /** Once closing: drop what does not fit rather than pause (the peer's end must get through). */
  private dropping = false
  handle: Handle | undefined = undefined

  constructor(private readonly high: number, private readonly limit: number) {}

  get isDone(): boolean {
    return this.exit !== undefined
  }

  offer(chunk: Uint8Array): void {
    if (this.exit !== undefined || chunk.length === 0) return
    if (this.dropping && this.bytes > this.high) return
    this.items.push(chunk)
    this.bytes += chunk.length
    this.check()
    this.wake()
  }

  /** Pauses the socket past the mark; fails the connection past the limit when it cannot pause. */
  check(): void {
    if (this.bytes <= this.high || this.paused || this.dropping) return
    const pause = this.handle?.pause
    if (pause !== undefined) {
      this.paused = true
      pause()
    } else if (this.bytes > this.limit) {
      this.finish(Exit.fail(
        new ConnectionLost({
          reason: "error",
          detail: `${this.bytes} bytes read and not consumed, over the limit of ${this.limit}: the reader fell behind and this socket cannot be paused`
        })
      ))
    }
  }

  finish(exit: Exit.Exit<void, ConnectionLost>): void {
    if (this.exit !== undefined) return
    this.exit = exit
    if (Exit.isFailure(exit)) {
      this.items = []
      this.bytes = 0
    }
    this.wake()
  }

  /** From now on, drop what does not fit instead of pausing. */
  drain(): void {
    this.dropping = true
    this.unpause()
  }

  private unpause(): void {
    if (this.paused) {
      this.paused = false
      this.handle?.resume?.()
    }
  }

  private wake(): void {
    if (this.waiters.length === 0) return
    const waiting = this.waiters
    this.waiters = []
    for (const w of waiting) w()
  }

  /** Every waiting chunk (at least one), or `undefined` at a clean end. */
  readonly take: Effect.Effect<ReadonlyArray<Uint8Array> | undefined, ConnectionLost> = Effect.suspend(() => {
    if (this.items.length > 0) {
      const out = this.items
      this.items = []
      this.bytes = 0
      this.unpause()
      return Effect.succeed(out)
    }
    if (this.exit !== undefined) return Exit.isSuccess(this.exit) ? Effect.succeed(undefined) : Effect.failCause(this.exit.cause)
    return Effect.async<ReadonlyArray<Uint8Array> | undefined, ConnectionLost>((resume) => {
      this.waiters.push(() => resume(this.take))
    })
  })

  stream(): Stream.Stream<Uint8Array, ConnectionLost> {
    return Stream.repeatEffectChunkOption(
      Effect.matchEffect(this.take, {
        onFailure: (e) => Effect.fail(Option.some(e)),
        onSuccess: (chunks) =>
          chunks === undefined ? Effect.fail(Option.none()) : Effect.succeed(Chunk.unsafeFromArray(chunks as Array<Uint8Array>))
      })
    )
  }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

const codeOf = (cause: unknown): string | undefined => {
  const code = (cause as { readonly code?: unknown } | undefined)?.code
  return typeof code === "string" ? code : undefined
}

/** A `SocketError` as the protocol reports it; `undefined` for a clean end. */
const fromSocketError = (error: Socket.SocketError): ConnectionLost | undefined => {
  if (error.reason === "Close") {
    if (error.code === 1000) return undefined
    const why = error.closeReason ? `: ${error.closeReason}` : ""
    return new ConnectionLost({ reason: "error", detail: `closed with code ${error.code}${why}`, cause: error })
  }
  const code = codeOf(error.cause)
  const reason = code === "ECONNRESET" || code === "EPIPE" ? "reset" : "error"
  const what = error.reason === "Open" || error.reason === "OpenTimeout" ? "cannot open the socket" : `${error.reason.toLowerCase()} failed`
  return new ConnectionLost({ reason, detail: `${what}: ${describe(error.cause)}`, cause: error })
}

// ---------------------------------------------------------------------------
// The transport
// ---------------------------------------------------------------------------

interface Internals {
  readonly state: () => State
}

const internals = new WeakMap<Transport, Internals>()

/** A batch as the writes to make: small chunks joined, large ones as they are (not copied). */
const coalesce = (batch: ReadonlyArray<Uint8Array>): Array<Uint8Array> => {
  if (batch.length === 1) return [batch[0]!]
  const out: Array<Uint8Array> = []
  let run: Array<Uint8Array> = []
  let runBytes = 0
  const seal = () => {
    if (run.length === 1) out.push(run[0]!)
    else if (run.length > 1) out.push(concatBytes(run))
    run = []
    runBytes = 0
  }
  for (const c of batch) {
    if (c.length >= coalesceBytes) {
      seal()
      out.push(c)
      continue
    }
    if (runBytes + c.length > coalesceBytes) seal()
    run.push(c)
    runBytes += c.length
  }
  seal()
  return out
}

const make = (
  socket: Socket.Socket,
  options: Options | undefined,
  known: Handle | undefined
): Effect.Effect<Transport, ConnectionLost, Scope.Scope> =>
  Effect.gen(function*() {
    const writeHighWaterMark = options?.writeHighWaterMark ?? MiB
    const closeTimeout = options?.closeTimeoutMillis ?? 2000
    const inbox = new Inbox(options?.readHighWaterMark ?? MiB, options?.maxUnreadBytes ?? 64 * MiB)
    const ownWebSocket = webSockets.get(socket)
    const handle = (): Handle | undefined => {
      if (inbox.handle === undefined && ownWebSocket !== undefined) {
        const ws = ownWebSocket()
        if (ws !== undefined) inbox.handle = webSocketHandle(ws)
      }
      return inbox.handle
    }
    inbox.handle = known
    const kind = (): string => options?.kind ?? handle()?.kind ?? (ownWebSocket !== undefined ? "websocket" : "socket")
    const scope = yield* Effect.scope

    let closing = false
    let queue: Array<Uint8Array> = []
    /** Bytes written to us and not yet written by the socket's writer. */
    let queuedBytes = 0
    let broken: ConnectionLost | undefined
    let writerWake: (() => void) | undefined
    let drainWaiters: Array<() => void> = []
    let writerFiber: Fiber.RuntimeFiber<void> | undefined
    const socketBuffered = () => handle()?.buffered?.() ?? 0
    const pending = () => queuedBytes + socketBuffered()
    const gone = () => closing || broken !== undefined || inbox.isDone

    function wakeWriters(): void {
      if (drainWaiters.length === 0) return
      const ws = drainWaiters
      drainWaiters = []
      for (const w of ws) w()
    }

    // --- reading -----------------------------------------------------------

    /** Learns the handle from the context the platform runs a handler's effects in (the first message's). */
    const learnHandle = Effect.contextWith((context: Context.Context<never>) => {
      if (inbox.handle !== undefined) return
      inbox.handle = handleOf(context)
      inbox.check()
    })
    const onMessage = (chunk: Uint8Array): Effect.Effect<void> | void => {
      inbox.offer(chunk)
      if (handle() === undefined) return learnHandle
    }
    const opened = yield* Deferred.make<void, ConnectionLost>()
    /** The socket's run is over: the end of `incoming`, clean or not. */
    const ended = (exit: Exit.Exit<void, Socket.SocketError>): void => {
      let lost: ConnectionLost | undefined
      if (Exit.isFailure(exit) && !closing && !Cause.isInterruptedOnly(exit.cause)) {
        const failure = Cause.failureOption(exit.cause)
        lost = Option.isSome(failure)
          ? fromSocketError(failure.value)
          : new ConnectionLost({ reason: "error", detail: Cause.pretty(exit.cause), cause: Cause.squash(exit.cause) })
      }
      // Before the socket opened, this is why it did not.
      Deferred.unsafeDone(opened, Exit.fail(lost ?? new ConnectionLost({ reason: "closed", detail: "the socket closed before it opened" })))
      inbox.finish(lost === undefined ? Exit.void : Exit.fail(lost))
      wakeWriters()
    }
    const reader = yield* socket.run(onMessage, { onOpen: Deferred.succeed(opened, undefined) }).pipe(
      Effect.exit,
      Effect.flatMap((exit) => Effect.sync(() => ended(exit))),
      // Nothing more can be written: a writer waiting on the socket would wait forever.
      Effect.zipRight(Effect.suspend(() => (writerFiber !== undefined ? Fiber.interrupt(writerFiber) : Effect.void))),
      // Interruptible even when made in an acquire: the scope's close interrupts it.
      Effect.interruptible,
      Effect.forkIn(scope)
    )
    yield* Deferred.await(opened)

    // --- writing -----------------------------------------------------------

    const write = (bytes: Uint8Array): boolean => {
      if (gone()) return false
      if (bytes.length > 0) {
        queue.push(bytes)
        queuedBytes += bytes.length
        const w = writerWake
        writerWake = undefined
        w?.()
      }
      return pending() <= writeHighWaterMark
    }

    const writev = (chunks: ReadonlyArray<Uint8Array>): boolean => {
      let ok = true
      for (const c of chunks) ok = write(c) && ok
      return ok
    }

    /** The next batch, or `undefined` once closing and everything is written. */
    const nextBatch: Effect.Effect<Array<Uint8Array> | undefined> = Effect.suspend(() => {
      if (queue.length > 0) {
        const batch = queue
        queue = []
        return Effect.succeed(batch)
      }
      if (closing || broken !== undefined) return Effect.succeed(undefined)
      return Effect.async<Array<Uint8Array> | undefined>((resume) => {
        writerWake = () => resume(nextBatch)
      })
    })

    const writerScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
    const writeTo = yield* Scope.extend(socket.writer, writerScope)
    const writerLoop = Effect.gen(function*() {
      for (;;) {
        const batch = yield* nextBatch
        if (batch === undefined) return
        for (const chunk of coalesce(batch)) {
          yield* writeTo(chunk)
          queuedBytes -= chunk.length
          if (pending() <= writeHighWaterMark) wakeWriters()
        }
        // A WebSocket sends in the background with no drain event: look until it is back under the mark.
        while (socketBuffered() > writeHighWaterMark && !inbox.isDone) yield* Effect.sleep(bufferedPollMillis)
        wakeWriters()
      }
    })
    const writer = yield* writerLoop.pipe(
      Effect.catchAll((e) =>
        Effect.sync(() => {
          broken = fromSocketError(e) ?? new ConnectionLost({ reason: "closed", detail: "the socket closed while writing" })
          queue = []
          queuedBytes = 0
          inbox.finish(Exit.fail(broken))
          wakeWriters()
        })
      ),
      // Interruptible even when made in an acquire: the scope's close interrupts it.
      Effect.interruptible,
      Effect.forkIn(scope)
    )
    writerFiber = writer

    const lostOnWrite = () =>
      broken ?? new ConnectionLost({ reason: closing ? "closed by us" : "closed" })

    const writable: Effect.Effect<void, ConnectionLost> = Effect.suspend(() => {
      if (gone()) return Effect.fail(lostOnWrite())
      if (pending() <= writeHighWaterMark) return Effect.void
      return Effect.async<void, ConnectionLost>((resume) => {
        drainWaiters.push(() => resume(writable))
      })
    })

    // --- closing -----------------------------------------------------------

    const closed = yield* Deferred.make<void>()
    const shutdown = Effect.gen(function*() {
      inbox.drain()
      const w = writerWake
      writerWake = undefined
      w?.()
      // One deadline for the whole close: a peer that reads nothing must not hold it up.
      const deadline = Date.now() + closeTimeout
      // The close runs uninterruptibly; a wait it gives up on must still be interruptible, or the timeout would wait for it.
      const bounded = <A>(wait: Effect.Effect<A>) =>
        Effect.timeoutOption(Effect.interruptible(wait), Math.max(0, deadline - Date.now()))
      // Everything written so far goes out first.
      const flushed = Option.isSome(yield* bounded(Fiber.await(writer)))
      if (!flushed) yield* Fiber.interrupt(writer)
      else if (broken === undefined && !inbox.isDone && kind() === "websocket") {
        // Then our end: a WebSocket says so with a close frame; a NodeSocket ends its
        // writable side when its writer is released, below.
        yield* bounded(Effect.ignore(writeTo(new Socket.CloseEvent(1000))))
      }
      yield* Scope.close(writerScope, Exit.void)
      // Then the peer's end, for what time is left; then the socket goes.
      const peerEnded = Option.isSome(yield* bounded(Fiber.await(reader)))
      if (!peerEnded && kind() !== "websocket") {
        // Tear it down (the Transport contract): a NodeSocket destroys its socket on a close event, where
        // releasing it only ends it, and an end waits for a peer that reads. (A WebSocket has no such
        // abort in the platform's API: its own close timeout does that.)
        yield* Effect.timeoutOption(Effect.interruptible(Effect.ignore(writeTo(new Socket.CloseEvent(1000)))), 100)
      }
      yield* Fiber.interrupt(reader)
      inbox.finish(Exit.void)
      wakeWriters()
    }).pipe(Effect.ensuring(Deferred.succeed(closed, undefined)))

    const close: Effect.Effect<void> = Effect.suspend(() => {
      if (closing) return Deferred.await(closed)
      closing = true
      return Effect.zipRight(Effect.uninterruptible(shutdown), Deferred.await(closed))
    })

    yield* Effect.addFinalizer(() => close)

    const info = (): ConnectionInfo => ({
      kind: kind(),
      ...(options?.localAddress !== undefined ? { localAddress: options.localAddress } : {}),
      ...(options?.peerAddress !== undefined ? { peerAddress: options.peerAddress } : {})
    })

    const transport: Transport = {
      incoming: inbox.stream(),
      takeChunks: inbox.take,
      write,
      writev,
      writable,
      close,
      info
    }
    internals.set(transport, {
      state: () => ({ queuedBytes, socketBufferedBytes: socketBuffered(), unreadBytes: inbox.bytes, paused: inbox.paused })
    })
    return transport
  })

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
 *   transport.write(new Uint8Array([0, 4, 0x70, 0x69, 0x6e, 0x67]))
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

/**
 * The queues of a transport made by this module, for tests and
 * diagnostics; `undefined` for any other transport.
 *
 * @since 0.1.0
 */
export const state = (t: Transport): State | undefined => internals.get(t)?.state()
