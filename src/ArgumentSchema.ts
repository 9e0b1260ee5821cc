/**
 * An AMP argument type as an Effect `Schema` between the bytes of one wire
 * value and the value, for composing arguments with other schemas.
 *
 * Its own entry point (`effect-amp/schema`), not part of `Argument`: loading
 * `effect/Schema` costs about 4 MiB of heap and 12 MiB of RSS in every
 * process, and defining or calling a command needs none of it.
 *
 * @example
 * import { Schema } from "effect"
 * import { Argument } from "effect-amp"
 * import { ArgumentSchema } from "effect-amp/schema"
 *
 * const Msg = Schema.Struct({ n: ArgumentSchema.schema(Argument.IntegerNumber) })
 *
 * @since 0.1.0
 */
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type { Argument } from "./Argument.js"
import { describe } from "./internal/messages.js"

/**
 * `argument`'s wire conversions as a `Schema<A, Uint8Array>`: decoding runs
 * `fromWire`, encoding `toWire`, and the type side recognizes values with
 * `argument.is`. A refusal is a `ParseError` carrying the argument's message.
 *
 * @since 0.1.0
 */
export const schema = <A>(argument: Argument<A>): Schema.Schema<A, Uint8Array> => {
  const { fromWire, toWire, typeName } = argument
  return Schema.transformOrFail(
    Schema.Uint8ArrayFromSelf,
    Schema.declare(argument.is, { identifier: typeName }),
    {
      strict: true,
      decode: (bytes, _, ast) => {
        try {
          return ParseResult.succeed(fromWire(bytes))
        } catch (e) {
          return ParseResult.fail(new ParseResult.Type(ast, bytes, describe(e)))
        }
      },
      encode: (value, _, ast) => {
        try {
          return ParseResult.succeed(toWire(value))
        } catch (e) {
          return ParseResult.fail(new ParseResult.Type(ast, value, describe(e)))
        }
      }
    }
  ).annotations({ identifier: typeName })
}
