/**
 * Internal (not exported by the package): the responders a dispatcher runs
 * in fibers of their own. Made at a connection's first such responder: most
 * answers take the reader's fast path and never need one.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import { CallTable } from "./callTable.js"
import type * as Command from "../Command.js"
import { Once } from "./once.js"

/** A responder running in a fiber, with the tag it must answer (none for `requiresAnswer: false`). */
export class Running {
  /** Set when a drain gave up on it and answered for it: its own outcome is dropped. */
  abandoned = false
  fiber: Fiber.RuntimeFiber<void, never> | undefined = undefined
  constructor(readonly command: Command.Any, readonly ask: Uint8Array | undefined) {}
}

/**
 * The running responders, by a number of their own (a slot table: see
 * CallTable). Its size is what `maxConcurrentCommands` caps. A plain counter
 * and wake-up list, not Effect's Semaphore: taking a permit would cost an
 * Effect step per box on the reader's fast path, where most answers need no
 * fiber at all.
 */
export class RunningResponders {
  private readonly table = new CallTable<Running>()
  private lastId = 0
  /** Readers waiting for a free slot. */
  private waiters: Array<() => void> = []
  private slotFreeEffect: Effect.Effect<void> | undefined = undefined
  /** Completes once none runs; made by {@link idle}. */
  private idleOnce: Once<void> | undefined = undefined

  constructor(private readonly max: number) {}

  get size(): number {
    return this.table.size
  }

  /** Whether one more may start. */
  get hasRoom(): boolean {
    return this.table.size < this.max
  }

  /** Completes once one more may start. */
  get slotFree(): Effect.Effect<void> {
    return this.slotFreeEffect ??= Effect.async<void>((resume) => {
      if (this.hasRoom) return resume(Effect.void)
      this.waiters.push(() => resume(Effect.void))
    })
  }

  /** Completes once none runs. */
  get idle(): Effect.Effect<void> {
    if (this.table.size === 0) return Effect.void
    return (this.idleOnce ??= new Once<void>()).await
  }

  /** Adds `r`; returns the number that {@link finished} takes. */
  add(r: Running): number {
    const id = ++this.lastId
    this.table.set(id, r)
    return id
  }

  /** Removes `id`, and wakes whoever waits for a slot or for none to run. */
  finished(id: number): void {
    this.table.take(id)
    if (this.waiters.length > 0) {
      const ws = this.waiters
      this.waiters = []
      for (const w of ws) w()
    }
    const idle = this.idleOnce
    if (idle !== undefined && this.table.size === 0) {
      this.idleOnce = undefined
      idle.done(Exit.void)
    }
  }

  /** Every running responder. */
  *all(): IterableIterator<Running> {
    for (const [, r] of this.table.entries()) yield r
  }
}
