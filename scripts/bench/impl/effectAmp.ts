/**
 * effect-amp's adapter for the benchmark harness, over the library's public
 * API only: `AmpBox` + `BoxCodec` for the codec workloads; `Command.make`,
 * `Responders`, `NodeAmp.serve`/`connect` and `amp.callRemote` for the calls,
 * driven from fibers as a user would write them. No tracer is installed.
 *
 * `AMP_BENCH_METRICS=1` turns `AmpMetrics` on for the servers and clients made
 * here (to measure what metrics cost); unset, they are off, as by default.
 */
import { createHash } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as AmpBox from "../../../src/AmpBox.js"
import * as BoxCodec from "../../../src/BoxCodec.js"
import { budget, type CodecAdapter, type Drive, type LargeClient, type NodeAdapter, type Server, type SumClient } from "./types.js"

// ---------------------------------------------------------------------------
// codec
// ---------------------------------------------------------------------------

const codec: CodecAdapter = {
  encoder: (fields) => {
    const box = AmpBox.make(fields)
    // The write path's cost: a reused scratch buffer, as BoxWriter reuses its slab (no allocation per box).
    const encoder = new BoxCodec.BoxEncoder()
    return () => encoder.encode(box)
  },
  decoder: () => {
    const decoder = new BoxCodec.BoxDecoder()
    return (chunk) => {
      decoder.push(chunk)
      let n = 0
      while (decoder.next() !== undefined) n++
      return n
    }
  }
}

// ---------------------------------------------------------------------------
// RPC
// ---------------------------------------------------------------------------

/** The library's RPC modules and the two benchmark commands, loaded once. */
const rpc = (() => {
  const load = async () => {
    const { AmpMetrics, Argument, Command, Responders } = await import("../../../src/index.js")
    const { NodeAmp } = await import("../../../src/node/index.js")
    const Sum = Command.make("Sum", {
      arguments: { a: Argument.Integer, b: Argument.Integer },
      response: { total: Argument.Integer }
    })
    const Slow = Command.make("Slow", { arguments: { blob: Argument.String }, requiresAnswer: false })
    const Echo = Command.make("Echo", { arguments: { text: Argument.Unicode }, response: { text: Argument.Unicode } })
    const BigEcho = Command.make("BigEcho", { arguments: { data: Argument.BigString }, response: { data: Argument.BigString } })
    const BigCheck = Command.make("BigCheck", {
      arguments: { data: Argument.BigString },
      response: { data: Argument.BigString, digest: Argument.Unicode }
    })
    return { AmpMetrics, Responders, NodeAmp, Sum, Slow, Echo, BigEcho, BigCheck }
  }
  let loaded: ReturnType<typeof load> | undefined
  return () => (loaded ??= load())
})()

const metricsOn = process.env["AMP_BENCH_METRICS"] === "1"

/** Runs a scoped effect (with metrics on when asked); the resource lives until `close`. */
const open = async <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => {
  const { AmpMetrics } = await rpc()
  const scope = Effect.runSync(Scope.make())
  const value = await Effect.runPromise(Scope.extend(metricsOn ? AmpMetrics.withMetrics(effect) : effect, scope))
  return { value, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

const portOf = (address: unknown): number => (address as { readonly port: number }).port

const serveSum = async (port: number): Promise<Server> => {
  const { NodeAmp, Responders, Sum } = await rpc()
  const responders = Responders.layer(Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b })))
  const { close, value } = await open(
    NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port }).pipe(Effect.provide(responders))
  )
  return { port: portOf(value.address), close }
}

const serveEcho = async (port: number): Promise<Server> => {
  const { Echo, NodeAmp, Responders, Sum } = await rpc()
  const responders = Responders.layer(
    Responders.respond(Echo, ({ text }) => Effect.succeed({ text })),
    Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b }))
  )
  const { close, value } = await open(
    NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port }).pipe(Effect.provide(responders))
  )
  return { port: portOf(value.address), close }
}

