/**
 * effect-amp's side of the benchmark: the same Sum over the library's
 * public API (Command, Responders, NodeAmp), compiled, no tracer installed.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { Divide, Echo, Sum } from "../../../src/cli/Demo.js"
import * as Demo from "../../../src/cli/Demo.js"
import type { Amp } from "../../../src/Amp.js"
import * as Responders from "../../../src/Responders.js"
import * as NodeAmp from "../../../src/node/NodeAmp.js"

void Divide
void Echo

const registry = Responders.layer(...Demo.responders)

/** Serves Sum; returns the port and a stop function. */
export const serve = async (port: number) => {
  const scope = Effect.runSync(Scope.make())
  const server = await Effect.runPromise(
    NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port }).pipe(Effect.provide(registry), Scope.extend(scope))
  )
  return {
    port: (server.address as { port: number }).port,
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** A client; `run(inflight, calls, latencies?)` drives Sum calls from `inflight` fibers. */
export const connect = async (port: number) => {
  const scope = Effect.runSync(Scope.make())
  const amp: Amp = await Effect.runPromise(
    NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port }).pipe(Effect.provide(Responders.none), Scope.extend(scope))
  )
  const run = (inflight: number, calls: number, latencies?: Array<number>) => {
    let next = 0
    const worker = Effect.gen(function*() {
      while (next < calls) {
        next++
        const t0 = latencies ? performance.now() : 0
        yield* amp.callRemote(Sum, { a: 13n, b: 81n })
        if (latencies) latencies.push(performance.now() - t0)
      }
    })
    return Effect.runPromise(Effect.all(Array.from({ length: inflight }, () => worker), { concurrency: "unbounded", discard: true }))
  }
  return { run, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}
