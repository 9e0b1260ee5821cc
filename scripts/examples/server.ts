/**
 * Example: an AMP server answering the example's command.
 *
 *   npx tsx scripts/examples/server.ts [PORT]     (prints "listening on tcp:127.0.0.1:PORT")
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { Responders } from "../../src/index.js"
import { NodeAmp } from "../../src/node/index.js"
import { Divide, ZeroDivision } from "./commands.js"

const responders = Responders.layer(
  Responders.respond(Divide, ({ denominator, numerator }) =>
    denominator === 0n
      ? Effect.fail(new ZeroDivision({ description: "float division by zero" }))
      : Effect.succeed({ result: Number(numerator) / Number(denominator) }))
)

const port = Number(process.argv[2] ?? 7711)
Effect.gen(function*() {
  const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port })
  yield* Console.log(`listening on ${server.addressText}`)
  yield* Effect.never
}).pipe(Effect.scoped, Effect.provide(responders), NodeRuntime.runMain)
