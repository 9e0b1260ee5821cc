import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { Once } from "../../src/internal/once.js"

describe("Once", () => {
  it.effect("wakes every waiter with the first result; a later one changes nothing", () =>
    Effect.gen(function*() {
      const once = new Once<number, string>()
      const a = yield* Effect.fork(once.await)
      const b = yield* Effect.fork(Effect.either(once.await))
      yield* Effect.yieldNow()
      expect(once.isDone).toBe(false)
      expect(once.done(Exit.succeed(1))).toBe(true)
      expect(once.done(Exit.fail("late"))).toBe(false)
      expect(yield* Fiber.join(a)).toBe(1)
      expect(yield* Fiber.join(b)).toStrictEqual(Either.right(1))
      expect(yield* once.await).toBe(1)
    }))

  it.effect("a failure reaches the waiters as a failure", () =>
    Effect.gen(function*() {
      const once = new Once<number, string>()
      const waiter = yield* Effect.fork(Effect.flip(once.await))
      yield* Effect.yieldNow()
      once.done(Exit.fail("gone"))
      expect(yield* Fiber.join(waiter)).toBe("gone")
    }))

  it.effect("an interrupted waiter leaves the list and is not resumed", () =>
    Effect.gen(function*() {
      const once = new Once<number>()
      let resumed = 0
      const waiter = yield* Effect.fork(Effect.tap(once.await, () => Effect.sync(() => resumed++)))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(waiter)
      expect((once as unknown as { joiners?: Array<unknown> }).joiners).toEqual([])
      once.done(Exit.succeed(2))
      yield* Effect.yieldNow()
      expect(resumed).toBe(0)
    }))
})
