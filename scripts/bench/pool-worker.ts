/**
 * The effect-amp worker of the pool benchmark (pool.ts): serves `Sum` and
 * `Burn` (poolCommands.ts) to its parent over fds 3 (read) and 4 (write),
 * as ampoule starts its children; exits once the parent closes fd 3.
 */
import * as Effect from "effect/Effect"
import * as Responders from "../../src/Responders.js"
import * as Child from "../../src/node/Child.js"
import { Burn, burn, Sum } from "./poolCommands.js"

const responders = Responders.layer(
  Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b })),
  Responders.respond(Burn, ({ n }) => Effect.sync(() => ({ result: BigInt(burn(Number(n))) })))
)

Child.serveParent().pipe(Effect.provide(responders), Effect.scoped, Effect.runPromise).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
