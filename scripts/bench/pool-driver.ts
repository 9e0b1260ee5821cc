/**
 * One measurement of the pool benchmark (pool.ts), in a fresh process:
 *
 *   pool-driver.js SPEC        SPEC: the JSON of a `DriverSpec`
 *
 * Starts the worker(s) (before any timing: a direct connection to one child,
 * or a `ProcessPool` whose `min` workers are all up), checks one answer of
 * each command, warms up, then drives `inflight` calls at a time (one fiber
 * each, each call after the last one's answer) for `runs` timed runs, a full
 * GC before each. The warm-up is `warmup` seconds of Sum calls 100 in flight
 * (so the JIT of both sides has seen thousands of calls: at one call in
 * flight a cold pair manages a few hundred a second here, and takes seconds
 * to settle), then `warmup` seconds of the measured load. Prints {"callsPerSec": [...], "cpuUsPerCall": [...]}: calls
 * per second of each run, and this process's CPU time (user + system) per
 * call of each run. Closes the pool or connection (the workers exit) before
 * it exits.
 */
import * as Effect from "effect/Effect"
import * as Child from "../../src/node/Child.js"
import * as NodeAmp from "../../src/node/NodeAmp.js"
import * as ProcessPool from "../../src/node/ProcessPool.js"
import { gc } from "./common.js"
import type { Timing } from "./contenders.js"
import { Burn, burn, Sum } from "./poolCommands.js"

export interface DriverSpec {
  readonly command: string
  readonly args: ReadonlyArray<string>
  /** One connection to one child, or a ProcessPool of `size` children (min = max = size). */
  readonly target: { readonly _tag: "direct" } | { readonly _tag: "pool"; readonly size: number; readonly concurrency: number }
  /** `Sum(13, 81)`, or `Burn(burnN)`. */
  readonly load: "sum" | "burn"
  readonly burnN: number
  readonly inflight: number
  readonly timing: Timing
}

const spec = JSON.parse(process.argv[2] ?? "") as DriverSpec

const program = Effect.gen(function*() {
  const spawnOptions: Child.SpawnOptions = { stdout: "ignore" }
  let call: Effect.Effect<bigint, unknown>
  let sumCall: Effect.Effect<bigint, unknown>
  const sum = { a: 13n, b: 81n }
  const n = { n: BigInt(spec.burnN) }
  if (spec.target._tag === "direct") {
    const child = yield* Child.spawn(spec.command, spec.args, spawnOptions)
    const amp = yield* NodeAmp.over(child.transport)
    sumCall = Effect.map(amp.callRemote(Sum, sum), (r) => r.total)
    call = spec.load === "sum" ? sumCall : Effect.map(amp.callRemote(Burn, n), (r) => r.result)
  } else {
    const { concurrency, size } = spec.target
    const pool = yield* ProcessPool.make(spec.command, spec.args, { min: size, max: size, concurrency, spawn: spawnOptions })
    sumCall = Effect.map(pool.callRemote(Sum, sum), (r) => r.total)
    call = spec.load === "sum" ? sumCall : Effect.map(pool.callRemote(Burn, n), (r) => r.result)
  }
  const check = (what: string, got: bigint, expected: bigint) =>
    got === expected ? Effect.void : Effect.die(new Error(`${what}: answered ${got}, expected ${expected}`))
  yield* check("Sum(13, 81)", yield* sumCall, 94n)
  if (spec.load === "burn") yield* check(`Burn(${spec.burnN})`, yield* call, BigInt(burn(spec.burnN)))

  /** Calls done in `ms`, `inflight` at a time. */
  const runFor = (ms: number, inflight = spec.inflight, op = call) =>
    Effect.gen(function*() {
      const end = performance.now() + ms
      let done = 0
      const loop = Effect.gen(function*() {
        while (performance.now() < end) {
          yield* op
          done++
        }
      })
      yield* Effect.all(Array.from({ length: inflight }, () => loop), { concurrency: "unbounded", discard: true })
      return done
    })

  yield* runFor(spec.timing.warmup * 1000, 100, sumCall)
  yield* runFor(spec.timing.warmup * 1000)
  const callsPerSec: Array<number> = []
  const cpuUsPerCall: Array<number> = []
  for (let i = 0; i < spec.timing.runs; i++) {
    gc()
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    const calls = yield* runFor(spec.timing.seconds * 1000)
    const elapsed = (performance.now() - t0) / 1000
    const cpu = process.cpuUsage(cpu0)
    callsPerSec.push(calls / elapsed)
    cpuUsPerCall.push((cpu.user + cpu.system) / calls)
  }
  return { callsPerSec, cpuUsPerCall }
})

Effect.runPromise(Effect.scoped(program)).then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`)
    process.exit(0)
  },
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
