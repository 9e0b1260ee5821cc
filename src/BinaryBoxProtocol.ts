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
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Mailbox from "effect/Mailbox"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { AmpBox } from "./AmpBox.js"
import * as AmpMetrics from "./AmpMetrics.js"
import {
  ConnectionLost,
  type EncodeError,
  isEncodeError,
  OnlyOneTLS,
  ProtocolSwitched,
  type TlsError,
  TransportUnsupported
} from "./AmpError.js"
import type { ConnectionEnded } from "./AmpError.js"
import type { DecoderLimits } from "./BoxCodec.js"
import { type ConnectionInfo, type RawConnection, type TlsOptions, type TlsUpgrade, Transport } from "./Transport.js"
import { type Connection, Reader } from "./internal/boxReader.js"
import { Sender } from "./internal/boxSender.js"
import type { DescriptorChannel } from "./internal/descriptors.js"
import { Once } from "./internal/once.js"
import { type Boundary, type ProtocolInternals, ProtocolInternalsId } from "./internal/protocolInternals.js"
import { type FastPath, fastPathOf, pump } from "./internal/transportFastPath.js"

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

type End = ConnectionEnded | ProtocolSwitched

/**
 * Who the connection belongs to: AMP (`open`); nobody while our switch request waits for
 * its answer (`asked`: the bytes after it may be the new protocol's); the new protocol
 * (`handedOver`: the transport is no longer ours to write to or close).
 */
type Owner = "open" | "asked" | "handedOver"

/** TLS on this connection: none yet; our StartTLS asked (our boxes are held); started. */
type Tls = "off" | "asked" | "on"

const alreadyReceiving = (): Effect.Effect<void> => Effect.dieMessage("BinaryBoxProtocol: boxes are already being received")

/** The boxes as a Stream: a receiver that feeds a mailbox. */
const boxesOf = (protocol: Protocol, capacity: number): Stream.Stream<AmpBox, End> =>
  Stream.unwrap(Effect.flatMap(Mailbox.make<AmpBox, End>({ capacity }), (mailbox) =>
    Effect.as(
      protocol.startReceivingBoxes({
        ampBoxReceived: (box) => (mailbox.unsafeOffer(box) ? undefined : Effect.asVoid(mailbox.offer(box))),
        stopReceivingBoxes: (reason) => {
          mailbox.unsafeDone(reason._tag === "ConnectionLost" && reason.reason === "closed" ? Exit.void : Exit.fail(reason))
        }
      }),
      Mailbox.toStream(mailbox)
    )))

/**
 * One connection's protocol. Its behaviour is on the prototype, so that a connection costs its
 * fields, not a closure per step. It is also its own {@link ProtocolInternals} and {@link Boundary}
 * (reached through `internalsOf`, never through the public type).
 */
class Protocol implements BinaryBoxProtocol, ProtocolInternals, Boundary, Connection {
  readonly sender: Sender
  readonly reader: Reader
  private readonly end = new Once<End>()
  /** Why the connection ended; undefined while it is open. */
  ending: End | undefined = undefined
  private owner: Owner = "open"
  private tls: Tls = "off"
  private readerFiber: Fiber.RuntimeFiber<void> | undefined = undefined

  constructor(
    readonly transport: Transport,
    readonly fast: FastPath,
    readonly scope: Scope.Scope,
    private readonly options: Options | undefined,
    metrics: AmpMetrics.ConnectionRecorder | undefined,
    clock: Clock.Clock
  ) {
    this.sender = new Sender(fast, options?.maxBatchBytes ?? 256 * 1024, options?.trace, metrics)
    this.reader = new Reader(this, options, Duration.toMillis(options?.partialBoxTimeout ?? Duration.seconds(60)), clock)
  }

  get [ProtocolInternalsId](): ProtocolInternals {
    return this
  }

  // --- sending -------------------------------------------------------------

  unsafeSendBox(box: AmpBox): void {
    if (this.owner !== "open") throw new ProtocolSwitched({})
    if (this.ending !== undefined) throw new ConnectionLost({ reason: "closed", detail: "cannot send: the connection has ended" })
    this.sender.send(box)
  }

  isBlocked(): boolean {
    return this.sender.isBlocked()
  }

  get writable(): Effect.Effect<void, ConnectionLost> {
    return Effect.suspend(() => this.sender.writable())
  }

  // --- the public functions --------------------------------------------------
  // Getters that hand out a function bound to this protocol, made at the first read: a caller may
  // take one out of the protocol (`Effect.forEach(boxes, protocol.sendBox)`), and a connection that
  // never reads one pays nothing for it.

  private bound: {
    sendBox?: BinaryBoxProtocol["sendBox"]
    startReceivingBoxes?: BinaryBoxProtocol["startReceivingBoxes"]
    receiveBoxes?: (receiver: BoxReceiver) => Effect.Effect<void>
    closeWith?: BinaryBoxProtocol["closeWith"]
    info?: BinaryBoxProtocol["info"]
  } | undefined = undefined