const serveSlow = async (port: number, onHandled: () => void): Promise<Server> => {
  const { NodeAmp, Responders, Slow } = await rpc()
  let sink = 0
  const responders = Responders.layer(Responders.respond(Slow, ({ blob }) =>
    Effect.as(Effect.sleep("1 millis"), {}).pipe(Effect.tap(() => {
      sink += blob.length
      onHandled()
    }))))
  // One command at a time: 1 box per millisecond, whatever the peer sends.
  const { close, value } = await open(
    NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port }, { dispatcher: { maxConcurrentCommands: 1 } }).pipe(
      Effect.provide(responders)
    )
  )
  return { port: portOf(value.address), close: () => close().then(() => void sink) }
}

const connectSum = async (port: number): Promise<SumClient> => {
  const { NodeAmp, Responders, Sum } = await rpc()
  const { close, value: amp } = await open(
    NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port }).pipe(Effect.provide(Responders.none))
  )
  const args = { a: 13n, b: 81n }
  const run = (drive: Drive) => {
    const more = budget(drive)
    const lat = drive.latencies
    let completed = 0
    // `inflight` fibers, each making calls one after another, as a user would.
    const worker = Effect.gen(function*() {
      while (more()) {
        const t0 = lat ? performance.now() : 0
        const { total } = yield* amp.callRemote(Sum, args)
        if (total !== 94n) return yield* Effect.dieMessage(`Sum answered ${total}`)
        if (lat) lat.push(performance.now() - t0)
        completed++
      }
    })
    return Effect.runPromise(
      Effect.all(Array.from({ length: drive.inflight }, () => worker), { concurrency: "unbounded", discard: true })
    ).then(() => completed)
  }
  return { run, close }
}

const serveLarge = async (port: number): Promise<Server> => {
  const { BigCheck, BigEcho, Echo, NodeAmp, Responders } = await rpc()
  const responders = Responders.layer(
    Responders.respond(Echo, ({ text }) => Effect.succeed({ text })),
    Responders.respond(BigEcho, ({ data }) => Effect.succeed({ data })),
    Responders.respond(BigCheck, ({ data }) => Effect.succeed({ data, digest: createHash("sha256").update(data).digest("hex") }))
  )
  const { close, value } = await open(
    NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port }).pipe(Effect.provide(responders))
  )
  return { port: portOf(value.address), close }
}

/** `drive.inflight` fibers, each running `call` one after another until the budget is spent; the calls completed. */
const fibers = <E>(drive: Drive, call: Effect.Effect<void, E>): Promise<number> => {
  const more = budget(drive)
  let completed = 0
  const worker = Effect.gen(function*() {
    while (more()) {
      yield* call
      completed++
    }
  })
  return Effect.runPromise(
    Effect.all(Array.from({ length: drive.inflight }, () => worker), { concurrency: "unbounded", discard: true })
  ).then(() => completed)
}

const connectLarge = async (port: number): Promise<LargeClient> => {
  const { BigCheck, BigEcho, Echo, NodeAmp, Responders } = await rpc()
  const { close, value: amp } = await open(
    NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port }).pipe(Effect.provide(Responders.none))
  )
  // Timed loops check the answer's length only (as Twisted's and raw Node's do); BigCheck checks the bytes.
  const echo = (drive: Drive, text: string) =>
    fibers(
      drive,
      Effect.flatMap(amp.callRemote(Echo, { text }), (r) =>
        r.text.length === text.length ? Effect.void : Effect.dieMessage(`Echo answered ${r.text.length} characters`))
    )
  const bigEcho = (drive: Drive, data: Uint8Array) =>
    fibers(
      drive,
      Effect.flatMap(amp.callRemote(BigEcho, { data }), (r) =>
        r.data.length === data.length ? Effect.void : Effect.dieMessage(`BigEcho answered ${r.data.length} bytes`))
    )
  const bigCheck = (data: Uint8Array) => Effect.runPromise(amp.callRemote(BigCheck, { data }))
  return { echo, bigEcho, bigCheck, close }
}

export const adapter: NodeAdapter = { name: "effect-amp", codec, serveSum, serveSlow, serveEcho, connectSum, serveLarge, connectLarge }
