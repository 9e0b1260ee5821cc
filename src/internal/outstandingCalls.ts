/**
 * Internal (not exported by the package): our calls waiting for their
 * answers, for the dispatcher. Made at a connection's first call: a server's
 * connection that never calls back pays for no table.
 */
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import type * as Effect from "effect/Effect"
import type { AmpBox } from "../AmpBox.js"
import type { CallFailure } from "../Amp.js"
import type { ClientRecorder } from "../AmpMetrics.js"
import { CallTable } from "./callTable.js"
import type * as Command from "../Command.js"

/** A call waiting for its answer. */
export class Pending<A = AmpBox, E = never> {
  constructor(
    readonly command: Command.Any | undefined,
    readonly name: string,
    private readonly resumeCaller: (exit: Exit.Exit<A, CallFailure | E>) => void,
    /** Turns the answer into the result, on the reader's turn; may throw `MalformedAmpBox`. */
    private readonly decode: ((box: AmpBox) => A) | undefined,
    /** The fiber waiting, so that a sweep can tell a call nobody waits for any more. */
    readonly fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
  ) {}

  /** For StartTLS and switches: runs in the reader, at the box boundary. */
  atBoundary: ((box: AmpBox, ok: boolean) => Effect.Effect<void>) | undefined = undefined

  /** Completes the caller. */
  resume(exit: Exit.Exit<AmpBox, CallFailure | E>): void {
    if (exit._tag === "Failure") this.resumeCaller(exit as Exit.Exit<never, CallFailure | E>)
    else this.answered(exit.value)
  }

  /** Completes the caller with the answer `box`, decoded. */
  answered(box: AmpBox): void {
    const decode = this.decode
    if (decode === undefined) return this.resumeCaller(Exit.succeed(box as A))
    let value: A
    try {
      value = decode(box)
    } catch (e) {
      return this.resumeCaller(Exit.fail(e as CallFailure))
    }
    this.resumeCaller(Exit.succeed(value))
  }
}

/** The smallest size of the table at which a sweep runs. */
const SWEEP_MIN = 1024

/** The calls waiting for answers, by tag, and the tags issued so far. */
export class OutstandingCalls {
  // Each entry has its own result type.
  private readonly table = new CallTable<Pending<any, any>>()
  /** When the table reaches this size, {@link sweep} runs before the next call is added. */
  private sweepAt = SWEEP_MIN
  /** The last tag issued. */
  private counter = 0

  get size(): number {
    return this.table.size
  }

  /** Whether a call may be added under `limit`, after a sweep if one is due (`cm` counts what it forgets). */
  hasRoom(limit: number, cm: ClientRecorder | undefined): boolean {
    const size = this.table.size
    if (size >= this.sweepAt || size >= limit) {
      const forgotten = this.sweep()
      cm?.forgot(forgotten)
    }
    return this.table.size < limit
  }

  /** A fresh tag. */
  nextTag(): number {
    return ++this.counter
  }

  /** Whether `tag` was issued here (and so an answer for it missing from the table is late, not bogus). */
  issued(tag: number): boolean {
    return tag > 0 && tag <= this.counter
  }

  add<A, E>(tag: number, p: Pending<A, E>): void {
    this.table.set(tag, p)
  }

  /** Removes `tag`'s call and returns it, if it still waits. */
  take(tag: number): Pending<unknown, unknown> | undefined {
    return this.table.take(tag)
  }

  /** Fails every waiting call with `reason`: the connection has ended. */
  failAll(reason: CallFailure): void {
    for (const p of this.table.clear()) p.resume(Exit.fail(reason))
  }

  /**
   * Forgets calls nobody waits for any more; returns how many. A call without
   * a timeout does not register a canceler with its fiber (Effect's
   * interruption hook costs more than the rest of a call), so an interrupted
   * call leaves its entry behind. Every entry knows its fiber: an entry whose
   * fiber has finished, or whose fiber has since made a newer call (a fiber
   * waits for one call at a time), is stale. Run when the table doubles, the
   * sweep costs O(1) per call and keeps stale entries to at most half of it.
   */
  private sweep(): number {
    const table = this.table
    const before = table.size
    const newest = new Map<Fiber.RuntimeFiber<unknown, unknown>, number>()
    for (const [tag, p] of table.entries()) {
      const fiber = p.fiber
      if (fiber === undefined) continue
      if (fiber.unsafePoll() !== null) {
        table.take(tag)
        continue
      }
      // Tags grow with time and the table keeps insertion order: a later entry is a newer call.
      const older = newest.get(fiber)
      if (older !== undefined) table.take(older)
      newest.set(fiber, tag)
    }
    this.sweepAt = Math.max(SWEEP_MIN, table.size * 2)
    return before - table.size
  }
}
