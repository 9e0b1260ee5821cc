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
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import * as Command from "./Command.js"
import * as Responders from "./Responders.js"
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

/**
 * Answers a switch command: the handler decides (fail to refuse) and returns
 * the protocol to run on the raw connection once the answer has gone out.
 * That protocol runs in the connection's scope; the connection ends when it
 * returns.
 */
export const respond = <C extends Command.Any, E, R>(
  command: C,
  handler: (args: Command.Arguments<C>) => Effect.Effect<(connection: RawConnection) => Effect.Effect<void>, E, R>
) => Responders.respondKind(command, handler)
