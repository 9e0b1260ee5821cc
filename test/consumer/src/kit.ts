// The test kit from `effect-amp/test`, outside any test runner: a call over
// the in-memory pair, and a call timeout under TestClock.
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import { Amp, Responders } from "effect-amp"
import { AmpTest } from "effect-amp/test"
import { Echo, Sum } from "./commands.js"

const server = Responders.layer(
  Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b })),
  Responders.respond(Echo, ({ text }) => Effect.as(Effect.sleep("1 hour"), { text }))
)

const inMemory = Effect.gen(function*() {
  const amp = yield* Amp
  return (yield* amp.callRemote(Sum, { a: 1n, b: 2n })).total
}).pipe(Effect.provide(AmpTest.layerClient(server, { chunking: { _tag: "Fixed", size: 1 } })))

const underTestClock = Effect.gen(function*() {
  const { client } = yield* AmpTest.pair(server)
  const call = yield* Effect.fork(client.callRemote(Echo, { text: "late" }, { timeout: "10 seconds" }))
  yield* TestClock.adjust("10 seconds")
  const error = yield* Effect.flip(Fiber.join(call))
  return error._tag
}).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

const result = await Effect.runPromise(Effect.all({ total: inMemory, timeout: underTestClock }))
console.log(JSON.stringify({ total: result.total.toString(), timeout: result.timeout }))
if (result.total !== 3n || result.timeout !== "CallTimeout") process.exit(1)
