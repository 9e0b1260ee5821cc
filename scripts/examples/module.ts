/**
 * Example: the example's command as a module for `effect-amp serve --module`
 * (no main needed), and for `effect-amp call --module` (checked arguments,
 * typed answers).
 *
 *   npx tsx src/cli/main.ts serve --port 7711 --module scripts/examples/module.ts
 *   npx tsx src/cli/main.ts call --module scripts/examples/module.ts tcp:127.0.0.1:7711 Divide numerator:=1 denominator:=8
 */
import * as Effect from "effect/Effect"
import { Responders } from "../../src/index.js"
import { Divide, ZeroDivision } from "./commands.js"

export { Divide }

export const responders = [
  Responders.respond(Divide, ({ denominator, numerator }) =>
    denominator === 0n
      ? Effect.fail(new ZeroDivision({ description: "float division by zero" }))
      : Effect.succeed({ result: Number(numerator) / Number(denominator) }))
]
