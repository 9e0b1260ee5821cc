/**
 * Boxes over a byte stream: Twisted's `BinaryBoxProtocol` as an Effect service.
 *
 * Reading: one fiber pulls the transport's bytes, decodes them and hands
 * every box, synchronously and in order, to a {@link BoxReceiver} (Twisted's
 * `IBoxReceiver`). A receiver may return an Effect: the reader then waits for
 * it before decoding the next box. That is how backpressure reaches the
 * socket, and how the two connection-changing moments (StartTLS and the
 * protocol switch) happen *exactly* at a box boundary: the receiver holds the
 * reader right after the box that ends AMP (or plaintext), so the bytes behind
 * it are never parsed as boxes; they are handed, untouched, to TLS or to the
 * next protocol.
 *
 * Writing: `sendBox` validates and queues; all boxes sent in one turn of the
 * event loop go out as one buffer in one transport write. Past the
 * transport's high-water mark, `sendBox` waits for it to drain.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Mailbox from "effect/Mailbox"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { AmpBox } from "./AmpBox.js"
import * as AmpMetrics from "./AmpMetrics.js"
import {
  ConnectionLost,
  type EncodeError,
  isDecodeError,
  isEncodeError,
  OnlyOneTLS,
  PartialBoxTimeout,
  type PeerVerifyError,
  ProtocolSwitched,
  type TlsError,
  TransportUnsupported
} from "./AmpError.js"
import type { ConnectionEnded } from "./AmpError.js"
import { BoxDecoder, type DecoderLimits, encodedLength, BoxWriter } from "./BoxCodec.js"
import { type ConnectionInfo, type RawConnection, Transport } from "./Transport.js"
import { type Boundary, type ProtocolInternals, ProtocolInternalsId } from "./internal/protocolInternals.js"
import { fastPathOf, pump } from "./internal/transportFastPath.js"
import { lazyField } from "./internal/lazyField.js"
import { Once } from "./internal/once.js"

/** Protocols whose `boxes` is made on first read (see internal/lazyField). */
const withBoxes = lazyField("boxes")

/**
 * Where received boxes go (Twisted's `IBoxReceiver`).
 *
 * @since 0.1.0
 */
export interface BoxReceiver {
  /**
   * One box, in order. Runs synchronously inside the reader; return an Effect
   * to make the reader wait for it before the next box.
   */
  readonly ampBoxReceived: (box: AmpBox) => void | Effect.Effect<void>
  /** No more boxes will come; `cause` says why. Called exactly once. */
  readonly stopReceivingBoxes: (cause: ConnectionEnded | ProtocolSwitched) => void
}

/** Options of {@link make}. */
export interface Options extends DecoderLimits {
  /** Boxes buffered for a `boxes` stream consumer before the reader waits. Default 1024. */
  readonly boxBuffer?: number
  /** Bytes of boxes gathered in one turn before they are written without waiting for the turn's end. Default 256 KiB. */
  readonly maxBatchBytes?: number
  /**
   * How long a peer may hold a partial box (some of its bytes sent, not all)
   * before the connection is closed with `PartialBoxTimeout`. Twisted has no
   * such limit; without one, a peer that sends half a box and goes quiet
   * holds a connection (and its buffers) forever. Counted from the read that
   * began the unfinished box, so trickling bytes does not extend it. Default
   * 60 seconds: generous for a 16 MiB box on a slow link, short against
   * slow-loris peers. `Duration.infinity` turns it off.
   */
  readonly partialBoxTimeout?: Duration.DurationInput
  /** Sees every box received and sent, for debugging (`effect-amp serve --verbose`). */
  readonly trace?: (direction: "received" | "sent", box: AmpBox) => void
}

/**
 * The box protocol of one connection.
 *
 * @since 0.1.0
 */
