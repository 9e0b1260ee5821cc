/**
 * Metrics (issue 13): with them on, the counters, the histogram and the
 * gauges read exactly what happened on an in-memory pair (ok calls, a
 * declared error code, UNHANDLED, UNKNOWN, a timeout under TestClock, calls
 * failed by a lost connection, bytes as the write logs show them); with
 * them off, nothing is recorded.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as TestClock from "effect/TestClock"
import * as AmpBox from "../src/AmpBox.js"
import * as AmpMetrics from "../src/AmpMetrics.js"
import * as Argument from "../src/Argument.js"
import * as BoxCodec from "../src/BoxCodec.js"
import * as Command from "../src/Command.js"
import * as Demo from "../src/cli/Demo.js"
import * as Responders from "../src/Responders.js"
import { ampPair } from "./support/ampPair.js"

// Names of their own: the registry is global to the process.
const Slow = Command.make("MetricsSlow", { arguments: { millis: Argument.IntegerNumber }, response: { millis: Argument.IntegerNumber } })
class Oops extends Data.TaggedError("Oops")<{ readonly description: string }> {}
const Fails = Command.make("MetricsFails", {})
const Notify = Command.make("MetricsNotify", { requiresAnswer: false })

const registry = Responders.make(
  ...Demo.responders,
  Responders.respond(Slow, ({ millis }) => Effect.as(Effect.sleep(millis), { millis })),
  Responders.respond(Fails, () => Effect.die(new Oops({ description: "not declared by the command" }))),
  Responders.respond(Notify, () => Effect.succeed({}))
)

/** Lets scheduled writes (one per event-loop turn) and the reads behind them happen. */
const turns = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 20)))

/** `read` once it gives `want`, waiting turns for it (at most 250, a loaded machine is slow); else what it gives then. */
const once = <A>(read: Effect.Effect<A>, want: A): Effect.Effect<A> =>
  Effect.gen(function*() {
    for (let i = 0; i < 250; i++) {
      const v = yield* read
      if (v === want) return v
      yield* turns
    }
    return yield* read
  })

/** Every amp_ metric as numbers, by name and tags: a counter's count, a gauge's value, a histogram's count and sum. */
const readAll = Effect.map(Metric.snapshot, (pairs) => {
  const out = new Map<string, number>()
  for (const { metricKey, metricState } of pairs) {
    if (!metricKey.name.startsWith("amp_")) continue
    const tags = metricKey.tags.map((t) => `${t.key}=${t.value}`).join(",")
    const id = tags === "" ? metricKey.name : `${metricKey.name}{${tags}}`
    if (MetricState.isCounterState(metricState)) out.set(id, Number(metricState.count))
    else if (MetricState.isGaugeState(metricState)) out.set(id, Number(metricState.value))
    else if (MetricState.isHistogramState(metricState)) {
      out.set(`${id}.count`, metricState.count)
      out.set(`${id}.sum`, metricState.sum)
    }
  }
  return out
})

/** What changed since `before`, leaving out what did not. */
const changes = (before: Map<string, number>) =>
  Effect.map(readAll, (after) => {
    const out: Record<string, number> = {}
    for (const [id, v] of after) {
      const d = v - (before.get(id) ?? 0)
      if (Math.abs(d) > 1e-9) out[id] = Math.round(d * 1e6) / 1e6
    }
    return out
  })

const count = (m: Metric.Metric.Counter<number>) => Effect.map(Metric.value(m), (s) => s.count)
const gauge = (m: Metric.Metric.Gauge<number>) => Effect.map(Metric.value(m), (s) => s.value)

