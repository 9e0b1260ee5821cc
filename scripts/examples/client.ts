/**
 * Example: call a server (the example server, or `npm start`'s demo server).
 *
 *   npx tsx scripts/examples/client.ts [PORT]
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { Amp } from "../../src/index.js"
import { NodeAmp } from "../../src/node/index.js"
import { Divide } from "./commands.js"

const port = Number(process.argv[2] ?? 7711)

const program = Effect.gen(function*() {
  const amp = yield* Amp
  const { result } = yield* amp.callRemote(Divide, { numerator: 1n, denominator: 8n })
  yield* Console.log(`1 / 8 = ${result}`)
  // The command's own error is typed: catch it by tag.
  const message = yield* amp.callRemote(Divide, { numerator: 1n, denominator: 0n }).pipe(
    Effect.map(({ result }) => `1 / 0 = ${result}`),
    Effect.catchTag("ZeroDivision", (e) => Effect.succeed(`1 / 0 failed: ${e.description}`))
  )
  yield* Console.log(message)
})

program.pipe(
  Effect.provide(NodeAmp.layerConnect({ _tag: "tcp", host: "127.0.0.1", port })),
  NodeRuntime.runMain
)
