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

/** `Divide` by zero, answered with the wire code `ZERO_DIVISION`. */
export class ZeroDivision extends Data.TaggedError("ZeroDivision")<{ readonly description: string }> {}

/** `Sum(a: Integer, b: Integer) -> total: Integer` */
export const Sum = Command.make("Sum", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer }
})

/** `Divide(numerator: Integer, denominator: Integer) -> result: Float`, `ZERO_DIVISION` on a zero denominator. */
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
  Responders.respond(Divide, ({ denominator, numerator }) =>
    denominator === 0n
      ? Effect.fail(new ZeroDivision({ description: "float division by zero" }))
      : Effect.succeed({ result: Number(numerator) / Number(denominator) })),
  Responders.respond(Echo, ({ text }) => Effect.succeed({ text }))
] as const