export interface BinaryBoxProtocol {
  /**
   * Sends a box. Fails with `ProtocolSwitched` once the connection has
   * switched (or is locked for a switch), `ConnectionLost` once it has ended,
   * and `TooLong`/`InvalidKey` for a box AMP cannot carry. Waits while the
   * transport is past its high-water mark.
   */
  readonly sendBox: (box: AmpBox) => Effect.Effect<void, ProtocolSwitched | ConnectionLost | EncodeError>
  /** Completes when the transport can take more bytes. */
  readonly writable: Effect.Effect<void, ConnectionLost>
  /**
   * Starts delivering boxes to `receiver` (Twisted's `startReceivingBoxes`).
   * Once per protocol. The reader fiber lives in the protocol's scope.
   */
  readonly startReceivingBoxes: (receiver: BoxReceiver) => Effect.Effect<void>
  /**
   * `startReceivingBoxes` in the current fiber: reads and delivers boxes
   * until no more will come (the receiver has heard why), then returns. For
   * a server's connection handler, which has nothing else to do meanwhile: a
   * connection then costs one fiber, not two.
   */
  readonly receiveBoxes?: (receiver: BoxReceiver) => Effect.Effect<void>
  /**
   * The incoming boxes as a `Stream`, for consumers that do not need to act
   * at box boundaries. Mutually exclusive with `startReceivingBoxes`.
   */
  readonly boxes: Stream.Stream<AmpBox, ConnectionEnded | ProtocolSwitched>
  /** Completes with the reason once the connection has ended (or switched). */
  readonly ended: Effect.Effect<ConnectionEnded | ProtocolSwitched>
  /** Sends what is queued and ends the connection gracefully. */
  readonly close: Effect.Effect<void>
  /** Ends the connection, reporting `reason` as the cause (a protocol violation, say). */
  readonly closeWith: (reason: ConnectionEnded) => Effect.Effect<void>
  readonly info: () => ConnectionInfo
}

/**
 * The service tag.
 *
 * @since 0.1.0
 */
export const BinaryBoxProtocol: Context.Tag<BinaryBoxProtocol, BinaryBoxProtocol> = Context.GenericTag<
  BinaryBoxProtocol
>("effect-amp/BinaryBoxProtocol")

const schedule: (f: () => void) => void = typeof setImmediate === "function"
  ? (f) => {
    setImmediate(f)
  }
  : (f) => {
    setTimeout(f, 0)
  }

type End = ConnectionEnded | ProtocolSwitched
type ReadError = ConnectionLost | TlsError | PeerVerifyError

/** A connection holding a partial box, as a {@link Sweeper} sees it. */
interface Watched {
  /** When its unfinished box began (clock millis); undefined once there is none. */
  readonly since: () => number | undefined
  /** The box has been held too long: ends the connection; the Effect closes the transport. */
  readonly expire: () => Effect.Effect<void>
}

/**
 * Ends connections whose partial box has outlived `millis`: one fiber for
 * every connection on a clock with that timeout, alive only while some
 * connection holds a partial box (a fiber per connection costs kilobytes,
 * and a timer per read would cost a timer per read: large values straddle
 * nearly every one). It sleeps on the connections' own clock, so a
 * `TestClock` drives it. Deadlines on one clock and one timeout only grow
 * with time, so a connection added while it sleeps is never due before it wakes.
 */
class Sweeper {
  private readonly watched = new Set<Watched>()
  private running = false

  constructor(private readonly clock: Clock.Clock, private readonly millis: number) {}

  /** Watches `w`; true when the caller must fork {@link sweep} (none runs). */
  add(w: Watched): boolean {
    this.watched.add(w)
    if (this.running) return false
    this.running = true
    return true
  }

  remove(w: Watched): void {
    this.watched.delete(w)
  }

