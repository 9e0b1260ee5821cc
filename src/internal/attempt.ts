/**
 * Runs code that throws its refusals: a throw that `is` recognises becomes a
 * typed failure, anything else (a bug) stays a defect. What `Effect.try` with
 * `catch: (e) => e as E` would get wrong: that cast types every throw.
 *
 * Internal (not exported by the package), as everything under `src/internal/`.
 */
import * as Effect from "effect/Effect"

export const attempt = <A, E>(thunk: () => A, is: (u: unknown) => u is E): Effect.Effect<A, E> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(thunk())
    } catch (e) {
      return is(e) ? Effect.fail(e) : Effect.die(e)
    }
  })
