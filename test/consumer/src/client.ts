// A pure client (it answers nothing) against `effect-amp serve`:
// `node out/client.js PORT`. Prints one line of JSON; exits 1 on any surprise.
import * as Effect from "effect/Effect"
import { Amp } from "effect-amp"
import { NodeAmp } from "effect-amp/node"
import { Divide, Echo, Sum } from "./commands.js"

const port = Number(process.argv[2])

const program = Effect.gen(function*() {
  const amp = yield* Amp
  const sum = yield* amp.callRemote(Sum, { a: 13n, b: 81n })
  const zero = yield* Effect.flip(amp.callRemote(Divide, { numerator: 1n, denominator: 0n }))
  const echo = yield* amp.callRemote(Echo, { text: "héllo" })
  return { total: sum.total.toString(), error: zero._tag, echo: echo.text }
})

const result = await Effect.runPromise(
  program.pipe(
    // A pure client needs no Responders.
    Effect.provide(NodeAmp.layerConnect({ _tag: "tcp", host: "127.0.0.1", port }, { timeout: 5000 }))
  )
)
console.log(JSON.stringify(result))
const expected = { total: "94", error: "ZeroDivision", echo: "héllo" }
if (JSON.stringify(result) !== JSON.stringify(expected)) {
  console.error(`expected ${JSON.stringify(expected)}`)
  process.exit(1)
}