  /** Ends the connections due; the millis until the next is due, or -1 (and not running) when none is left. */
  private step(): { readonly wait: number; readonly closes: Array<Effect.Effect<void>> } {
    const now = this.clock.unsafeCurrentTimeMillis()
    let next = Infinity
    const closes: Array<Effect.Effect<void>> = []
    for (const w of this.watched) {
      const since = w.since()
      if (since === undefined) {
        this.watched.delete(w)
      } else if (since + this.millis <= now) {
        this.watched.delete(w)
        closes.push(w.expire())
      } else if (since + this.millis < next) {
        next = since + this.millis
      }
    }
    if (next === Infinity) this.running = false
    return { wait: next === Infinity ? -1 : next - now, closes }
  }

  readonly sweep: Effect.Effect<void> = Effect.gen(this, function*() {
    for (;;) {
      const { closes, wait } = this.step()
      // Closing waits for the peer (up to the transport's close timeout): not in the sweeper's way.
      if (closes.length > 0) yield* Effect.forkDaemon(Effect.all(closes, { concurrency: "unbounded", discard: true }))
      if (wait < 0) return
      yield* this.clock.sleep(Duration.millis(wait))
    }
  }).pipe(Effect.onInterrupt(() => Effect.sync(() => (this.running = false))))
}

/** The sweepers, by clock and timeout. */
const sweepers = new WeakMap<Clock.Clock, Map<number, Sweeper>>()
const sweeperFor = (clock: Clock.Clock, millis: number): Sweeper => {
  let byMillis = sweepers.get(clock)
  if (byMillis === undefined) sweepers.set(clock, byMillis = new Map())
  let sweeper = byMillis.get(millis)
  if (sweeper === undefined) byMillis.set(millis, sweeper = new Sweeper(clock, millis))
  return sweeper
}

/** Boxes held back while our StartTLS waits for its answer. */
interface Held {
  readonly boxes: Array<AmpBox>
  /** Their encoded bytes: past `maxBatchBytes`, senders wait for the handshake as they would for the socket. */
  bytes: number
  /** Completed when they are released (sent on TLS, or in plaintext when the StartTLS failed). */
  released: Deferred.Deferred<void> | undefined
}

/**
 * A box protocol over `transport`. Closing `scope`'s owner closes the
 * connection, stops the reader and drops queued boxes.
 *
 * @since 0.1.0
 */
