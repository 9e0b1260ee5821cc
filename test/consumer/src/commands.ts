// The demo commands `effect-amp serve` answers, declared as any user of the
// package would declare their own.
import { Argument, Command } from "effect-amp"
import * as Data from "effect/Data"

export class ZeroDivision extends Data.TaggedError("ZeroDivision")<{ readonly description: string }> {}

export const Sum = Command.make("Sum", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer }
})

export const Divide = Command.make("Divide", {
  arguments: { numerator: Argument.Integer, denominator: Argument.Integer },
  response: { result: Argument.Float },
  errors: { ZERO_DIVISION: ZeroDivision }
})

export const Echo = Command.make("Echo", {
  arguments: { text: Argument.Unicode },
  response: { text: Argument.Unicode }
})
