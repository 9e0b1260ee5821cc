/**
 * The interop suite's commands, the same as test/interop/peers/amp_peer.py
 * defines with Twisted, and our responders for them.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { Amp } from "../../src/Amp.js"
import * as Argument from "../../src/Argument.js"
import * as Command from "../../src/Command.js"
import * as ProtocolSwitch from "../../src/ProtocolSwitch.js"
import * as Responders from "../../src/Responders.js"
import * as StartTls from "../../src/StartTls.js"
import type { TlsOptions } from "../../src/Transport.js"
export { Divide, Echo, Sum, ZeroDivision } from "../../src/cli/Demo.js"
import { Divide, Echo, Sum, ZeroDivision } from "../../src/cli/Demo.js"

export class MappedError extends Data.TaggedError("MappedError")<{ readonly description: string }> {}
export class FatalError extends Data.TaggedError("FatalError")<{ readonly description: string }> {}
export class Refused extends Data.TaggedError("Refused")<{ readonly description: string }> {}

export const allFields = {
  i: Argument.Integer,
  s: Argument.String,
  u: Argument.Unicode,
  fl: Argument.Float,
  b: Argument.Boolean,
  d: Argument.Decimal,
  dt: Argument.DateTime,
  li: Argument.ListOf(Argument.Integer),
  lu: Argument.ListOf(Argument.Unicode),
  al: Argument.AmpList({ x: Argument.Integer, y: Argument.optional(Argument.Unicode) }),
  nested: Argument.AmpList({ inner: Argument.AmpList({ z: Argument.Integer }) }),
  p: Argument.optional(Argument.Path),
  o: Argument.optional(Argument.Integer),
  "dash-name": Argument.optional(Argument.Unicode)
}
export const EchoAll = Command.make("EchoAll", { arguments: allFields, response: allFields })
export const Fail = Command.make("Fail", {
  arguments: { kind: Argument.Unicode },
  errors: { MAPPED: MappedError },
  fatalErrors: { FATAL: FatalError }
})
export const Notify = Command.make("Notify", { arguments: { text: Argument.Unicode }, requiresAnswer: false })
export const GetNotes = Command.make("GetNotes", { response: { notes: Argument.ListOf(Argument.Unicode) } })
export const Delay = Command.make("Delay", { arguments: { ms: Argument.Integer, id: Argument.Integer }, response: { id: Argument.Integer } })
export const CallBack = Command.make("CallBack", { arguments: { n: Argument.Integer }, response: { total: Argument.Integer } })
export const Secure = Command.make("Secure", { response: { tls: Argument.Boolean, peer: Argument.Unicode } })
export const SwitchToEcho = ProtocolSwitch.make("SwitchToEcho")
export const SwitchRefused = ProtocolSwitch.make("SwitchRefused", { errors: { REFUSED: Refused } })
export const Disconnect = Command.make("Disconnect")
export const Quit = Command.make("Quit", { response: { bye: Argument.Unicode } })

/** Our responders for every command above. */
export const responders = (tls?: TlsOptions) => {
  const notes: Array<string> = []
  return Responders.layer(
    Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b })),
    Responders.respond(Divide, ({ denominator, numerator }) =>
      denominator === 0n
        ? Effect.fail(new ZeroDivision({ description: "float division by zero" }))
        : Effect.succeed({ result: Number(numerator) / Number(denominator) })),
    Responders.respond(Echo, ({ text }) => Effect.succeed({ text })),
    Responders.respond(EchoAll, (args) => Effect.succeed(args)),
    Responders.respond(Fail, ({ kind }) =>
      kind === "mapped"
        ? Effect.fail(new MappedError({ description: "mapped failure" }))
        : kind === "fatal"
        ? Effect.fail(new FatalError({ description: "fatal failure" }))
        : Effect.die(new Error("unmapped failure"))),
    Responders.respond(Notify, ({ text }) => Effect.sync(() => void notes.push(text)).pipe(Effect.as({}))),
    Responders.respond(GetNotes, () => Effect.sync(() => ({ notes: [...notes] }))),
    Responders.respond(Delay, ({ id, ms }) => Effect.as(Effect.sleep(`${Number(ms)} millis`), { id })),
    Responders.respond(CallBack, ({ n }) =>
      Effect.flatMap(Amp, (amp) => amp.callRemote(Sum, { a: n, b: 1n })).pipe(Effect.orDie)),
    Responders.respond(Secure, () =>
      Effect.map(Amp, (amp) => {
        const session = amp.info().tls
        const cn = session?.peerCertificate?.subject.CN
        return { tls: session !== undefined, peer: typeof cn === "string" ? cn : "" }
      })),
    // StartTLS declares no errors: a server without TLS settings dies, and the peer gets UNKNOWN and a close.
    StartTls.respond(() => (tls ? Effect.succeed(tls) : Effect.dieMessage("no TLS here"))),
    ProtocolSwitch.respond(SwitchToEcho, () =>
      Effect.succeed((raw) =>
        Effect.gen(function*() {
          yield* raw.write(new TextEncoder().encode("HELLO;"))
          yield* raw.incoming.pipe(Stream.runForEach((b) => raw.write(b)))
        }).pipe(Effect.ignore)
      )),
    ProtocolSwitch.respond(SwitchRefused, () => Effect.fail(new Refused({ description: "not today" }))),
    Responders.respond(Quit, () => Effect.succeed(Responders.answerThenClose({ bye: "so long" }))),
    Responders.respond(Disconnect, () => Effect.flatMap(Amp, (amp) => amp.close).pipe(Effect.zipRight(Effect.never)))
  )
}
