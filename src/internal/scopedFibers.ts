/**
 * Fibers forked from a runtime and interrupted when a scope closes:
 * `FiberSet.makeRuntime`'s work, with the set made at the first fiber (a
 * connection whose answers all take the fast path never needs one).
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Runtime from "effect/Runtime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Scope from "effect/Scope"

export interface ScopedFibers {
  /** Forks `effect`; once the scope has closed, the fiber is interrupted at once. */
  readonly run: (effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void, never>
}

/**
 * The caller's own runtime (no copy of its fiber refs is made per
 * connection), made interruptible even when the caller runs in an acquire or
 * a layer: closing the scope must interrupt what was forked.
 */
export const make: Effect.Effect<ScopedFibers, never, Scope.Scope> = Effect.gen(function*() {
  const runtime = Runtime.enableRuntimeFlag(yield* Effect.runtime<never>(), RuntimeFlags.Interruption)
  let forkWith: ((effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void, never>) | undefined
  let forked: Set<Fiber.RuntimeFiber<void, never>> | undefined
  let closed = false
  yield* Scope.addFinalizer(
    yield* Effect.scope,
    Effect.suspend(() => {
      closed = true
      return forked === undefined ? Effect.void : Fiber.interruptAll(Array.from(forked))
    })
  )
  return {
    run: (effect) => {
      const fiber = (forkWith ??= Runtime.runFork(runtime))(effect)
      if (closed) {
        fiber.unsafeInterruptAsFork(FiberId.none)
        return fiber
      }
      const set = (forked ??= new Set())
      set.add(fiber)
      fiber.addObserver(() => set.delete(fiber))
      return fiber
    }
  }
})