export const make = (
  transport: Transport,
  options?: Options
): Effect.Effect<BinaryBoxProtocol, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    // Our transports' internal fast path; a transport of the user's gets a queue in front of its `write`.
    const fast = fastPathOf(transport) ?? (yield* pump(transport))
    const closeTransport = fast.close ?? transport.close
    const decoder = new BoxDecoder(options)
    const trace = options?.trace
    const maxBatchBytes = options?.maxBatchBytes ?? 256 * 1024
    const endOnce = new Once<End>()
    // Read once: with metrics off, reads and writes test `metrics` and do nothing more.
    const metrics = (yield* FiberRef.get(AmpMetrics.enabled)) ? AmpMetrics.connectionRecorder : undefined
    metrics?.opened()

    // --- sending -----------------------------------------------------------
    // Boxes are encoded as they are sent, into a reused slab; large values are not copied.
    const writer = new BoxWriter()
    let flushScheduled = false
    let blocked = false
    /**
     * Who the connection belongs to: AMP (`open`); nobody while our switch request waits for
     * its answer (`asked`: the bytes after it may be the new protocol's); the new protocol
     * (`handedOver`: the transport is no longer ours to write to or close).
     */
    let owner: "open" | "asked" | "handedOver" = "open"
    let endReason: End | undefined
    /** Our boxes held back while our StartTLS waits for its answer; undefined when none are. */
    let held: Held | undefined
    let tlsStarted = false

    // Everything handed to `sendBox` is written, even once the end is known: a close we start
    // writes what was sent first (Twisted's `loseConnection`); a transport whose peer has gone
    // drops the bytes itself.
    const flush = (): void => {
      flushScheduled = false
      if (writer.size === 0) return
      metrics?.sent(writer.size)
      const chunks = writer.take()
      const ok = chunks.length === 1
        ? fast.offer(chunks[0]!)
        : fast.offerv !== undefined
        ? fast.offerv(chunks)
        : chunks.reduce((ok, c) => fast.offer(c) && ok, true)
      if (!ok) blocked = true
    }

    const enqueue = (box: AmpBox): void => {
      writer.add(box)
      // A producer that never yields would otherwise pile a whole turn's boxes up here:
      // past the batch limit, write now, so `blocked` (and with it `sendBox`) holds it back.
      if (writer.size >= maxBatchBytes) return flush()
      if (!flushScheduled) {
        flushScheduled = true
        schedule(flush)
      }
    }

    const unsafeSendBox = (box: AmpBox): void => {
      if (owner !== "open") throw new ProtocolSwitched({})
      if (endReason !== undefined) throw new ConnectionLost({ reason: "closed", detail: "cannot send: the connection has ended" })
      if (held !== undefined) {
        held.bytes += encodedLength(box)
        held.boxes.push(box)
      } else {
        enqueue(box)
      }
      // Traced once it is queued for the socket: a box refused above (ended, too long) was never sent.
      if (trace !== undefined) trace("sent", box)
    }

    const heldFull = (): boolean => held !== undefined && held.bytes >= maxBatchBytes
    const isBlocked = (): boolean => blocked || heldFull()

    const transportWritable = Effect.tap(Effect.suspend(() => fast.writable), () => Effect.sync(() => (blocked = false)))
    const writable: Effect.Effect<void, ConnectionLost> = Effect.suspend(() => {
      if (heldFull()) {
        const h = held!
        h.released ??= Deferred.unsafeMake(FiberId.none)
        return Effect.zipRight(Deferred.await(h.released), writable)
      }
      return blocked ? transportWritable : Effect.void
    })

    /** Sends the boxes held while a StartTLS was pending (on TLS, or in plaintext when it failed). */
    const releaseHeld = (send: boolean): void => {
      const h = held
      held = undefined
      if (h === undefined) return
      if (send) for (const b of h.boxes) enqueue(b)
      if (h.released !== undefined) Deferred.unsafeDone(h.released, Exit.void)
    }

    /** `unsafeSendBox` as an Effect; a throw other than its documented refusals is a defect. */
    const trySend = (box: AmpBox): Effect.Effect<void, ProtocolSwitched | ConnectionLost | EncodeError> => {
      try {
        unsafeSendBox(box)
        return Effect.void
      } catch (e) {
        if (e instanceof ProtocolSwitched || e instanceof ConnectionLost || isEncodeError(e)) return Effect.fail(e)
        throw e
      }
    }
    const sendBox = (box: AmpBox): Effect.Effect<void, ProtocolSwitched | ConnectionLost | EncodeError> =>
      isBlocked() ? Effect.zipRight(writable, Effect.suspend(() => trySend(box))) : Effect.suspend(() => trySend(box))

    // --- the end -----------------------------------------------------------
    let receiver: BoxReceiver | undefined
    const finish = (reason: End): void => {
      if (endReason !== undefined) return
      endReason = reason
      sweeper?.remove(watched)
      metrics?.closed()
      endOnce.done(Exit.succeed(reason))
      receiver?.stopReceivingBoxes(reason)
    }

    // --- reading -----------------------------------------------------------
    let readerFiber: Fiber.RuntimeFiber<void> | undefined

    const partialBoxMillis = Duration.toMillis(options?.partialBoxTimeout ?? Duration.seconds(60))
    /** When the unfinished box in the decoder began (clock millis), or undefined at a box boundary. */
    let partialSince: number | undefined
    /** Who ends this connection once its partial box is too old; made at the first partial box. */
    let sweeper: Sweeper | undefined
    /**
     * The reader only stamps `partialSince` and joins the sweeper of its clock, so that a read
     * costs no timer (large values straddle nearly every read) and an idle connection no fiber.
     */
    const watched: Watched = {
      since: () => (endReason === undefined ? partialSince : undefined),
      expire: () => {
        const reason = new PartialBoxTimeout({ millis: partialBoxMillis, buffered: decoder.buffered, boxOffset: decoder.boxOffset })
        flush()
        finish(reason)
        return closeTransport
      }
    }

    /** The decoder's refusal ends the connection, after everything already sent. */
    const refuse = (e: unknown): Effect.Effect<void> => {
      if (!isDecodeError(e)) throw e // a bug in the decoder: a defect, reported by the reader's catch-all
      flush()
      finish(e)
      return closeTransport
    }

    /**
     * A receiver's hold, for a reader in its caller's fiber: it gives up once the connection
     * has ended (not switched: a switch is completed by the hold itself), as a reader fiber of
     * its own is interrupted when the connection's scope closes. A hold (a drain's, a responder
     * that never answers) must not keep a dead connection's handler running.
     */
    const untilEnd = (hold: Effect.Effect<void>): Effect.Effect<void> =>
      Effect.raceFirst(
        hold,
        Effect.flatMap(endOnce.await, (reason) => (reason._tag === "ProtocolSwitched" ? Effect.never : Effect.void))
      )

    /**
     * Reads, decodes and delivers boxes until the connection ends. A chain of effects, not
     * Effect.gen: it lives as long as the connection, and a generator per connection keeps
     * its registers, its function and a prototype and shape of its own alive with it.
     */
    const reader = (r: BoxReceiver, inline: boolean): Effect.Effect<void> =>
      Effect.flatMap(Effect.clock, (clock) => {
        /** Delivers what the decoder holds, then pushes `chunks` from `next` on, box by box; then reads again. */
        const work = (chunks: ReadonlyArray<Uint8Array>, next: number, completed: boolean): Effect.Effect<void> => {
          for (;;) {
            for (;;) {
              let box: AmpBox | undefined
              try {
                box = decoder.next()
              } catch (e) {
                // Twisted drops the connection on a key length over 255; so do we, after the boxes before it.
                return refuse(e)
              }
              if (box === undefined) break
              completed = true
              // Backpressure: past the transport's high-water mark, no new box is dispatched until it drains.
              if (isBlocked()) {
                const ready = box
                return Effect.flatMap(Effect.either(writable), (drained) =>
                  drained._tag === "Left" ? Effect.sync(() => finish(drained.left)) : deliver(ready, chunks, next))
              }
              if (trace !== undefined) trace("received", box)
              const hold = r.ampBoxReceived(box)
              if (hold !== undefined) return Effect.flatMap(inline ? untilEnd(hold) : hold, () => goOn(chunks, next))
              if (owner === "handedOver" || endReason !== undefined) return Effect.void
            }
            if (next === chunks.length) break
            const bytes = chunks[next++]!
            metrics?.received(bytes.length)
            decoder.push(bytes)
          }
          if (!decoder.midBox) {
            if (partialSince !== undefined) {
              partialSince = undefined
              sweeper?.remove(watched)
            }
          } else if (completed || partialSince === undefined) {
            partialSince = clock.unsafeCurrentTimeMillis()
            if (partialBoxMillis !== Infinity) {
              sweeper ??= sweeperFor(clock, partialBoxMillis)
              if (sweeper.add(watched)) return Effect.zipRight(Effect.forkDaemon(sweeper.sweep), read)
            }
          }
          return read
        }
        /** `box` once the transport has drained. */
        const deliver = (box: AmpBox, chunks: ReadonlyArray<Uint8Array>, next: number): Effect.Effect<void> => {
          if (trace !== undefined) trace("received", box)
          const hold = r.ampBoxReceived(box)
          if (hold !== undefined) return Effect.flatMap(inline ? untilEnd(hold) : hold, () => goOn(chunks, next))
          return goOn(chunks, next)
        }
        const goOn = (chunks: ReadonlyArray<Uint8Array>, next: number): Effect.Effect<void> =>
          owner === "handedOver" || endReason !== undefined ? Effect.void : work(chunks, next, true)
        const received = (pulled: Either.Either<ReadonlyArray<Uint8Array> | undefined, ReadError>): Effect.Effect<void> => {
          if (pulled._tag === "Left") return Effect.sync(() => finish(pulled.left))
          if (pulled.right === undefined) {
            // Clean end of the byte stream: a partial box is an error, as in Twisted's loss of a half box.
            try {
              decoder.end()
            } catch (e) {
              if (!isDecodeError(e)) throw e
              finish(e)
              return Effect.void
            }
            finish(new ConnectionLost({ reason: "closed" }))
            return Effect.void
          }
          return work(pulled.right, 0, false)
        }
        // Prefer the transport's direct queue (no channel step per read); fall back to pulling its Stream.
        let read: Effect.Effect<void>
        if (fast.takeChunks !== undefined) {
          read = Effect.flatMap(Effect.either(fast.takeChunks), received)
          return read
        }
        return Effect.flatMap(Scope.extend(Stream.toPull(transport.incoming), scope), (pull) => {
          const take: Effect.Effect<ReadonlyArray<Uint8Array> | undefined, ReadError> = Effect.matchEffect(pull, {
            onFailure: Option.match({ onNone: () => Effect.succeed(undefined), onSome: Effect.fail }),
            onSuccess: (chunk) => Effect.succeed(Chunk.toReadonlyArray(chunk))
          })
          read = Effect.flatMap(Effect.either(take), received)
          return read
        })
      })

    /** Takes `r` as the receiver: the reader to run, or undefined when the connection has ended already. */
    const begin = (r: BoxReceiver, inline: boolean): Effect.Effect<void> | undefined => {
      receiver = r
      if (endReason !== undefined) {
        r.stopReceivingBoxes(endReason)
        return undefined
      }
      return Effect.catchAllCause(reader(r, inline), (cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.void
          : Effect.sync(() => finish(new ConnectionLost({ reason: "error", detail: Cause.pretty(cause), cause }))))
    }
    const alreadyReceiving = () => Effect.dieMessage("BinaryBoxProtocol: boxes are already being received")

    const startReceivingBoxes = (r: BoxReceiver): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (receiver !== undefined) return alreadyReceiving()
        const run = begin(r, false)
        if (run === undefined) return Effect.void
        // Interruptible even when started in an acquire: the scope's close interrupts the reader.
        return Effect.map(Effect.forkIn(Effect.interruptible(run), scope), (f) => {
          readerFiber = f
        })
      })

    const receiveBoxes = (r: BoxReceiver): Effect.Effect<void> =>
      Effect.suspend(() => (receiver !== undefined ? alreadyReceiving() : begin(r, true) ?? Effect.void))

    const boxBuffer = options?.boxBuffer ?? 1024
    const makeBoxes = (): Stream.Stream<AmpBox, End> => Effect.gen(function*() {
      const mailbox = yield* Mailbox.make<AmpBox, End>({ capacity: boxBuffer })
      yield* startReceivingBoxes({
        ampBoxReceived: (box) => (mailbox.unsafeOffer(box) ? undefined : Effect.asVoid(mailbox.offer(box))),
        stopReceivingBoxes: (reason) => {
          mailbox.unsafeDone(reason._tag === "ConnectionLost" && reason.reason === "closed" ? Exit.void : Exit.fail(reason))
        }
      })
      return Mailbox.toStream(mailbox)
    }).pipe(Stream.unwrap)


    // --- boundaries ----------------------------------------------------------
    /**
     * The switch was asked or answered but the transport cannot let go: the connection is of no
     * further use to AMP, and is still ours to end (after what was sent).
     */
    const switchFailed = (e: TransportUnsupported): Effect.Effect<void> =>
      Effect.suspend(() => {
        owner = "open"
        return closeWith(new ConnectionLost({ reason: "error", detail: `the protocol switch could not take the connection: ${e.message}`, cause: e }))
      })

    const boundary: Boundary = {
      prepareTls: () => {
        if (tlsStarted || held !== undefined) throw new OnlyOneTLS({})
        held = { boxes: [], bytes: 0, released: undefined }
      },
      startTls: (tlsOptions) =>
        Effect.suspend(() => {
          if (tlsStarted) return Effect.fail(new OnlyOneTLS({}))
          if (transport.startTls === undefined) {
            return Effect.fail(new TransportUnsupported({ operation: "StartTLS", transport: transport.info().kind }))
          }
          tlsStarted = true
          flush()
          const leftover = decoder.takeLeftover()
          return Effect.tap(transport.startTls(tlsOptions, leftover), () => Effect.sync(() => releaseHeld(true)))
        }),
      cancelTls: () => releaseHeld(endReason === undefined && owner === "open"),
      lockForSwitch: () => {
        if (owner === "handedOver") throw new ProtocolSwitched({ detail: "protocol already switched" })
        owner = "asked"
      },
      unlockFromSwitch: () => {
        if (owner === "asked") owner = "open"
      },
      switchTo: Effect.suspend((): Effect.Effect<RawConnection, TransportUnsupported | ProtocolSwitched> => {
        if (owner === "handedOver") return Effect.fail(new ProtocolSwitched({ detail: "protocol already switched" }))
        const detach = transport.detach
        if (detach === undefined) {
          const unsupported = new TransportUnsupported({ operation: "detach", transport: transport.info().kind })
          return Effect.zipRight(switchFailed(unsupported), Effect.fail(unsupported))
        }
        flush()
        owner = "handedOver"
        const leftover = decoder.takeLeftover()
        return detach(leftover).pipe(
          Effect.tapBoth({
            onSuccess: () => Effect.sync(() => finish(new ProtocolSwitched({ detail: "the connection was handed to another protocol" }))),
            onFailure: switchFailed
          })
        )
      }),
      isTlsActive: () => tlsStarted || held !== undefined,
      canStartTls: transport.canStartTls === true
    }

    const closeWith = (reason: ConnectionEnded) =>
      Effect.suspend(() => {
        flush()
        finish(reason)
        return owner === "handedOver" ? Effect.void : closeTransport
      })
    // The reason is made when a close happens: an error built in advance holds its stack trace (~2 KB) per connection.
    const close = Effect.suspend(() => closeWith(new ConnectionLost({ reason: "closed by us" })))

    // On the scope itself (Effect.addFinalizer would keep this fiber's refs for it, per connection).
    yield* Scope.addFinalizer(
      scope,
      Effect.gen(function*() {
        if (owner !== "handedOver") {
          flush()
          yield* closeTransport
        }
        if (readerFiber !== undefined) yield* Fiber.interrupt(readerFiber)
        if (endReason === undefined) finish(new ConnectionLost({ reason: "closed by us" }))
      })
    )

    // `boxes` is made when first read: the dispatcher receives boxes itself, and a Stream costs per connection.
    const protocol: BinaryBoxProtocol = withBoxes({
      sendBox,
      writable,
      startReceivingBoxes,
      receiveBoxes,
      ended: endOnce.await,
      close,
      closeWith,
      info: () => transport.info()
    }, makeBoxes)
    const internals: ProtocolInternals = { unsafeSendBox, isBlocked, boundary, descriptors: fast.descriptors }
    Object.defineProperty(protocol, ProtocolInternalsId, { value: internals, enumerable: false })
    return protocol
  })

/**
 * `BinaryBoxProtocol` over the `Transport` in context. The layer's scope owns
 * the connection.
 *
 * @since 0.1.0
 */
export const layer = (options?: Options): Layer.Layer<BinaryBoxProtocol, never, Transport> =>
  Layer.scoped(BinaryBoxProtocol, Effect.flatMap(Transport, (t) => make(t, options)))
