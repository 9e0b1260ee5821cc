/**
 * Chunks read from a Node stream, waiting for their one consumer: the
 * socket is paused while too much waits (Twisted's `pauseProducing`) and
 * resumed when the consumer takes them.
 *
 * Internal: not exported by the package. (Not tagged internal for tsc:
 * `stripInternal` would drop this file's first import from its .d.ts.)
 */
import type { Readable } from "node:stream"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"

type Take<E> = Effect.Effect<ReadonlyArray<Uint8Array> | undefined, E>
type Resume<E> = (take: Take<E>) => void

/** Told when the consumer takes the end of input (clean or not). */
export interface EndListener {
  readerEnded(): void
}

/** What was read and not yet taken, for one consumer (see the module's comment). */
export class Inbox<E> {
  private items: Array<Uint8Array> = []
  private bytes = 0
  private exit: Exit.Exit<void, E> | undefined = undefined
  /**
   * Who waits: one consumer, itself (the usual case: an array's first push
   * allocates room for 16), or several in an array.
   */
  private waiting: Resume<E> | Array<Resume<E>> | undefined = undefined
  private pausedByUs = false
  /** Once closing: drop what does not fit rather than pause (the peer's FIN must get through). */
  private dropping = false
  private taking: Take<E> | undefined = undefined
  /** The stream to pause; `undefined` while nothing feeds the inbox. */
  source: Readable | undefined = undefined

  constructor(
    private readonly maxChunks: number,
    private readonly maxBytes: number,
    private readonly onEnd: EndListener | undefined = undefined
  ) {}

  get exitValue(): Exit.Exit<void, E> | undefined {
    return this.exit
  }

  /** Whether the source is paused because the inbox is full. */
  get isPaused(): boolean {
    return this.pausedByUs
  }

  get size(): { readonly chunks: number; readonly bytes: number } {
    return { chunks: this.items.length, bytes: this.bytes }
  }

  private full(): boolean {
    return this.items.length > this.maxChunks || this.bytes > this.maxBytes
  }

  offer(chunk: Uint8Array): void {
    if (this.exit !== undefined) return
    if (this.dropping && this.full()) return
    this.items.push(chunk)
    this.bytes += chunk.length
    if (!this.pausedByUs && !this.dropping && this.source !== undefined && this.full()) {
      this.pausedByUs = true
      this.source.pause()
    }
    this.wake()
  }

  finish(exit: Exit.Exit<void, E>): void {
    if (this.exit !== undefined) return
    this.exit = exit
    this.wake()
  }

  /** Forgets a clean end nobody has seen yet: the bytes before it go to TLS, and so must the end. */
  reopen(): void {
    if (this.exit !== undefined && Exit.isSuccess(this.exit)) this.exit = undefined
  }

  /** Everything waiting, at once; resumes the source. */
  takeNow(): Array<Uint8Array> {
    const out = this.items
    this.items = []
    this.bytes = 0
    this.unpause()
    return out
  }

  /** Stops controlling the source (it is handed elsewhere). */
  release(): void {
    this.source = undefined
    this.pausedByUs = false
  }

  /** From now on, drop what does not fit instead of pausing. */
  drain(): void {
    this.dropping = true
    this.unpause()
  }

  private unpause(): void {
    if (this.pausedByUs) {
      this.pausedByUs = false
      this.source?.resume()
    }
  }

  private wake(): void {
    const waiting = this.waiting
    if (waiting === undefined) return
    this.waiting = undefined
    if (typeof waiting === "function") waiting(this.take)
    else for (const resume of waiting) resume(this.take)
  }

  private wait(resume: Resume<E>): void {
    const waiting = this.waiting
    if (waiting === undefined) this.waiting = resume
    else if (typeof waiting === "function") this.waiting = [waiting, resume]
    else waiting.push(resume)
  }

  /** Every waiting chunk (at least one), or `undefined` at a clean end. Made on first use. */
  get take(): Take<E> {
    return (this.taking ??= Effect.suspend(() => this.takeOrWait()))
  }

  private takeOrWait(): Take<E> {
    if (this.items.length > 0) return Effect.succeed(this.takeNow())
    if (this.exit !== undefined) {
      this.onEnd?.readerEnded()
      return Exit.isSuccess(this.exit) ? Effect.succeed(undefined) : Effect.failCause(this.exit.cause)
    }
    // No canceler: Effect's interruption hook costs more than a read. A consumer that
    // gives up leaves its waiter behind until the next wake, which resumes nothing.
    return Effect.async<ReadonlyArray<Uint8Array> | undefined, E>((resume) => this.wait(resume))
  }

  stream(): Stream.Stream<Uint8Array, E> {
    return Stream.repeatEffectChunkOption(
      Effect.matchEffect(this.take, {
        onFailure: (e) => Effect.fail(Option.some(e)),
        onSuccess: (chunks) =>
          chunks === undefined ? Effect.fail(Option.none()) : Effect.succeed(Chunk.unsafeFromArray(chunks as Array<Uint8Array>))
      })
    )
  }
}