  get sendBox(): BinaryBoxProtocol["sendBox"] {
    return (this.bound ??= {}).sendBox ??= (box) => this.send(box)
  }

  get startReceivingBoxes(): BinaryBoxProtocol["startReceivingBoxes"] {
    return (this.bound ??= {}).startReceivingBoxes ??= (r) => this.receiveInFiber(r)
  }

  get receiveBoxes(): (receiver: BoxReceiver) => Effect.Effect<void> {
    return (this.bound ??= {}).receiveBoxes ??= (r) => this.receiveHere(r)
  }

  get closeWith(): BinaryBoxProtocol["closeWith"] {
    return (this.bound ??= {}).closeWith ??= (reason) => Effect.suspend(() => this.endNow(reason))
  }

  get info(): BinaryBoxProtocol["info"] {
    return (this.bound ??= {}).info ??= () => this.transport.info()
  }

  /** `sendBox`: waits while the transport is past its mark, then sends. */
  send(box: AmpBox): Effect.Effect<void, ProtocolSwitched | ConnectionLost | EncodeError> {
    const send = Effect.suspend(() => this.trySend(box))
    return this.isBlocked() ? Effect.zipRight(this.writable, send) : send
  }

  /** `unsafeSendBox` as an Effect; a throw other than its documented refusals is a defect. */
  private trySend(box: AmpBox): Effect.Effect<void, ProtocolSwitched | ConnectionLost | EncodeError> {
    try {
      this.unsafeSendBox(box)
      return Effect.void
    } catch (e) {
      if (e instanceof ProtocolSwitched || e instanceof ConnectionLost || isEncodeError(e)) return Effect.fail(e)
      throw e
    }
  }

  get descriptors(): DescriptorChannel | undefined {
    return this.fast.descriptors
  }

  // --- receiving -----------------------------------------------------------

  /** Takes `r` as the receiver: the reader to run, or undefined when the connection has ended already. */
  private begin(r: BoxReceiver, inline: boolean): Effect.Effect<void> | undefined {
    if (this.ending !== undefined) {
      this.reader.receiver = r
      r.stopReceivingBoxes(this.ending)
      return undefined
    }
    return this.reader.run(r, inline)
  }

