/**
 * Responders are checked against their command: an error the command does
 * not declare does not compile (the type tests below fail `npm run typecheck`
 * if it ever does), a defect is the way to say "answer UNKNOWN and close",
 * and a second responder for one command is refused when the layer is built.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { Amp } from "../src/Amp.js"
import * as Argument from "../src/Argument.js"
import * as Command from "../src/Command.js"
import * as ProtocolSwitch from "../src/ProtocolSwitch.js"
import * as Responders from "../src/Responders.js"
import * as StartTls from "../src/StartTls.js"
import * as AmpTest from "../src/testing/AmpTest.js"

class ZeroDivision extends Data.TaggedError("ZeroDivision")<{ readonly description: string }> {}
class Undeclared extends Data.TaggedError("Undeclared")<{ readonly description: string }> {}
class Refusal extends Data.TaggedError("Refusal")<{}> {}

const Divide = Command.make("Divide", {
  arguments: { numerator: Argument.Integer, denominator: Argument.Integer },
  response: { result: Argument.Float },
  errors: { ZERO_DIVISION: ZeroDivision }
})
const Sum = Command.make("Sum", { arguments: { a: Argument.Integer, b: Argument.Integer }, response: { total: Argument.Integer } })

describe("Responders.respond: errors checked against the command", () => {
  it("a declared error compiles; an undeclared one, or a callback's call errors, do not", () => {
    const declared = Responders.respond(Divide, ({ denominator }) =>
      denominator === 0n ? Effect.fail(new ZeroDivision({ description: "by zero" })) : Effect.succeed({ result: 1 }))
    // @ts-expect-error Undeclared is not one of Divide's errors
    Responders.respond(Divide, () => Effect.fail(new Undeclared({ description: "nope" })))
    // @ts-expect-error the callback's CallError (ConnectionLost, …) is not one of Sum's errors
    Responders.respond(Sum, ({ a, b }) => Effect.flatMap(Amp, (peer) => peer.callRemote(Sum, { a, b })))
    // Said out loud, it compiles: a defect answers UNKNOWN and closes the connection.
    const orDie = Responders.respond(Sum, ({ a, b }) => Effect.flatMap(Amp, (peer) => Effect.orDie(peer.callRemote(Sum, { a, b }))))
    expect([declared.command.name, orDie.command.name]).toEqual(["Divide", "Sum"])
  })

  it.scoped("a defect is answered UNKNOWN, and the connection closes, as for an undeclared Twisted exception", () =>
    Effect.gen(function*() {
      const { client, server } = yield* AmpTest.pair(
        Responders.make(Responders.respond(Divide, () => Effect.die(new Undeclared({ description: "nope" }))))
      )
      const failure = yield* Effect.flip(client.callRemote(Divide, { numerator: 1n, denominator: 2n }))
      expect(failure).toMatchObject({ _tag: "UnknownRemoteError" })
      expect((yield* server.ended)._tag).toBe("ConnectionLost")
    }))
})

describe("Responders: one responder per command", () => {
  it.effect("two for the same command: building the layer dies, naming the command", () =>
    Effect.gen(function*() {
      const twice = Responders.layer(
        Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b })),
        Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a * b }))
      )
      const exit = yield* Effect.exit(Layer.build(twice).pipe(Effect.scoped))
      expect(Exit.isFailure(exit) && !Exit.isInterrupted(exit)).toBe(true)
      expect(String(Exit.isFailure(exit) ? exit.cause : "")).toContain(`two responders for the command "Sum"`)
    }))

  it("make throws the same way", () => {
    expect(() =>
      Responders.make(
        Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b })),
        Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b }))
      )
    ).toThrow(`two responders for the command "Sum"`)
  })

  it("a command that changes the connection needs its own respond: a plain one is refused when built", () => {
    const Upgrade = ProtocolSwitch.make("Upgrade", { errors: { NOPE: Undeclared } })
    expect(() => Responders.make(Responders.respond(Upgrade, () => Effect.succeed({})))).toThrow(
      `the command "Upgrade" changes the connection: answer it with ProtocolSwitch.respond`
    )
    expect(() => Responders.make(Responders.respond(StartTls.StartTLS, () => Effect.succeed({})))).toThrow(
      `the command "StartTLS" changes the connection: answer it with StartTls.respond`
    )
    const declared = ProtocolSwitch.respond(Upgrade, () => Effect.fail(new Undeclared({ description: "not now" })))
    // @ts-expect-error Refusal is not one of Upgrade's errors
    ProtocolSwitch.respond(Upgrade, () => Effect.fail(new Refusal()))
    // @ts-expect-error StartTLS declares no errors: its handler cannot fail
    StartTls.respond(() => Effect.fail(new Refusal()))
    expect(Responders.make(declared, StartTls.respond(() => Effect.succeed({}))).names).toEqual(["Upgrade", "StartTLS"])
  })
})
