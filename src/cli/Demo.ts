/**
 * The demo commands `effect-amp serve` answers: the same as Twisted's
 * documented example server (`Sum`, `Divide`), plus `Echo`.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Argument from "../Argument.js"
import * as Command from "../Command.js"
import * as Responders from "../Responders.js"
import { OVERFLOW_MESSAGE, trueDivide } from "./trueDivide.js"

/** `Divide` by zero, answered with the wire code `ZERO_DIVISION`. */
export class ZeroDivision extends Data.TaggedError("ZeroDivision")<{ readonly description: string }> {}

/**
 * A `Divide` quotient too large for a float (Python's `OverflowError`). Not
 * one of Divide's errors, so the caller gets `UNKNOWN` and the connection
 * closes, as a Twisted server does for the same call.
 */
export class DivisionOverflow extends Data.TaggedError("DivisionOverflow")<{
  readonly numerator: bigint
  readonly denominator: bigint
}> {
  override get message(): string {
    const digits = (x: bigint) => `${(x < 0n ? -x : x).toString().length}-digit`
    return `Divide: ${OVERFLOW_MESSAGE} (a ${digits(this.numerator)} numerator, a ${digits(this.denominator)} denominator)`
  }
}

/** `Sum(a: Integer, b: Integer) -> total: Integer` */
export const Sum = Command.make("Sum", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer }
})

/**
 * `Divide(numerator: Integer, denominator: Integer) -> result: Float`, `ZERO_DIVISION` on a zero denominator.
 * The result is Python's `numerator / denominator`: the exact quotient, correctly rounded.
 */
export const Divide = Command.make("Divide", {
  arguments: { numerator: Argument.Integer, denominator: Argument.Integer },
  response: { result: Argument.Float },
  errors: { ZERO_DIVISION: ZeroDivision }
})

/** `Echo(text: Unicode) -> text: Unicode` */
export const Echo = Command.make("Echo", {
  arguments: { text: Argument.Unicode },
  response: { text: Argument.Unicode }
})

/** The demo responders. */
export const responders = [
  Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b })),
  Responders.respond(Divide, ({ denominator, numerator }) => {
    if (denominator === 0n) return Effect.fail(new ZeroDivision({ description: "float division by zero" }))
    const result = trueDivide(numerator, denominator)
    // Not one of Divide's errors: a defect, answered UNKNOWN and closed, as Twisted treats an OverflowError.
    return result === "overflow" ? Effect.die(new DivisionOverflow({ numerator, denominator })) : Effect.succeed({ result })
  }),
  Responders.respond(Echo, ({ text }) => Effect.succeed({ text }))
] as const
