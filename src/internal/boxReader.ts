/**
 * The reading side of the box protocol: pulls the transport's bytes, decodes
 * them and hands every box, in order, to the receiver; waits while the
 * receiver holds it (a box boundary) or the transport is past its high-water
 * mark; stamps when an unfinished box began, for the partial-box timeout.
 *
 * A chain of effects, not `Effect.gen`: it lives as long as the connection,
 * and a generator per connection keeps its registers, its function and a
 * prototype and shape of its own alive with it. Its steps are methods: a
 * connection holds one `Reader`, and the one continuation of its read.
 *
 * Internal (not exported by the package), as everything under `src/internal/`.
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { AmpBox } from "../AmpBox.js"
import {
  type ConnectionEnded,
  ConnectionLost,
  isDecodeError,
  PartialBoxTimeout,
  type PeerVerifyError,
  type ProtocolSwitched,
  type TlsError
} from "../AmpError.js"
import type { BoxReceiver } from "../BinaryBoxProtocol.js"
import { BoxDecoder, type DecoderLimits } from "../BoxCodec.js"
import type { Transport } from "../Transport.js"
import type { Sender } from "./boxSender.js"
import { type Sweeper, sweeperFor, type Watched } from "./sweeper.js"
import type { FastPath } from "./transportFastPath.js"

type End = ConnectionEnded | ProtocolSwitched
type ReadError = ConnectionLost | TlsError | PeerVerifyError
type Chunks = ReadonlyArray<Uint8Array>

/** What the reader needs of its connection. */
export interface Connection {
  readonly transport: Transport
  readonly fast: FastPath
  readonly scope: Scope.Scope
  readonly sender: Sender
  /** Why the connection ended; undefined while it is open. */
  readonly ending: End | undefined
  /** The connection has ended, or was handed to another protocol: no box is delivered any more. */
  isStopped(): boolean
  /** Ends the connection with `reason` (the first reason wins) and tells the receiver. */
  finish(reason: End): void
  /** Writes what was sent, ends the connection with `reason`; the Effect closes the transport. */
  endNow(reason: ConnectionEnded): Effect.Effect<void>
  /** Completes with the reason once the connection has ended. */
  readonly ended: Effect.Effect<End>
}

/** A pulled `Stream`'s chunks as the fast path gives them: `undefined` at the clean end. */
const chunksOf = <E>(pull: Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<E>>): Effect.Effect<Chunks | undefined, E> =>
  Effect.matchEffect(pull, {
    onFailure: Option.match({ onNone: () => Effect.succeed(undefined), onSome: Effect.fail }),
    onSuccess: (chunk) => Effect.succeed(Chunk.toReadonlyArray(chunk))
  })

/** A switch is completed by the hold itself: only an end that is not a switch releases it. */
const unlessSwitched = (reason: End): Effect.Effect<void> => reason._tag === "ProtocolSwitched" ? Effect.never : Effect.void

export class Reader implements Watched {
  readonly decoder: BoxDecoder
  /** Who gets the boxes; undefined until reading starts. */
  receiver: BoxReceiver | undefined = undefined
  /** The reader runs in its caller's fiber (see {@link untilEnd}). */
  private inline = false
  /** One read and what follows it; made when reading starts. */
  private read: Effect.Effect<void, ReadError> = Effect.void
  /** When the unfinished box in the decoder began (clock millis), or undefined at a box boundary. */
  private partialSince: number | undefined = undefined
  /** Who ends this connection once its partial box is too old; found at the first partial box. */
  private sweeper: Sweeper | undefined = undefined

  /** Partial boxes are timed on `clock` (the connection's: a `TestClock` drives them). */
  constructor(
    private readonly conn: Connection,
    limits: DecoderLimits | undefined,
    private readonly partialMillis: number,
    private readonly clock: Clock.Clock
  ) {
    this.decoder = new BoxDecoder(limits)
  }

  /**
   * Reads and delivers boxes to `receiver` until the connection ends; `inline` when run in the
   * caller's fiber.
   */
  run(receiver: BoxReceiver, inline: boolean): Effect.Effect<void> {
    this.receiver = receiver
    this.inline = inline
    // Built before it runs: what the fiber's stack holds for the connection's life is this and `stopped`.
    return Effect.catchAllCause(this.start(), (cause) => this.stopped(cause))
  }

  /** Prefers the transport's direct queue (no channel step per read); falls back to pulling its Stream. */
  private start(): Effect.Effect<void, ReadError> {
    const take = this.conn.fast.takeChunks
    if (take !== undefined) {
      this.read = Effect.flatMap(take, (chunks) => this.received(chunks))
      return this.read
    }
    return Effect.flatMap(Scope.extend(Stream.toPull(this.conn.transport.incoming), this.conn.scope), (pull) => {
      this.read = Effect.flatMap(chunksOf(pull), (chunks) => this.received(chunks))
      return this.read
    })
  }

