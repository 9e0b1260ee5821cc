/**
 * A result set once and awaited by any number of fibers: `Deferred`'s job,
 * for the cells every connection holds (its end, its close, its dispatcher)
 * and for the calls that wait for a pool's worker.
 *
 * Why not `Deferred`: Effect 3 builds each one by spreading a dozen keys
 * into a fresh object literal, and V8 gives every such object a hidden class
 * of its own. With its state, a `Deferred` costs about 700 bytes; three per
 * connection were ~2 KB of an idle connection. Instances of this class share
 * one shape, and the joiner list exists only while someone waits.
 *
 * Internal (not exported by the package), as everything under `src/internal/`.
 */
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"

export class Once<A, E = never> {
  private result: Exit.Exit<A, E> | undefined = undefined
  private joiners: Array<(exit: Exit.Exit<A, E>) => void> | undefined = undefined

  /** True once `done` has been called. */
  get isDone(): boolean {
    return this.result !== undefined
  }

  /** The result if it is set. */
  get exit(): Exit.Exit<A, E> | undefined {
    return this.result
  }

  /** Sets the result and wakes every waiter; false (and nothing changes) if it was already set. */
  done(exit: Exit.Exit<A, E>): boolean {
    if (this.result !== undefined) return false
    this.result = exit
    const joiners = this.joiners
    this.joiners = undefined
    if (joiners !== undefined) for (const resume of joiners) resume(exit)
    return true
  }

  /**
   * The result, waiting for it if needed; an interrupted waiter leaves the
   * list. A getter, so that a cell nobody awaits holds no effect.
   */
  get await(): Effect.Effect<A, E> {
    return Effect.suspend(() =>
      this.result ??
        Effect.async<A, E>((resume) => {
          const joiners = (this.joiners ??= [])
          joiners.push(resume)
          return Effect.sync(() => {
            const i = this.joiners?.indexOf(resume) ?? -1
            if (i >= 0) this.joiners!.splice(i, 1)
          })
        })
    )
  }
}
