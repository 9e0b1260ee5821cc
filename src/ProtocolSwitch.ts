/**
 * Protocol switch: after one command and its answer, the connection belongs
 * to another protocol (Twisted's `ProtocolSwitchCommand`).
 *
 * The asking side locks its box sender when it sends the command (further
 * `sendBox` fails with `ProtocolSwitched`), and switches when the answer
 * comes; an error answer unlocks it again. The answering side sends the
 * answer and switches at once. Either way the next protocol gets a
 * `RawConnection` whose bytes start with whatever had already been read past
 * the answer: nothing is lost, nothing is parsed as a box.
 *
 * Both sides live here, as Twisted keeps them with `ProtocolSwitchCommand`
 * (`_SwitchBox`): the dispatcher only runs them at the boundary.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { CallFailure, CallOptions } from "./Amp.js"
import { ConnectionLost, MalformedAmpBox, type TransportUnsupported } from "./AmpError.js"
import * as Command from "./Command.js"
import { attempt } from "./internal/attempt.js"
import type { Answering, Asking } from "./internal/boundaryCommand.js"
import type { RawConnection } from "./Transport.js"

/**
 * Defines a protocol-switch command. Arguments and errors work as for any
 * command; the answer carries no fields.
 */
export const make = <
  const Name extends string,
  A extends Command.Fields = {},
  E extends Command.Errors = {},
  F extends Command.Errors = {}
>(name: Name, options: Omit<Command.Options<A, {}, E, F>, "response" | "requiresAnswer"> = {}) =>
  Command.makeKind<Name, A, {}, E, F>(name, "switch", options)

/** The protocol a switch responder hands the connection to. */
type NextProtocol<R = never> = (connection: RawConnection) => Effect.Effect<void, never, R>

/** The answering side, in the reader held right after the request: answer, then hand the raw connection over. */
const switchAfterAnswer = (result: unknown, kit: Answering): Effect.Effect<void> => {
  kit.answer()
  return Effect.matchEffect(kit.boundary.switchTo, {
    onFailure: (e) => kit.fail(new ConnectionLost({ reason: "error", detail: e.message, cause: e })),
    onSuccess: (raw) => Effect.sync(() => kit.handedTo(kit.fork((result as NextProtocol)(raw))))
  })
}

/**
 * Answers a switch command: the handler decides (fail to refuse) and returns
 * the protocol to run on the raw connection once the answer has gone out.
 * That protocol runs in the connection's scope; the connection ends when it
 * returns.
 */
export const respond = <C extends Command.Any, R>(
  command: C,
  handler: (args: Command.Arguments<C>) => Effect.Effect<NextProtocol, Command.Error<C>, R>
): Command.Responder<R> => ({
  _tag: "Responder",
  command,
  handle: handler as (args: Record<string, unknown>) => Effect.Effect<NextProtocol, Command.Error<C>, R>,
  atBoundary: switchAfterAnswer
})

/** The refusal `Command.decodeResponse` throws; anything else it throws is a bug. */
const isMalformed = (e: unknown): e is MalformedAmpBox => e instanceof MalformedAmpBox

/** @internal `Amp.switchProtocol`: locks our sender, asks, and takes the raw connection when the answer comes. */
export const ask = <C extends Command.Any>(
  kit: Asking,
  command: C,
  args: Command.Arguments<C>,
  options?: CallOptions
): Effect.Effect<{ readonly response: Command.Response<C>; readonly connection: RawConnection },
  Command.Error<C> | CallFailure | TransportUnsupported
> =>
  Effect.suspend(() => {
    let connection: RawConnection | undefined
    const asked = kit.ask<TransportUnsupported>(
      command,
      () => Command.requestFields(command, (args ?? {}) as Record<string, unknown>),
      options?.timeout,
      () => kit.boundary.lockForSwitch(),
      (resume) => (reply, ok) =>
        ok
          ? Effect.matchEffect(kit.boundary.switchTo, {
            onFailure: (e) => Effect.sync(() => resume(Exit.fail(e))),
            onSuccess: (raw) =>
              Effect.sync(() => {
                connection = raw
                resume(Exit.succeed(reply))
              })
          })
          : Effect.sync(() => {
            kit.boundary.unlockFromSwitch()
            resume(Exit.fail(kit.remoteError(command, reply)))
          })
    ).pipe(Effect.onInterrupt(() => Effect.sync(() => kit.boundary.unlockFromSwitch())))
    return Effect.flatMap(asked, (reply) =>
      Effect.map(
        attempt(() => Command.decodeResponse(command, reply) as Command.Response<C>, isMalformed),
        (response) => ({ response, connection: connection! })
      ))
  })
