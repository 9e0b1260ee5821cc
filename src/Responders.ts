/**
 * Responders: what this side answers when the peer calls a command
 * (Twisted's `CommandLocator` and `@Command.responder`).
 *
 * Responders are registered as a `Layer`, so they can use other services;
 * the connection itself (`Amp`) is provided to each call, so a responder can
 * call back the peer.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { bytesToByteString } from "./AmpBox.js"
import type { Amp } from "./Amp.js"
import * as Command from "./Command.js"

/** Responders by `_command` wire name (a byte string). */
export interface Registry {
  readonly get: (wireName: string) => Command.Responder<Amp> | undefined
  readonly names: ReadonlyArray<string>
}

/**
 * The responders of this side. An interface, not an alias of `Registry`, so
 * that a program missing them says `Responders` in its type error.
 *
 * @since 0.1.0
 */
export interface Responders extends Registry {}
/** @since 0.1.0 */
export const Responders: Context.Tag<Responders, Responders> = Context.GenericTag<Responders>("effect-amp/Responders")

/**
 * A responder for `command`: gets the decoded arguments, returns the
 * response fields. Failing with one of the command's error classes answers
 * that error code (and closes the connection after it, for a fatal one).
 *
 * The responder may fail only with errors its command declares: any other
 * failure is a compile error, since the peer could only be told `UNKNOWN`
 * and lose the connection. Where that is what you mean (Twisted's answer to
 * an undeclared exception), say so with `Effect.orDie`: a defect is answered
 * `UNKNOWN`, logged, and the connection closes.
 *
 * @example
 * const sum = Responders.respond(Sum, ({ a, b }) => Effect.succeed({ total: a + b }))
 */
export const respond = <
  C extends Command.Any,
  Eff extends Effect.Effect<Command.Response<C> | AnswerThenClose<Command.Response<C>>, Command.Error<C>, any>
>(
  command: C,
  // The whole Effect type is inferred, so branches failing with different errors need no annotation.
  handler: (args: Command.Arguments<C>) => Eff
): Command.Responder<Effect.Effect.Context<Eff>> => ({
  _tag: "Responder",
  command,
  handle: handler as unknown as (args: Record<string, unknown>) => Effect.Effect<unknown, unknown, Effect.Effect.Context<Eff>>
})

const AnswerThenCloseTypeId: unique symbol = Symbol.for("effect-amp/AnswerThenClose")

/**
 * A response to send, after which the connection is closed (see {@link answerThenClose}).
 *
 * @since 0.1.0
 */
export interface AnswerThenClose<A> {
  readonly [AnswerThenCloseTypeId]: typeof AnswerThenCloseTypeId
  readonly response: A
}

/**
 * Answers with `response`, then closes the connection once the answer is
 * written, as Twisted's `QuitBox` does (ampoule's `Shutdown` answers so).
 * The peer gets the answer, then the end of the connection; commands that
 * arrived after this one are not dispatched. For a command with
 * `requiresAnswer: false`, only the close.
 *
 * @example
 * const shutdown = Responders.respond(Shutdown, () => Effect.succeed(Responders.answerThenClose({})))
 *
 * @since 0.1.0
 */
export const answerThenClose = <A>(response: A): AnswerThenClose<A> => ({ [AnswerThenCloseTypeId]: AnswerThenCloseTypeId, response })

/**
 * Whether a responder's result is an {@link answerThenClose}.
 *
 * @since 0.1.0
 */
export const isAnswerThenClose = (u: unknown): u is AnswerThenClose<unknown> =>
  typeof u === "object" && u !== null && AnswerThenCloseTypeId in u

type Requirements<Rs extends ReadonlyArray<Command.Responder<any>>> = Rs[number] extends Command.Responder<infer R> ? R
  : never

const registry = (responders: ReadonlyArray<Command.Responder<Amp>>): Registry => {
  const map = new Map<string, Command.Responder<Amp>>()
  for (const r of responders) {
    const name = bytesToByteString(r.command.wire.nameBytes)
    // A second one would silently replace the first: a mistake, refused where it is made (a defect).
    if (map.has(name)) throw new Error(`two responders for the command ${JSON.stringify(name)}: give each command one`)
    // A plain responder for StartTLS or a switch would answer and leave the connection as it was.
    if (r.command.kind !== "plain" && r.atBoundary === undefined) {
      const use = r.command.kind === "starttls" ? "StartTls.respond" : "ProtocolSwitch.respond"
      throw new Error(`the command ${JSON.stringify(name)} changes the connection: answer it with ${use}`)
    }
    map.set(name, r)
  }
  return { get: (name) => map.get(name), names: [...map.keys()] }
}

/**
 * A layer with these responders. Their requirements (other than the
 * connection, `Amp`) are taken from the layer's context once. Two responders
 * for one command are a mistake: building the layer dies, naming the command.
 *
 * @since 0.1.0
 */
export const layer = <const Rs extends ReadonlyArray<Command.Responder<any>>>(
  ...responders: Rs
): Layer.Layer<Responders, never, Exclude<Requirements<Rs>, Amp>> =>
  Layer.effect(
    Responders,
    Effect.map(Effect.context<Exclude<Requirements<Rs>, Amp>>(), (ctx) =>
      registry(responders.map((r): Command.Responder<Amp> => ({
        ...r,
        handle: (args) => {
          const effect = r.handle(args)
          // An already-computed result needs no context; keeping it bare lets the dispatcher answer without a fiber.
          return (Exit.isExit(effect) ? effect : Effect.provide(effect, ctx)) as Effect.Effect<unknown, unknown, Amp>
        }
      }))))
  )

/** No responders: every command from the peer is answered `UNHANDLED`. */
export const none: Layer.Layer<Responders> = Layer.succeed(Responders, registry([]))

/** A registry without a layer (for tests and servers built by hand). Throws if two responders share a command. */
export const make = (...responders: ReadonlyArray<Command.Responder<Amp>>): Registry => registry(responders)
