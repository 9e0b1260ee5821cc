/**
 * The transport under `PlatformSocket`: an inbox that the socket's `run`
 * fills and the box protocol drains (pausing the socket where it can), and a
 * queue that one writer fiber empties into `Socket.writer` in order.
 */
import * as Socket from "@effect/platform/Socket"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { ConnectionLost } from "../AmpError.js"
import type { Options } from "../PlatformSocket.js"
import type { ConnectionInfo, Transport } from "../Transport.js"
import { concatBytes } from "./bytes.js"
import { describe } from "./messages.js"
import { type FastPath, fastPathOf, withFastPath, writeThrough } from "./transportFastPath.js"

/** What the transport sees of its queues, for tests and diagnostics. */
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
export interface WebSocketLike {
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
export const handleOf = (context: Context.Context<never>): Handle | undefined => {
  const ws = Context.getOption(context, Socket.WebSocket)
  if (Option.isSome(ws)) return webSocketHandle(ws.value as unknown as WebSocketLike)
  const net = Context.getOption(context, NetSocket)
  return Option.isSome(net) ? netHandle(net.value) : undefined
}

/** Sockets made by {@link makeWebSocket}, with their WebSocket once it exists. */
export const webSockets = new WeakMap<Socket.Socket, () => WebSocketLike | undefined>()

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

/** The fast path of this module's transports, with a look at their queues. */
interface PlatformFastPath extends FastPath {
  readonly state: () => State
}

/** The queues of a transport made here, for tests and diagnostics; `undefined` for any other transport. */
export const stateOf = (transport: Transport): State | undefined => {
  const fast = fastPathOf(transport)
  return fast !== undefined && "state" in fast ? (fast as PlatformFastPath).state() : undefined
}

/** The transport over `socket`. */
export const make = (
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

    const state = (): State => ({ queuedBytes, socketBufferedBytes: socketBuffered(), unreadBytes: inbox.bytes, paused: inbox.paused })
    const fast: PlatformFastPath = { offer: write, offerv: writev, writable, takeChunks: inbox.take, state }
    return withFastPath<Transport>({ incoming: inbox.stream(), write: writeThrough(fast), close, info }, fast)

  })