  /** `startReceivingBoxes`: the reader in a fiber of the protocol's scope. */
  receiveInFiber(r: BoxReceiver): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.reader.receiver !== undefined) return alreadyReceiving()
      const run = this.begin(r, false)
      if (run === undefined) return Effect.void
      // Interruptible even when started in an acquire: the scope's close interrupts the reader.
      return Effect.map(Effect.forkIn(Effect.interruptible(run), this.scope), (f) => {
        this.readerFiber = f
      })
    })
  }

  /** `receiveBoxes`: the reader in the caller's fiber. */
  receiveHere(r: BoxReceiver): Effect.Effect<void> {
    return Effect.suspend(() => (this.reader.receiver !== undefined ? alreadyReceiving() : this.begin(r, true) ?? Effect.void))
  }

  /** Made when read: the dispatcher receives boxes itself, and a Stream costs per connection. */
  get boxes(): Stream.Stream<AmpBox, End> {
    return boxesOf(this, this.options?.boxBuffer ?? 1024)
  }

  // --- the end -------------------------------------------------------------

  get ended(): Effect.Effect<End> {
    return this.end.await
  }

  isStopped(): boolean {
    return this.owner === "handedOver" || this.ending !== undefined
  }

  finish(reason: End): void {
    if (this.ending !== undefined) return
    this.ending = reason
    this.reader.unwatch()
    this.sender.metrics?.closed()
    this.end.done(Exit.succeed(reason))
    this.reader.receiver?.stopReceivingBoxes(reason)
  }

  private get closeTransport(): Effect.Effect<void> {
    return this.fast.close ?? this.transport.close
  }

  endNow(reason: ConnectionEnded): Effect.Effect<void> {
    this.sender.flush()
    this.finish(reason)
    return this.owner === "handedOver" ? Effect.void : this.closeTransport
  }

  // The reason is made when a close happens: an error built in advance holds its stack trace (~2 KB) per connection.
  get close(): Effect.Effect<void> {
    return Effect.suspend(() => this.endNow(new ConnectionLost({ reason: "closed by us" })))
  }

  /** The scope's finalizer: writes what was sent and closes (unless handed over), stops the reader, ends. */
  finalize(): Effect.Effect<void> {
    let closing: Effect.Effect<void> = Effect.void
    if (this.owner !== "handedOver") {
      this.sender.flush()
      closing = this.closeTransport
    }
    return Effect.zipRight(closing, Effect.suspend(() => this.afterClose()))
  }

  private afterClose(): Effect.Effect<void> {
    const ended = Effect.sync(() => {
      if (this.ending === undefined) this.finish(new ConnectionLost({ reason: "closed by us" }))
    })
    return this.readerFiber === undefined ? ended : Effect.zipRight(Fiber.interrupt(this.readerFiber), ended)
  }

  // --- boundaries ----------------------------------------------------------

  get boundary(): Boundary {
    return this
  }

  get canStartTls(): boolean {
    return this.transport.canStartTls === true
  }

  isTlsActive(): boolean {
    return this.tls !== "off"
  }

  prepareTls(): void {
    if (this.tls !== "off") throw new OnlyOneTLS({})
    this.tls = "asked"
    this.sender.hold()
  }

  startTls(options: TlsOptions): Effect.Effect<TlsUpgrade, OnlyOneTLS | TransportUnsupported | TlsError> {
    return Effect.suspend(() => {
      if (this.tls === "on") return Effect.fail(new OnlyOneTLS({}))
      const startTls = this.transport.startTls
      if (startTls === undefined) {
        return Effect.fail(new TransportUnsupported({ operation: "StartTLS", transport: this.transport.info().kind }))
      }
      this.tls = "on"
      this.sender.flush()
      const leftover = this.reader.decoder.takeLeftover()
      return Effect.tap(startTls(options, leftover), () => this.sender.release(true))
    })
  }

  cancelTls(): void {
    if (this.tls === "asked") this.tls = "off"
    this.sender.release(this.ending === undefined && this.owner === "open")
  }

  lockForSwitch(): void {
    if (this.owner === "handedOver") throw new ProtocolSwitched({ detail: "protocol already switched" })
    this.owner = "asked"
  }

  unlockFromSwitch(): void {
    if (this.owner === "asked") this.owner = "open"
  }

  get switchTo(): Effect.Effect<RawConnection, TransportUnsupported | ProtocolSwitched> {
    return Effect.suspend(() => this.handOver())
  }

  private handOver(): Effect.Effect<RawConnection, TransportUnsupported | ProtocolSwitched> {
    if (this.owner === "handedOver") return Effect.fail(new ProtocolSwitched({ detail: "protocol already switched" }))
    const detach = this.transport.detach
    if (detach === undefined) {
      const unsupported = new TransportUnsupported({ operation: "detach", transport: this.transport.info().kind })
      return Effect.zipRight(this.switchFailed(unsupported), Effect.fail(unsupported))
    }
    this.sender.flush()
    this.owner = "handedOver"
    const leftover = this.reader.decoder.takeLeftover()
    return Effect.tapBoth(detach(leftover), {
      onSuccess: () => Effect.sync(() => this.finish(new ProtocolSwitched({ detail: "the connection was handed to another protocol" }))),
      onFailure: (e) => this.switchFailed(e)
    })
  }

  /**
   * The switch was asked or answered but the transport cannot let go: the connection is of no
   * further use to AMP, and is still ours to end (after what was sent).
   */
  private switchFailed(e: TransportUnsupported): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.owner = "open"
      return this.endNow(
        new ConnectionLost({ reason: "error", detail: `the protocol switch could not take the connection: ${e.message}`, cause: e })
      )
    })
  }
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
  Effect.flatMap(Effect.scope, (scope) => {
    // Our transports' internal fast path; a transport of the user's gets a queue in front of its `write`.
    const fast = fastPathOf(transport)
    return fast !== undefined ? open(transport, fast, scope, options) : Effect.flatMap(pump(transport), (fast) => open(transport, fast, scope, options))
  })

const open = (transport: Transport, fast: FastPath, scope: Scope.Scope, options: Options | undefined): Effect.Effect<BinaryBoxProtocol> =>
  Effect.flatMap(Effect.zip(FiberRef.get(AmpMetrics.enabled), Effect.clock), ([metricsOn, clock]) => {
    // Read once: with metrics off, reads and writes test `metrics` and do nothing more.
    const metrics = metricsOn ? AmpMetrics.connectionRecorder : undefined
    metrics?.opened()
    const protocol = new Protocol(transport, fast, scope, options, metrics, clock)
    // On the scope itself (Effect.addFinalizer would keep this fiber's refs for it, per connection).
    return Effect.as(Scope.addFinalizerExit(scope, finalizerOf(protocol)), protocol)
  })

/** Kept apart from `open`, so that the finalizer's closure holds the protocol and nothing else. */
const finalizerOf = (protocol: Protocol) => () => protocol.finalize()

/**
 * `BinaryBoxProtocol` over the `Transport` in context. The layer's scope owns
 * the connection.
 *
 * @since 0.1.0
 */
export const layer = (options?: Options): Layer.Layer<BinaryBoxProtocol, never, Transport> =>
  Layer.scoped(BinaryBoxProtocol, Effect.flatMap(Transport, (t) => make(t, options)))
