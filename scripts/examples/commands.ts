/**
 * The example's command, shared by its server and its client: one
 * definition gives both sides their types and the wire format.
 */
import * as Data from "effect/Data"
import { Argument, Command } from "../../src/index.js"

/** What `Divide` fails with; on the wire, the code `ZERO_DIVISION`. */
export class ZeroDivision extends Data.TaggedError("ZeroDivision")<{ readonly description: string }> {}

/** `Divide(numerator, denominator) -> result`. */
export const Divide = Command.make("Divide", {
  arguments: { numerator: Argument.Integer, denominator: Argument.Integer },
  response: { result: Argument.Float },
  errors: { ZERO_DIVISION: ZeroDivision }
})
