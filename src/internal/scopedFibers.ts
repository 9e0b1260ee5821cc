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
  /** Forks `effect`; once the scope has closed, the fiber is interrupted at once. Call it as a method. */
  run(effect: Effect.Effect<void>): Fiber.RuntimeFiber<void, never>
}

class Forked implements ScopedFibers {
  private forkWith: ((effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void, never>) | undefined
  private forked: Set<Fiber.RuntimeFiber<void, never>> | undefined
  private closed = false
  /** Run when the scope closes. */
  readonly close: Effect.Effect<void> = Effect.suspend(() => {
    this.closed = true
    return this.forked === undefined ? Effect.void : Fiber.interruptAll(Array.from(this.forked))
  })

  constructor(private readonly runtime: Runtime.Runtime<never>) {}

  run(effect: Effect.Effect<void>): Fiber.RuntimeFiber<void, never> {
    const fiber = (this.forkWith ??= Runtime.runFork(this.runtime))(effect)
    if (this.closed) {
      fiber.unsafeInterruptAsFork(FiberId.none)
      return fiber
    }
    const set = (this.forked ??= new Set())
    set.add(fiber)
    fiber.addObserver(() => set.delete(fiber))
    return fiber
  }
}

/**
 * The caller's own runtime (no copy of its fiber refs is made per
 * connection), made interruptible even when the caller runs in an acquire or
 * a layer: closing the scope must interrupt what was forked. A class, not a
 * closure per connection: every connection makes one.
 */
export const make: Effect.Effect<ScopedFibers, never, Scope.Scope> = Effect.gen(function*() {
  const fibers = new Forked(Runtime.enableRuntimeFlag(yield* Effect.runtime<never>(), RuntimeFlags.Interruption))
  yield* Scope.addFinalizer(yield* Effect.scope, fibers.close)
  return fibers
})
