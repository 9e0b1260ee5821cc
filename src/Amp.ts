/**
 * `Amp`: one AMP connection as seen by application code. Call the peer,
 * upgrade to TLS, switch protocols; responders reach it with `yield* Amp`
 * to call back (AMP is symmetric).
 *
 * The implementation is `BoxDispatcher`; this module holds only the service
 * shape so that responders can depend on it without a cycle.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type { AmpBox, ValueInput } from "./AmpBox.js"
import type {
  CallerMistake,
  CallTimeout,
  ConnectionEnded,
  OnlyOneTLS,
  PeerVerifyError,
  ProtocolSwitched,
  RemoteFailure,
  TlsError,
  TooManyOutstandingCalls,
  TransportUnsupported
} from "./AmpError.js"
import type { BinaryBoxProtocol } from "./BinaryBoxProtocol.js"
import type * as Command from "./Command.js"
import type { ConnectionInfo, RawConnection, TlsOptions, TlsSession } from "./Transport.js"

/** Per-call options. */
export interface CallOptions {
  /** Fail with `CallTimeout` (and forget the tag) when no answer comes in time. */
  readonly timeout?: Duration.DurationInput
}

/**
 * What any call can fail with, whatever the command, by situation: the peer
 * refused it (`RemoteFailure`), the connection ended under it
 * (`ConnectionEnded`, `ProtocolSwitched`), it waited too long or too many
 * were out (`CallTimeout`, `TooManyOutstandingCalls`), or our own caller
 * passed what AMP cannot send (`CallerMistake`: nothing was written).
 */
export type CallFailure =
  | RemoteFailure
  | ConnectionEnded
  | ProtocolSwitched
  | CallTimeout
  | TooManyOutstandingCalls
  | CallerMistake

/**
 * What `callRemote(command, ...)` can fail with: the command's own errors,
 * then the rest. The signatures below spell it out as
 * `Command.Error<C> | CallFailure`, so that a hover shows the errors
 * (`ZeroDivision | CallFailure`) rather than this alias of the command.
 */
export type CallError<C extends Command.Any> = Command.Error<C> | CallFailure

/** What StartTLS can fail with. */
export type StartTlsError = CallFailure | OnlyOneTLS | TlsError | PeerVerifyError | TransportUnsupported

/**
 * One AMP connection.
 *
 * @since 0.1.0
 */
export interface Amp {
  /**
   * Calls `command` on the peer. With `requiresAnswer: false` nothing is
   * awaited and the result is `{}`.
   */
  readonly callRemote: <C extends Command.Any>(
    command: C,
    args: Command.Arguments<C>,
    options?: CallOptions
  ) => Effect.Effect<Command.Response<C>, Command.Error<C> | CallFailure>
  /**
   * The low-level call: a raw box out (`_command` and `_ask` are added), the
   * raw answer box back (Twisted's `callRemoteString`).
   */
  readonly callRemoteString: (
    command: string,
    fields?: Readonly<Record<string, ValueInput>>,
    options?: CallOptions & { readonly requiresAnswer?: boolean }
  ) => Effect.Effect<AmpBox, CallFailure>
  /**
   * Asks the peer for StartTLS, then runs the handshake over this connection.
   * Boxes sent meanwhile are held and go out encrypted. Completes once the
   * handshake has.
   */
  readonly startTls: (options?: TlsOptions & CallOptions) => Effect.Effect<TlsSession, StartTlsError>
  /**
   * Calls a protocol-switch command. On success, the connection belongs to the
   * caller as a `RawConnection`, starting with any bytes that followed the answer.
   */
  readonly switchProtocol: <C extends Command.Any>(
    command: C,
    args: Command.Arguments<C>,
    options?: CallOptions
  ) => Effect.Effect<{ readonly response: Command.Response<C>; readonly connection: RawConnection }, Command.Error<C> | CallFailure | TransportUnsupported>
  /** Addresses, and the TLS session once there is one. */
  readonly info: () => ConnectionInfo
  /** Completes with the reason once the connection has ended or switched. */
  readonly ended: Effect.Effect<ConnectionEnded | ProtocolSwitched>
  /** Completes when the connection is finished, including a protocol it switched to. */
  readonly done: Effect.Effect<void>
  /** Closes the connection gracefully (queued boxes go out first). */
  readonly close: Effect.Effect<void>
  /**
   * Closes the connection gracefully once the work in hand is done: no new
   * command is dispatched (the connection stops reading), running responders
   * get up to `timeout` to answer, those still running then are answered with
   * an `UNKNOWN` error saying the server shut down, and the connection closes
   * after writing everything queued. A server's shutdown runs this on every
   * connection.
   */
  readonly drain: (timeout: Duration.DurationInput) => Effect.Effect<void>
  /** The box layer underneath, for raw boxes. */
  readonly protocol: BinaryBoxProtocol
}

/**
 * The connection in context: in a client program, and inside responders.
 *
 * @since 0.1.0
 */
export const Amp: Context.Tag<Amp, Amp> = Context.GenericTag<Amp>("effect-amp/Amp")
