/**
 * The public test kit, used as a package user would: only the package's
 * public entries (`effect-amp`, `effect-amp/test`, here by their sources)
 * and @effect/vitest.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as TestServices from "effect/TestServices"
import { Amp, Argument, Command, Responders } from "../../src/index.js"
import { AmpTest } from "../../src/testing/index.js"

class ZeroDivision extends Data.TaggedError("ZeroDivision")<{ readonly description: string }> {}

const Sum = Command.make("Sum", {
  arguments: { a: Argument.Integer, b: Argument.Integer },
  response: { total: Argument.Integer }
})
const Divide = Command.make("Divide", {
  arguments: { numerator: Argument.Integer, denominator: Argument.Integer },
  response: { result: Argument.Float },
  errors: { ZERO_DIVISION: ZeroDivision }
})
const Echo = Command.make("Echo", { arguments: { text: Argument.Unicode }, response: { text: Argument.Unicode } })
/** Answered when the test clock says so. */
const Slow = Command.make("Slow", { arguments: {}, response: {} })
/** The server asks the client for its name. */
const WhoAreYou = Command.make("WhoAreYou", { arguments: {}, response: { name: Argument.Unicode } })

/** A service the server's responders depend on, to show requirements carry over. */
class Offset extends Context.Tag("test/Offset")<Offset, bigint>() {}

const ServerResponders = Responders.layer(
  Responders.respond(Sum, ({ a, b }) => Effect.map(Offset, (offset) => ({ total: a + b + offset }))),
  Responders.respond(Divide, ({ denominator, numerator }) =>
    denominator === 0n
      ? Effect.fail(new ZeroDivision({ description: "divided by zero" }))
      : Effect.succeed({ result: Number(numerator) / Number(denominator) })),
  Responders.respond(Echo, ({ text }) => Effect.succeed({ text })),
  Responders.respond(Slow, () => Effect.as(Effect.sleep("1 hour"), {}))
).pipe(Layer.provide(Layer.succeed(Offset, 0n)))

describe("AmpTest.layerClient", () => {
  it.effect("provides an Amp whose calls reach the server's responders", () =>
    Effect.gen(function*() {
      const amp = yield* Amp
      expect(yield* amp.callRemote(Sum, { a: 13n, b: 81n })).toEqual({ total: 94n })
      expect(yield* Effect.flip(amp.callRemote(Divide, { numerator: 1n, denominator: 0n }))).toMatchObject({
        _tag: "ZeroDivision",
        description: "divided by zero"
      })
    }).pipe(Effect.provide(AmpTest.layerClient(ServerResponders))))

  it.effect("leaves the server responders' requirements to the caller", () =>
    Effect.gen(function*() {
      const amp = yield* Amp
      expect(yield* amp.callRemote(Sum, { a: 1n, b: 1n })).toEqual({ total: 102n })
    }).pipe(
      Effect.provide(AmpTest.layerClient(
        Responders.layer(Responders.respond(Sum, ({ a, b }) => Effect.map(Offset, (o) => ({ total: a + b + o }))))
      )),
      Effect.provideService(Offset, 100n)
    ))

  it.effect("a call with a timeout fails with CallTimeout when the TestClock passes it, and not before", () =>
    Effect.gen(function*() {
      const amp = yield* Amp
      const call = yield* Effect.fork(amp.callRemote(Slow, {}, { timeout: "5 seconds" }))
      yield* TestClock.adjust("4999 millis")
      expect(Option.isNone(yield* Fiber.poll(call))).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(yield* Effect.flip(Fiber.join(call))).toMatchObject({ _tag: "CallTimeout", command: "Slow", millis: 5000 })
      // The connection is still good.
      expect(yield* amp.callRemote(Echo, { text: "still here" })).toEqual({ text: "still here" })
    }).pipe(Effect.provide(AmpTest.layerClient(ServerResponders))))

  it.effect("takes dispatcher options per side: the client's default timeout runs on the TestClock too", () =>
    Effect.gen(function*() {
      const amp = yield* Amp
      const call = yield* Effect.fork(amp.callRemote(Slow, {}))
      yield* TestClock.adjust("1 second")
      // Bounded on the live clock, so that a default timeout that never fires fails the test at once.
      const error = yield* TestServices.provideLive(Effect.timeout(Effect.flip(Fiber.join(call)), "5 seconds"))
      expect(error).toMatchObject({ _tag: "CallTimeout", millis: 1000 })
    }).pipe(Effect.provide(AmpTest.layerClient(ServerResponders, { client: { dispatcher: { defaultTimeout: "1 second" } } }))))

  it.effect("a registry from Responders.make serves as well as a layer", () =>
    Effect.gen(function*() {
      const amp = yield* Amp
      expect(yield* amp.callRemote(Echo, { text: "hé" })).toEqual({ text: "hé" })
      expect(yield* Effect.flip(amp.callRemote(Sum, { a: 1n, b: 2n }))).toMatchObject({ _tag: "UnhandledCommand" })
    }).pipe(
      Effect.provide(AmpTest.layerClient(Responders.make(Responders.respond(Echo, ({ text }) => Effect.succeed({ text })))))
    ))
})