describe("with metrics on", () => {
  it.scoped("calls by command and outcome, the latency histogram and calls in flight read what happened", () =>
    Effect.gen(function*() {
      const before = yield* readAll
      const inFlight = {
        client: () => Effect.map(gauge(AmpMetrics.callsInFlightFor("client")), (v) => v - before.get("amp_calls_in_flight{side=client}")!),
        server: () => Effect.map(gauge(AmpMetrics.callsInFlightFor("server")), (v) => v - before.get("amp_calls_in_flight{side=server}")!)
      }
      yield* Effect.scoped(Effect.gen(function*() {
        const { client, serverEnd } = yield* AmpMetrics.withMetrics(ampPair({ server: registry }))
        for (let i = 0; i < 5; i++) yield* client.callRemote(Demo.Sum, { a: 1n, b: 2n })
        for (let i = 0; i < 3; i++) yield* Effect.flip(client.callRemote(Demo.Divide, { numerator: 1n, denominator: 0n }))
        for (let i = 0; i < 2; i++) yield* Effect.flip(client.callRemoteString("NoSuchCommand", {}))

        // A timeout, under TestClock: the call observes exactly its timeout.
        const timedOut = yield* Effect.fork(Effect.flip(client.callRemote(Slow, { millis: 60_000 }, { timeout: "1 second" })))
        expect(yield* once(inFlight.server(), 1)).toBe(1)
        expect(yield* inFlight.client()).toBe(1)
        yield* TestClock.adjust("1 second")
        expect((yield* Fiber.join(timedOut))._tag).toBe("CallTimeout")
        expect(yield* inFlight.client()).toBe(0)

        // Two calls waiting when the connection goes, 250 ms after they were sent; one made after.
        const lost = yield* Effect.fork(Effect.all([
          Effect.flip(client.callRemote(Slow, { millis: 60_000 })),
          Effect.flip(client.callRemote(Slow, { millis: 60_000 }))
        ], { concurrency: 2 }))
        expect(yield* once(inFlight.server(), 3)).toBe(3)
        expect(yield* inFlight.client()).toBe(2)
        yield* TestClock.adjust("250 millis")
        yield* serverEnd.control.fail("the cable was pulled")
        expect((yield* Fiber.join(lost)).map((e) => e._tag)).toEqual(["ConnectionLost", "ConnectionLost"])
        expect((yield* Effect.flip(client.callRemote(Slow, { millis: 1 })))._tag).toBe("ConnectionLost")
        expect(yield* inFlight.client()).toBe(0)
        expect(yield* count(AmpMetrics.clientCallsFor("MetricsSlow", "connection_lost"))).toBe(3)
      }))

      expect(yield* changes(before)).toEqual({
        "amp_client_calls_total{command=Sum,outcome=ok}": 5,
        "amp_server_calls_total{command=Sum,outcome=ok}": 5,
        "amp_client_calls_total{command=Divide,outcome=ZERO_DIVISION}": 3,
        "amp_server_calls_total{command=Divide,outcome=ZERO_DIVISION}": 3,
        "amp_client_calls_total{command=NoSuchCommand,outcome=UNHANDLED}": 2,
        "amp_server_calls_total{command=(unhandled),outcome=UNHANDLED}": 2,
        "amp_client_calls_total{command=MetricsSlow,outcome=timeout}": 1,
        "amp_client_calls_total{command=MetricsSlow,outcome=connection_lost}": 3,
        // Under TestClock the answered calls took no time; the refused call is not observed.
        "amp_client_call_duration_seconds{command=Sum}.count": 5,
        "amp_client_call_duration_seconds{command=Divide}.count": 3,
        "amp_client_call_duration_seconds{command=NoSuchCommand}.count": 2,
        "amp_client_call_duration_seconds{command=MetricsSlow}.count": 3,
        "amp_client_call_duration_seconds{command=MetricsSlow}.sum": 1.5,
        // Bytes are checked against the write logs below; here they only grew.
        amp_bytes_received_total: expect.any(Number),
        amp_bytes_sent_total: expect.any(Number)
        // Gauges are back where they were: no connection open, nothing in flight.
      })
      const slow = yield* Metric.value(AmpMetrics.clientCallDurationFor("MetricsSlow"))
      expect(slow.max).toBe(1)
    }))

  it.scoped("UNKNOWN for an undeclared failure; commands that require no answer; bytes equal the write logs; connections open", () =>
    Effect.gen(function*() {
      const before = yield* readAll
      const connections = () => Effect.map(gauge(AmpMetrics.connectionsOpen), (v) => v - (before.get("amp_connections_open") ?? 0))
      yield* Effect.scoped(Effect.gen(function*() {
        const { client, clientEnd, serverEnd } = yield* AmpMetrics.withMetrics(
          ampPair({ server: registry, pair: { chunking: { _tag: "Fixed", size: 7 } } })
        )
        expect(yield* connections()).toBe(2)
        for (let i = 0; i < 4; i++) yield* client.callRemote(Notify, {})
        yield* client.callRemote(Demo.Echo, { text: "é".repeat(100) })
        // Its answer came after everything either side wrote: every byte has been read.
        const written = clientEnd.control.written().length + serverEnd.control.written().length
        const now = yield* changes(before)
        expect(now["amp_bytes_sent_total"]).toBe(written)
        expect(now["amp_bytes_received_total"]).toBe(written)
        // An undeclared failure: UNKNOWN, and the server drops the connection.
        expect((yield* Effect.flip(client.callRemote(Fails, {})))._tag).toBe("UnknownRemoteError")
        expect(yield* once(connections(), 0)).toBe(0)
      }))
      expect(yield* changes(before)).toMatchObject({
        "amp_server_calls_total{command=MetricsNotify,outcome=ok}": 4,
        "amp_client_calls_total{command=Echo,outcome=ok}": 1,
        "amp_server_calls_total{command=Echo,outcome=ok}": 1,
        "amp_client_calls_total{command=MetricsFails,outcome=UNKNOWN}": 1,
        "amp_server_calls_total{command=MetricsFails,outcome=UNKNOWN}": 1
      })
      expect(yield* connections()).toBe(0)
    }))

  it.scoped("a call failed by the end of its connection is connection_lost, whatever the end's reason", () =>
    Effect.gen(function*() {
      const before = yield* count(AmpMetrics.clientCallsFor("MetricsSlow", "connection_lost"))
      const running = yield* gauge(AmpMetrics.callsInFlightFor("server"))
      const { client, serverEnd } = yield* AmpMetrics.withMetrics(ampPair({ server: registry }))
      const waiting = yield* Effect.fork(Effect.flip(client.callRemote(Slow, { millis: 60_000 })))
      yield* once(gauge(AmpMetrics.callsInFlightFor("server")), running + 1)
      // An answer to a tag never asked: the client drops the connection with MalformedAmpBox.
      yield* serverEnd.transport.write(BoxCodec.encodeBox(AmpBox.fromEntries([["_answer", "ffff"]])))
      expect((yield* Fiber.join(waiting))._tag).toBe("MalformedAmpBox")
      expect(yield* count(AmpMetrics.clientCallsFor("MetricsSlow", "connection_lost"))).toBe(before + 1)
      expect(yield* count(AmpMetrics.clientCallsFor("MetricsSlow", "other"))).toBe(0)
    }))

  it.scoped("a drain that gives up on a responder counts it UNKNOWN, as it answers", () =>
    Effect.gen(function*() {
      const before = yield* count(AmpMetrics.serverCallsFor("MetricsSlow", "UNKNOWN"))
      const beforeClient = yield* count(AmpMetrics.clientCallsFor("MetricsSlow", "UNKNOWN"))
      const running = yield* gauge(AmpMetrics.callsInFlightFor("server"))
      const { client, server } = yield* AmpMetrics.withMetrics(ampPair({ server: registry }))
      const waiting = yield* Effect.fork(Effect.flip(client.callRemote(Slow, { millis: 60_000 })))
      expect(yield* once(gauge(AmpMetrics.callsInFlightFor("server")), running + 1)).toBe(running + 1)
      const draining = yield* Effect.fork(server.drain("1 second"))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(draining)
      expect((yield* Fiber.join(waiting))._tag).toBe("UnknownRemoteError")
      expect(yield* count(AmpMetrics.serverCallsFor("MetricsSlow", "UNKNOWN"))).toBe(before + 1)
      expect(yield* count(AmpMetrics.clientCallsFor("MetricsSlow", "UNKNOWN"))).toBe(beforeClient + 1)
    }))

  it.scoped("AmpMetrics.layer turns them on for connections made under it", () =>
    Effect.gen(function*() {
      expect(yield* FiberRef.get(AmpMetrics.enabled)).toBe(false)
      const before = yield* count(AmpMetrics.clientCallsFor("Sum", "ok"))
      yield* Effect.scoped(Effect.gen(function*() {
        expect(yield* FiberRef.get(AmpMetrics.enabled)).toBe(true)
        const { client } = yield* ampPair({ server: registry })
        yield* client.callRemote(Demo.Sum, { a: 1n, b: 2n })
      })).pipe(Effect.provide(AmpMetrics.layer))
      expect(yield* count(AmpMetrics.clientCallsFor("Sum", "ok"))).toBe(before + 1)
    }))
})

describe("with metrics off", () => {
  it.scoped("the same calls record nothing", () =>
    Effect.gen(function*() {
      const before = yield* readAll
      yield* Effect.scoped(Effect.gen(function*() {
        const { client, serverEnd } = yield* ampPair({ server: registry })
        yield* client.callRemote(Demo.Sum, { a: 1n, b: 2n })
        yield* Effect.flip(client.callRemote(Demo.Divide, { numerator: 1n, denominator: 0n }))
        yield* Effect.flip(client.callRemoteString("NoSuchCommand", {}))
        yield* client.callRemote(Notify, {})
        const timedOut = yield* Effect.fork(Effect.flip(client.callRemote(Slow, { millis: 60_000 }, { timeout: "1 second" })))
        yield* turns
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(timedOut)
        const lost = yield* Effect.fork(Effect.flip(client.callRemote(Slow, { millis: 60_000 })))
        yield* turns
        yield* serverEnd.control.fail("the cable was pulled")
        yield* Fiber.join(lost)
      }))
      expect(yield* changes(before)).toEqual({})
    }))
})
