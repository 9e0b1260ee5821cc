/**
 * Internal (not exported by the package): what the dispatcher lends the
 * commands that change the connection at a box boundary (StartTLS, protocol
 * switches), so that their logic lives with them (StartTls.ts,
 * ProtocolSwitch.ts) and the dispatcher stays generic, as Twisted's
 * `_TLSBox` and `_SwitchBox` carry what happens after they are sent.
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import type { AmpBox } from "../AmpBox.js"
import type { ConnectionEnded } from "../AmpError.js"
import type { Amp, CallFailure } from "../Amp.js"
import type { Boundary } from "./protocolInternals.js"
import type { BoxBuilder } from "../BoxBuilder.js"
import type * as Command from "../Command.js"

/** The answering side: the responder has succeeded; the reader is held right after the request. */
export interface Answering {
  readonly boundary: Boundary
  /** Whether the peer asked for an answer (`_ask`). */
  readonly asked: boolean
  /** Queues the (empty) answer; nothing without `_ask`. */
  readonly answer: () => void
  /** Queues an error box with `code` instead; nothing without `_ask`. */
  readonly refuse: (code: string, description: string) => void
  /** Ends the connection, logging why (the boundary operation failed). */
  readonly fail: (reason: ConnectionEnded) => Effect.Effect<void>
  /** Runs `effect` beside the connection, interrupted when it closes. */
  readonly fork: (effect: Effect.Effect<void, never, Amp>) => Fiber.RuntimeFiber<void, never>
  /** Keeps `fiber` as the protocol the connection was handed to (`Amp.done` waits for it). */
  readonly handedTo: (fiber: Fiber.RuntimeFiber<void, never>) => void
}

/**
 * Run by the dispatcher in the reader, after the responder's success: sends
 * the answer and does what the command does at the boundary.
 */
export type AtBoundary = (result: unknown, kit: Answering) => Effect.Effect<void>

/** The asking side. */
export interface Asking {
  readonly boundary: Boundary
  /**
   * Sends the request `build` makes and waits for the reply. `afterSend` runs
   * once it is queued; `atBoundary` runs in the reader when the reply comes,
   * with the reader held, and completes the call through `resume`, with the
   * reply or with a failure of the boundary operation (`E`).
   */
  readonly ask: <E = never>(
    command: Command.Any,
    build: () => BoxBuilder,
    timeout: Duration.DurationInput | undefined,
    afterSend: () => void,
    atBoundary: (resume: (exit: Exit.Exit<AmpBox, CallFailure | E>) => void) => (reply: AmpBox, ok: boolean) => Effect.Effect<void>
  ) => Effect.Effect<AmpBox, CallFailure | E>
  /** The typed failure an error reply stands for. */
  readonly remoteError: (command: Command.Any, reply: AmpBox) => CallFailure
}
