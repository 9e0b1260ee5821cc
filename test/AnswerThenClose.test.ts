/**
 * Answer, then close (Twisted's `QuitBox`): the answer reaches the caller,
 * then the connection ends; the peer's later commands are not dispatched.
 * In memory and over a real socket; against Twisted: test/interop/AnswerThenClose.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import type * as Either from "effect/Either"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Argument from "../src/Argument.js"
import * as Command from "../src/Command.js"
import * as Responders from "../src/Responders.js"
import * as NodeAmp from "../src/node/NodeAmp.js"
import * as AmpTest from "../src/testing/AmpTest.js"

const Quit = Command.make("Quit", { response: { bye: Argument.Unicode } })
const Notify = Command.make("QuitQuietly", { requiresAnswer: false })
const Sum = Command.make("Sum", { arguments: { a: Argument.Integer, b: Argument.Integer }, response: { total: Argument.Integer } })

let sums = 0
const responders = () => {
  sums = 0
  return Responders.make(
    Responders.respond(Quit, () => Effect.succeed(Responders.answerThenClose({ bye: "so long" }))),
    Responders.respond(Notify, () => Effect.succeed(Responders.answerThenClose({}))),
    Responders.respond(Sum, ({ a, b }) => Effect.sync(() => (sums++, { total: a + b })))
  )
}

describe("answerThenClose", () => {
  it.scoped("the caller gets the answer, then the connection ends, closed by the server", () =>
    Effect.gen(function*() {
      const { client, server } = yield* AmpTest.pair(responders())
      expect(yield* client.callRemote(Sum, { a: 1n, b: 2n })).toEqual({ total: 3n })
      expect(yield* client.callRemote(Quit, {})).toEqual({ bye: "so long" })
      const reason = yield* server.ended
      expect(reason).toMatchObject({ _tag: "ConnectionLost", reason: "closed by us" })
      expect((yield* client.ended)._tag).toBe("ConnectionLost")
      const after = yield* Effect.flip(client.callRemote(Sum, { a: 1n, b: 1n }))
      expect(after._tag).toBe("ConnectionLost")
    }))

  it.scopedLive("an answer from a responder that ran in a fiber closes the same way", () =>
    Effect.gen(function*() {
      const slowQuit = Responders.make(
        Responders.respond(Quit, () => Effect.as(Effect.sleep("5 millis"), Responders.answerThenClose({ bye: "later" })))
      )
      const { client, server } = yield* AmpTest.pair(slowQuit)
      expect(yield* client.callRemote(Quit, {})).toEqual({ bye: "later" })
      expect((yield* server.ended)._tag).toBe("ConnectionLost")
    }))

  it.scoped("a command without an answer (requiresAnswer: false) closes the connection", () =>
    Effect.gen(function*() {
      const { client, server } = yield* AmpTest.pair(responders())
      yield* client.callRemote(Notify, {})
      expect((yield* server.ended)._tag).toBe("ConnectionLost")
    }))

  it.scopedLive("over TCP: 50 Sums, Quit and 50 more Sums pipelined: 50 answers, Quit's, then the end; the later Sums are not run", () =>
    Effect.gen(function*() {
      const server = yield* NodeAmp.serve({ _tag: "tcp", host: "127.0.0.1", port: 0 }).pipe(
        Effect.provideService(Responders.Responders, responders())
      )
      const port = (server.address as unknown as { port: number }).port
      const amp = yield* NodeAmp.connect({ _tag: "tcp", host: "127.0.0.1", port }).pipe(Effect.provide(Responders.none))
      const call = (i: number) => Effect.either(amp.callRemote(Sum, { a: BigInt(i), b: 1n }))
      // Forked one by one, they start (and send) in this order, all in the same turn.
      const fibers = yield* Effect.forEach(
        [...Array.from({ length: 50 }, (_, i) => call(i)), Effect.either(amp.callRemote(Quit, {})), ...Array.from({ length: 50 }, (_, i) => call(i))],
        (effect) => Effect.fork(effect as Effect.Effect<unknown>)
      )
      const results = (yield* Fiber.joinAll(fibers)) as ReadonlyArray<Either.Either<{ readonly total?: bigint; readonly bye?: string }, { readonly _tag: string }>>
      const before = results.slice(0, 50), quit = results[50], after = results.slice(51)
      expect(before.map((r) => r._tag === "Right" ? r.right.total : r.left._tag)).toEqual(Array.from({ length: 50 }, (_, i) => BigInt(i + 1)))
      expect(quit).toMatchObject({ _tag: "Right", right: { bye: "so long" } })
      expect(after.every((r) => r._tag === "Left" && r.left._tag === "ConnectionLost")).toBe(true)
      expect(sums).toBe(50)
    }))
})
