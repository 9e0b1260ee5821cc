/**
 * The base of every effect-amp error: `Data.TaggedError` with a mark of our
 * own on the class's prototype, which `isAmpError` looks for.
 *
 * Internal (not exported by the package), as everything under `src/internal/`.
 */
import type * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import type * as Types from "effect/Types"

/**
 * Carried by every error of effect-amp (not by the error classes of your own
 * commands), so that `isAmpError` can tell ours from anything else.
 *
 * @since 0.1.0
 */
export const AmpErrorTypeId: unique symbol = Symbol.for("effect-amp/AmpError")
/** @since 0.1.0 */
export type AmpErrorTypeId = typeof AmpErrorTypeId

/** `Data.TaggedError`, marked with `AmpErrorTypeId`. */
export const AmpTaggedError = <Tag extends string>(tag: Tag): new<A extends Record<string, unknown> = {}>(
  args: Types.VoidIfEmpty<{ readonly [P in keyof A as P extends "_tag" ? never : P]: A[P] }>
) => Cause.YieldableError & { readonly _tag: Tag; readonly [AmpErrorTypeId]: AmpErrorTypeId } & Readonly<A> => {
  const base = Data.TaggedError(tag)
  // Each call makes a class of its own, so its prototype is ours to mark.
  Object.defineProperty(base.prototype, AmpErrorTypeId, { value: AmpErrorTypeId })
  return base as never
}
