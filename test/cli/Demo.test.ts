/**
 * The demo's Divide over an in-memory connection: Python's true division
 * (see trueDivide.test.ts for the vectors), ZERO_DIVISION for a zero
 * denominator, and for a quotient too large for a float an unmapped failure,
 * so the caller gets UNKNOWN and the connection ends, as with Twisted.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Demo from "../../src/cli/Demo.js"
import * as Responders from "../../src/Responders.js"
import { ampPair } from "../support/ampPair.js"

describe("Demo.Divide", () => {
  it.scoped("divides exactly, answers ZERO_DIVISION, and ends the connection with UNKNOWN on overflow", () =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const { client, server } = yield* ampPair({ server: Responders.make(...Demo.responders) }).pipe(
        Effect.provide(Logger.add(Logger.make(({ message }) => void logged.push(String(message)))))
      )
      expect(yield* client.callRemote(Demo.Divide, { numerator: 10n ** 400n, denominator: 10n ** 399n })).toEqual({ result: 10 })
      expect(yield* client.callRemote(Demo.Divide, { numerator: 2n ** 1024n, denominator: 2n ** 1023n })).toEqual({ result: 2 })
      const zero = yield* Effect.flip(client.callRemote(Demo.Divide, { numerator: 1n, denominator: 0n }))
      expect(zero).toMatchObject({ _tag: "ZeroDivision", description: "float division by zero" })
      const overflow = yield* Effect.flip(client.callRemote(Demo.Divide, { numerator: -(10n ** 400n), denominator: 3n }))
      expect(overflow._tag).toBe("UnknownRemoteError")
      yield* server.ended
      yield* client.ended
      expect(logged).toContain("AMP responder for Divide failed; dropping the connection")
    }))

  it("the overflow error says what happened, in Python's words, and how big the operands were", () => {
    expect(new Demo.DivisionOverflow({ numerator: -(10n ** 400n), denominator: 3n }).message).toBe(
      "Divide: integer division result too large for a float (a 401-digit numerator, a 1-digit denominator)"
    )
  })
})