describe("AmpTest.pair", () => {
  for (
    const chunking of [
      { _tag: "Fixed", size: 1 },
      { _tag: "Random", seed: 42, maxSize: 7 }
    ] as const
  ) {
    it.scoped(`calls survive ${chunking._tag} chunking, values large and small`, () =>
      Effect.gen(function*() {
        const { client } = yield* AmpTest.pair(ServerResponders, { chunking })
        const big = "ÿ".repeat(2_000)
        const answers = yield* Effect.all(
          [client.callRemote(Echo, { text: big }), client.callRemote(Sum, { a: 2n, b: 3n })],
          { concurrency: "unbounded" }
        )
        expect(answers).toEqual([{ text: big }, { total: 5n }])
      }))
  }

  it.scoped("the server calls the client's responders", () =>
    Effect.gen(function*() {
      const { server } = yield* AmpTest.pair(ServerResponders, {
        clientResponders: Responders.layer(Responders.respond(WhoAreYou, () => Effect.succeed({ name: "client" })))
      })
      expect(yield* server.callRemote(WhoAreYou, {})).toEqual({ name: "client" })
    }))

  it.scoped("without clientResponders the client answers UNHANDLED", () =>
    Effect.gen(function*() {
      const { server } = yield* AmpTest.pair(ServerResponders)
      expect(yield* Effect.flip(server.callRemote(WhoAreYou, {}))).toMatchObject({ _tag: "UnhandledCommand" })
    }))

  it.scoped("the wire controls: what the client wrote, and a broken connection", () =>
    Effect.gen(function*() {
      const { client, clientEnd, server, serverEnd } = yield* AmpTest.pair(ServerResponders)
      yield* client.callRemote(Echo, { text: "on the wire" })
      expect(new TextDecoder().decode(clientEnd.written())).toContain("on the wire")
      expect(serverEnd.writes()).toBeGreaterThan(0)
      yield* serverEnd.fail("cable cut")
      expect(yield* Effect.flip(client.callRemote(Echo, { text: "gone" }))).toMatchObject({ _tag: "ConnectionLost" })
      expect(yield* server.ended).toMatchObject({ _tag: "ConnectionLost", reason: "reset", detail: "cable cut" })
    }))

  it.effect("closing the scope ends both connections", () =>
    Effect.gen(function*() {
      const { client, server } = yield* Effect.scoped(AmpTest.pair(ServerResponders))
      expect((yield* server.ended)._tag).toBe("ConnectionLost")
      expect((yield* client.ended)._tag).toBe("ConnectionLost")
    }))
})

describe("AmpTest.layer", () => {
  it.effect("provides the client as Amp and the whole pair as AmpTest.Pair", () =>
    Effect.gen(function*() {
      const amp = yield* Amp
      const pair = yield* AmpTest.Pair
      expect(pair.client).toBe(amp)
      expect(yield* pair.server.callRemote(WhoAreYou, {})).toEqual({ name: "me" })
      yield* pair.clientEnd.close
      expect((yield* pair.server.ended)._tag).toBe("ConnectionLost")
    }).pipe(Effect.provide(AmpTest.layer(ServerResponders, {
      clientResponders: Responders.make(Responders.respond(WhoAreYou, () => Effect.succeed({ name: "me" })))
    }))))
})
