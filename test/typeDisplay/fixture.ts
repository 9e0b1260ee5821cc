// Compiled by TypeDisplay.test.ts, which prints the types of the `const`s below as an editor's hover would.
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { Amp } from "../../src/Amp.js"
import type { AmpPool } from "../../src/AmpPool.js"
import * as Argument from "../../src/Argument.js"
import * as Command from "../../src/Command.js"
import type { Reconnecting } from "../../src/Reconnecting.js"

class ZeroDivision extends Data.TaggedError("ZeroDivision")<{ readonly description: string }> {}

const Divide = Command.make("Divide", {
  arguments: { numerator: Argument.Integer, denominator: Argument.Integer },
  response: { result: Argument.Float },
  errors: { ZERO_DIVISION: ZeroDivision }
})

const Lookup = Command.make("Lookup", {
  arguments: { "user-name": Argument.Unicode, limit: Argument.optional(Argument.IntegerNumber) },
  response: { points: Argument.AmpList({ x: Argument.IntegerNumber, label: Argument.optional(Argument.Unicode) }) }
})

export const onAmp = Effect.flatMap(Amp, (amp) => amp.callRemote(Divide, { numerator: 1n, denominator: 2n }))
export const onPool = (pool: AmpPool) => pool.callRemote(Divide, { numerator: 1n, denominator: 2n })
export const onReconnecting = (r: Reconnecting) => r.callRemote(Divide, { numerator: 1n, denominator: 2n })
export const lookup = Effect.flatMap(Amp, (amp) => amp.callRemote(Lookup, { user_name: "a" }))
export const lookupArguments = (args: Command.Arguments<typeof Lookup>) => args