  /** The reader has stopped: a read's failure or a defect ends the connection; an interruption is the scope's close. */
  private stopped(cause: Cause.Cause<ReadError>): Effect.Effect<void> {
    if (Cause.isInterruptedOnly(cause)) return Effect.void
    const failure = Cause.failureOption(cause)
    this.conn.finish(
      failure._tag === "Some" && Cause.defects(cause).length === 0
        ? failure.value
        : new ConnectionLost({ reason: "error", detail: Cause.pretty(cause), cause })
    )
    return Effect.void
  }

  private received(chunks: Chunks | undefined): Effect.Effect<void, ReadError> {
    if (chunks !== undefined) return this.work(chunks, 0, false)
    // Clean end of the byte stream: a partial box is an error, as in Twisted's loss of a half box.
    try {
      this.decoder.end()
    } catch (e) {
      if (!isDecodeError(e)) throw e
      this.conn.finish(e)
      return Effect.void
    }
    this.conn.finish(new ConnectionLost({ reason: "closed" }))
    return Effect.void
  }

  /** Delivers what the decoder holds, then pushes `chunks` from `next` on, box by box; then reads again. */
  private work(chunks: Chunks, next: number, completed: boolean): Effect.Effect<void, ReadError> {
    const decoder = this.decoder
    const conn = this.conn
    for (;;) {
      for (;;) {
        let box: AmpBox | undefined
        try {
          box = decoder.next()
        } catch (e) {
          // Twisted drops the connection on a key length over 255; so do we, after the boxes before it.
          return this.refuse(e)
        }
        if (box === undefined) break
        completed = true
        // Backpressure: past the transport's high-water mark, no new box is dispatched until it drains.
        if (conn.sender.isBlocked()) {
          const ready = box
          return Effect.flatMap(conn.sender.writable(), () => this.deliverThenGoOn(ready, chunks, next))
        }
        const hold = this.deliver(box)
        if (hold !== undefined) return this.goOnAfter(hold, chunks, next)
        if (conn.isStopped()) return Effect.void
      }
      if (next === chunks.length) break
      const bytes = chunks[next++]!
      conn.sender.metrics?.received(bytes.length)
      decoder.push(bytes)
    }
    return this.watch(completed)
  }

  private deliver(box: AmpBox): void | Effect.Effect<void> {
    const trace = this.conn.sender.trace
    if (trace !== undefined) trace("received", box)
    return this.receiver!.ampBoxReceived(box)
  }

  /** `box` once the transport has drained. */
  private deliverThenGoOn(box: AmpBox, chunks: Chunks, next: number): Effect.Effect<void, ReadError> {
    const hold = this.deliver(box)
    return hold !== undefined ? this.goOnAfter(hold, chunks, next) : this.goOn(chunks, next)
  }

  private goOnAfter(hold: Effect.Effect<void>, chunks: Chunks, next: number): Effect.Effect<void, ReadError> {
    return Effect.flatMap(this.inline ? this.untilEnd(hold) : hold, () => this.goOn(chunks, next))
  }

  private goOn(chunks: Chunks, next: number): Effect.Effect<void, ReadError> {
    return this.conn.isStopped() ? Effect.void : this.work(chunks, next, true)
  }

  /**
   * A receiver's hold, for a reader in its caller's fiber: it gives up once the connection
   * has ended (not switched: a switch is completed by the hold itself), as a reader fiber of
   * its own is interrupted when the connection's scope closes. A hold (a drain's, a responder
   * that never answers) must not keep a dead connection's handler running.
   */
  private untilEnd(hold: Effect.Effect<void>): Effect.Effect<void> {
    return Effect.raceFirst(hold, Effect.flatMap(this.conn.ended, unlessSwitched))
  }

  /** The decoder's refusal ends the connection, after everything already sent. */
  private refuse(e: unknown): Effect.Effect<void> {
    if (!isDecodeError(e)) throw e // a bug in the decoder: a defect, reported by `stopped`
    return this.conn.endNow(e)
  }

  /**
   * Stamps when an unfinished box began and joins the sweeper of this clock, so that a read
   * costs no timer (large values straddle nearly every read) and an idle connection no fiber.
   * Then reads again.
   */
  private watch(completed: boolean): Effect.Effect<void, ReadError> {
    if (!this.decoder.midBox) {
      if (this.partialSince !== undefined) {
        this.partialSince = undefined
        this.sweeper?.remove(this)
      }
    } else if (completed || this.partialSince === undefined) {
      const clock = this.clock
      this.partialSince = clock.unsafeCurrentTimeMillis()
      if (this.partialMillis !== Infinity) {
        const sweeper = (this.sweeper ??= sweeperFor(clock, this.partialMillis))
        if (sweeper.add(this)) return Effect.zipRight(Effect.forkDaemon(sweeper.sweep), this.read)
      }
    }
    return this.read
  }

  /** Leaves the sweeper (the connection has ended). */
  unwatch(): void {
    this.sweeper?.remove(this)
  }

  since(): number | undefined {
    return this.conn.ending === undefined ? this.partialSince : undefined
  }

  expire(): Effect.Effect<void> {
    const decoder = this.decoder
    return this.conn.endNow(new PartialBoxTimeout({ millis: this.partialMillis, buffered: decoder.buffered, boxOffset: decoder.boxOffset }))
  }
}
