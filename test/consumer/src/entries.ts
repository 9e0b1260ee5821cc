// The entry points kept apart from `effect-amp` for what they load:
// effect-amp/schema (effect/Schema) and effect-amp/platform (@effect/platform/Socket).
import { Argument } from "effect-amp"
import { PlatformSocket } from "effect-amp/platform"
import { ArgumentSchema } from "effect-amp/schema"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

const Msg = Schema.Struct({ n: ArgumentSchema.schema(Argument.IntegerNumber) })
const decoded = Effect.runSync(Schema.decode(Msg)({ n: new TextEncoder().encode("7") }))
const platform = typeof PlatformSocket.amp === "function" && typeof PlatformSocket.serve === "function"
console.log(JSON.stringify({ n: decoded.n, platform }))
