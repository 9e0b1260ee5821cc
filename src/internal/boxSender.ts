/**
 * The writing side of the box protocol: boxes are encoded as they are sent,
 * into a reused slab, and all boxes of one turn go out in one transport write;
 * past the transport's high-water mark, senders wait for it to drain. While
 * our StartTLS waits for its answer, boxes are held instead.
 *
 * Internal (not exported by the package), as everything under `src/internal/`.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { AmpBox } from "../AmpBox.js"
import type { ConnectionLost } from "../AmpError.js"
import type { ConnectionRecorder } from "../AmpMetrics.js"
import { BoxWriter, encodedLength } from "../BoxCodec.js"
import { Once } from "./once.js"
import type { FastPath } from "./transportFastPath.js"

/** Boxes held back while our StartTLS waits for its answer. */
class Held {
  readonly boxes: Array<AmpBox> = []
  /** Their encoded bytes: past `maxBatchBytes`, senders wait for the handshake as they would for the socket. */
  bytes = 0
  /** Completed when they are released (sent on TLS, or in plaintext when the StartTLS failed); made for the first waiter. */
  released: Once<void> | undefined = undefined
}

const flushNow = (sender: Sender): void => sender.flush()

/** Runs `sender.flush()` at the end of this turn (an argument, not a closure: nothing is made per connection). */
const flushLater: (sender: Sender) => void = typeof setImmediate === "function"
  ? (sender) => {
    setImmediate(flushNow, sender)
  }
  : (sender) => {
    setTimeout(flushNow, 0, sender)
  }

export class Sender {
  private readonly writer = new BoxWriter()
  /** A flush is due at the end of this turn. */
  private scheduled = false
  /** The transport said to wait (past its high-water mark) and has not drained since. */
  private blocked = false
  /** Our boxes held back while our StartTLS waits for its answer; undefined when none are. */
  private held: Held | undefined = undefined

  constructor(
    private readonly fast: FastPath,
    private readonly maxBatchBytes: number,
    readonly trace: ((direction: "received" | "sent", box: AmpBox) => void) | undefined,
    readonly metrics: ConnectionRecorder | undefined
  ) {}

  /**
   * Queues `box` (or holds it during our StartTLS); never waits. The caller has
   * checked that the connection may send; throws the encoder's refusals.
   */
  send(box: AmpBox): void {
    const held = this.held
    if (held !== undefined) {
      held.bytes += encodedLength(box)
      held.boxes.push(box)
    } else {
      this.enqueue(box)
    }
    // Traced once it is queued for the socket: a box refused above (too long) was never sent.
    if (this.trace !== undefined) this.trace("sent", box)
  }

  /**
   * Writes what is queued. Everything handed to `send` is written, even once the end is known:
   * a close we start writes what was sent first (Twisted's `loseConnection`); a transport whose
   * peer has gone drops the bytes itself.
   */
  flush(): void {
    this.scheduled = false
    const writer = this.writer
    if (writer.size === 0) return
    this.metrics?.sent(writer.size)
    const chunks = writer.take()
    const fast = this.fast
    const ok = chunks.length === 1
      ? fast.offer(chunks[0]!)
      : fast.offerv !== undefined
      ? fast.offerv(chunks)
      : chunks.reduce((ok, c) => fast.offer(c) && ok, true)
    if (!ok) this.blocked = true
  }

  private enqueue(box: AmpBox): void {
    this.writer.add(box)
    // A producer that never yields would otherwise pile a whole turn's boxes up here:
    // past the batch limit, write now, so `blocked` (and with it `sendBox`) holds it back.
    if (this.writer.size >= this.maxBatchBytes) return this.flush()
    if (!this.scheduled) {
      this.scheduled = true
      flushLater(this)
    }
  }

  private heldFull(): boolean {
    return this.held !== undefined && this.held.bytes >= this.maxBatchBytes
  }

  /** Whether a sender should wait ({@link writable}) before sending more. */
  isBlocked(): boolean {
    return this.blocked || this.heldFull()
  }

  /** Completes when a sender may go on: the transport has drained and the held boxes are under the mark. */
  writable(): Effect.Effect<void, ConnectionLost> {
    if (this.heldFull()) {
      const released = (this.held!.released ??= new Once())
      return Effect.zipRight(released.await, Effect.suspend(() => this.writable()))
    }
    if (!this.blocked) return Effect.void
    return Effect.map(this.fast.writable, () => {
      this.blocked = false
    })
  }

  /** Whether boxes are being held (our StartTLS is pending). */
  get holding(): boolean {
    return this.held !== undefined
  }

  /** Holds every box sent from now on, until {@link release}. */
  hold(): void {
    this.held = new Held()
  }

  /** Ends the hold: the held boxes are queued when `send` is true (else dropped), and their waiters go on. */
  release(send: boolean): void {
    const held = this.held
    this.held = undefined
    if (held === undefined) return
    if (send) for (const box of held.boxes) this.enqueue(box)
    held.released?.done(Exit.void)
  }
}
