/**
 * Every error effect-amp can produce, as tagged errors carrying the facts.
 *
 * Names follow Twisted's `twisted.protocols.amp` where Twisted has one, so a
 * reader of either code base can find the other's counterpart.
 *
 * @since 0.1.0
 */
import { AmpErrorTypeId, AmpTaggedError } from "./internal/ampTaggedError.js"
import { quoteKey } from "./internal/messages.js"

// ---------------------------------------------------------------------------
// The common mark
// ---------------------------------------------------------------------------

export { AmpErrorTypeId }

// ---------------------------------------------------------------------------
// Codec
// ---------------------------------------------------------------------------

/**
 * A key or value outside the lengths AMP can carry: keys are 1..255 bytes,
 * values 0..65535 bytes. `isLocal` is true when we refused to send it, false
 * when a peer sent it.
 */
export class TooLong extends AmpTaggedError("TooLong")<{
  readonly isKey: boolean
  readonly isLocal: boolean
  /** The offending key (for a value, the key it belongs to). */
  readonly key: string
  readonly length: number
}> {
  override get message(): string {
    if (this.isKey && this.length === 0) {
      return "an AMP key cannot be empty: the empty key marks the end of a box"
    }
    const what = this.isKey ? `key ${quoteKey(this.key)}` : `value of key ${JSON.stringify(this.key)}`
    const limit = this.isKey ? 255 : 65535
    return `${this.isLocal ? "cannot send" : "peer sent"} ${what}: ${this.length} bytes, the limit is ${limit}`
  }
}

/** A key that is not a byte string (a character above U+00FF). See `AmpBox.keyFromUtf8`. */
export class InvalidKey extends AmpTaggedError("InvalidKey")<{
  readonly key: string
}> {
  override get message(): string {
    return `key ${JSON.stringify(this.key)} is not a byte string (characters above U+00FF); spell it with AmpBox.keyFromUtf8`
  }
}

/**
 * A key length prefix over 255. Twisted drops the connection at this point;
 * so do we, after delivering every box before it.
 */
export class LengthLimitExceeded extends AmpTaggedError("LengthLimitExceeded")<{
  /** The length the prefix announced. */
  readonly length: number
  /** Byte offset of the prefix in the stream. */
  readonly offset: number
}> {
  override get message(): string {
    return `key length prefix ${this.length} at byte ${this.offset} exceeds the AMP key limit of 255 bytes`
  }
}

/** The byte stream ended inside a box. */
export class IncompleteBox extends AmpTaggedError("IncompleteBox")<{
  /** Byte offset where the unfinished box started. */
  readonly boxOffset: number
  /** Byte offset where the stream ended. */
  readonly endOffset: number
  /** What the decoder was waiting for. */
  readonly expecting: "key length" | "key" | "value length" | "value"
}> {
  override get message(): string {
    return `stream ended at byte ${this.endOffset} inside the box that starts at byte ${this.boxOffset} (expecting ${this.expecting})`
  }
}

/** A peer's box over the configured size or key-count limit. */
export class BoxTooLarge extends AmpTaggedError("BoxTooLarge")<{
  readonly limit: "bytes" | "keys"
  readonly max: number
  /** Byte offset where the box started. */
  readonly boxOffset: number
}> {
  override get message(): string {
    return this.limit === "bytes"
      ? `box starting at byte ${this.boxOffset} is larger than the limit of ${this.max} bytes`
      : `box starting at byte ${this.boxOffset} has more than the limit of ${this.max} keys`
  }
}

/** Anything the decoder can refuse. */
export type DecodeError = LengthLimitExceeded | IncompleteBox | BoxTooLarge

/** Anything the encoder can refuse. */
export type EncodeError = TooLong | InvalidKey

/** Whether `e` is one of the decoder's refusals (and not, say, a bug that threw). */
export const isDecodeError = (e: unknown): e is DecodeError =>
  e instanceof LengthLimitExceeded || e instanceof IncompleteBox || e instanceof BoxTooLarge

/** Whether `e` is one of the encoder's refusals. */
export const isEncodeError = (e: unknown): e is EncodeError => e instanceof TooLong || e instanceof InvalidKey

/**
 * The peer held a partial box longer than the protocol's `partialBoxTimeout`
 * (a limit Twisted lacks): the connection is closed.
 */
export class PartialBoxTimeout extends AmpTaggedError("PartialBoxTimeout")<{
  readonly millis: number
  /** Bytes of the unfinished box received. */
  readonly buffered: number
  /** Byte offset where the unfinished box started. */
  readonly boxOffset: number
}> {
  override get message(): string {
    return `the peer held a partial box (${this.buffered} bytes from byte ${this.boxOffset}) for more than ${this.millis} ms`
  }
}

// ---------------------------------------------------------------------------
// Connection
// ---------------------------------------------------------------------------

/** The connection ended. `reason` says how; `cause` holds the underlying error, if any. */
export class ConnectionLost extends AmpTaggedError("ConnectionLost")<{
  readonly reason: "closed" | "closed by us" | "reset" | "error"
  readonly detail?: string
  readonly cause?: unknown
}> {
  override get message(): string {
    const base = this.reason === "closed"
      ? "connection closed by the peer"
      : this.reason === "closed by us"
      ? "connection closed locally"
      : this.reason === "reset"
      ? "connection reset"
      : "connection failed"
    return this.detail ? `${base}: ${this.detail}` : base
  }
}

/** The connection switched to another protocol: AMP boxes can no longer be sent. */
export class ProtocolSwitched extends AmpTaggedError("ProtocolSwitched")<{
  readonly detail?: string
}> {
  override get message(): string {
    return this.detail ?? "this connection has switched protocols: no AMP traffic allowed"
  }
}

/** A connection could not be made. */
export class ConnectError extends AmpTaggedError("ConnectError")<{
  readonly address: string
  readonly reason: "refused" | "unreachable" | "timeout" | "not found" | "tls" | "other"
  readonly cause?: unknown
}> {
  override get message(): string {
    const c = this.cause instanceof Error ? `: ${this.cause.message}` : ""
    return `cannot connect to ${this.address} (${this.reason})${c}`
  }
}

/** A listener could not be opened. */
export class ListenError extends AmpTaggedError("ListenError")<{
  readonly address: string
  readonly cause?: unknown
}> {
  override get message(): string {
    const c = this.cause instanceof Error ? `: ${this.cause.message}` : ""
    return `cannot listen on ${this.address}${c}`
  }
}

/** An operation the transport cannot do (for example StartTLS on a pipe). */
export class TransportUnsupported extends AmpTaggedError("TransportUnsupported")<{
  readonly operation: string
  readonly transport: string
}> {
  override get message(): string {
    return `${this.operation} is not supported by the ${this.transport} transport`
  }
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

/** StartTLS on a connection that already runs TLS. */
export class OnlyOneTLS extends AmpTaggedError("OnlyOneTLS")<{
  readonly detail?: string
}> {
  override get message(): string {
    return this.detail ?? "this connection already runs TLS: StartTLS can happen only once"
  }
}

/** The peer refused our certificate during the TLS handshake. */
export class PeerVerifyError extends AmpTaggedError("PeerVerifyError")<{
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `the peer rejected our certificate: ${this.detail}`
  }
}

/** The TLS handshake failed (our verification of the peer, protocol errors, a cut-off handshake). */
export class TlsError extends AmpTaggedError("TlsError")<{
  readonly detail: string
  readonly code?: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `TLS failed: ${this.detail}${this.code ? ` (${this.code})` : ""}`
  }
}

/** Why a connection ended, as seen by calls that were outstanding. */
export type ConnectionEnded =
  | ConnectionLost
  | LengthLimitExceeded
  | IncompleteBox
  | BoxTooLarge
  | PeerVerifyError
  | TlsError
  | NoEmptyBoxes
  | MalformedAmpBox
  | PartialBoxTimeout

// ---------------------------------------------------------------------------
// Request / response
// ---------------------------------------------------------------------------

/** A box that is neither a command, an answer nor an error. Ends the connection, as in Twisted. */
export class NoEmptyBoxes extends AmpTaggedError("NoEmptyBoxes")<{
  readonly keys: ReadonlyArray<string>
}> {
  override get message(): string {
    return `received a box that is neither a command, an answer nor an error (keys: ${this.keys.map((k) => JSON.stringify(k)).join(", ") || "none"})`
  }
}

/** Arguments that do not match a command's signature, refused before anything is sent. */
export class InvalidSignature extends AmpTaggedError("InvalidSignature")<{
  readonly command: string
  readonly detail: string
}> {
  override get message(): string {
    return `invalid arguments for ${this.command}: ${this.detail}`
  }
}

/** A box from the peer that does not fit the command's declared response or arguments. */
export class MalformedAmpBox extends AmpTaggedError("MalformedAmpBox")<{
  readonly command: string
  readonly detail: string
}> {
  override get message(): string {
    return `malformed box for ${this.command}: ${this.detail}`
  }
}

/** Our responder returned something that cannot be encoded; the peer gets `UNKNOWN`. */
export class BadLocalReturn extends AmpTaggedError("BadLocalReturn")<{
  readonly command: string
  readonly detail: string
}> {
  override get message(): string {
    return `responder for ${this.command} returned a value that cannot be encoded: ${this.detail}`
  }
}

/** The peer answered with an error code that the command does not map to a typed error. */
export class RemoteAmpError extends AmpTaggedError("RemoteAmpError")<{
  readonly command: string
  readonly errorCode: string
  readonly description: string
}> {
  override get message(): string {
    return `${this.command} failed remotely: ${this.errorCode}: ${this.description}`
  }
}

/** The peer failed in a way it did not describe (`UNKNOWN`); Twisted closes the connection after it. */
export class UnknownRemoteError extends AmpTaggedError("UnknownRemoteError")<{
  readonly command: string
  readonly description: string
}> {
  override get message(): string {
    return `${this.command} failed remotely with an unknown error: ${this.description}`
  }
}

/** The peer has no responder for the command (`UNHANDLED`). */
export class UnhandledCommand extends AmpTaggedError("UnhandledCommand")<{
  readonly command: string
  readonly description: string
}> {
  override get message(): string {
    return `the peer does not handle ${this.command}: ${this.description}`
  }
}

/** A call that did not complete within its timeout. Its tag is forgotten; a late answer is dropped. */
export class CallTimeout extends AmpTaggedError("CallTimeout")<{
  readonly command: string
  readonly millis: number
}> {
  override get message(): string {
    return `${this.command} got no answer within ${this.millis} ms`
  }
}

/** Too many calls waiting for answers on one connection. */
export class TooManyOutstandingCalls extends AmpTaggedError("TooManyOutstandingCalls")<{
  readonly limit: number
}> {
  override get message(): string {
    return `more than ${this.limit} calls are waiting for answers on this connection`
  }
}

/** The wire codes AMP reserves. */
export const UNKNOWN_ERROR_CODE = "UNKNOWN"
export const UNHANDLED_ERROR_CODE = "UNHANDLED"

// ---------------------------------------------------------------------------
// Pools
// ---------------------------------------------------------------------------

/** The pool has as many calls waiting as it may hold (`maxQueued`). */
export class PoolQueueFull extends AmpTaggedError("PoolQueueFull")<{
  readonly pool: string
  readonly limit: number
}> {
  override get message(): string {
    return `pool ${this.pool}: ${this.limit} calls are already waiting for a worker`
  }
}

/** The pool is shutting down, or has: no new call is taken. */
export class PoolClosed extends AmpTaggedError("PoolClosed")<{
  readonly pool: string
}> {
  override get message(): string {
    return `pool ${this.pool} is closed`
  }
}

/** The call ran past the pool's timeout; the worker it ran on was killed and is replaced. */
export class WorkerTimeout extends AmpTaggedError("WorkerTimeout")<{
  readonly pool: string
  readonly worker: string
  readonly command: string
  readonly millis: number
}> {
  override get message(): string {
    return `pool ${this.pool}: ${this.command} got no answer from worker ${this.worker} within ${this.millis} ms; the worker was killed`
  }
}

/** The connection to the worker ended while the call was on it (the worker crashed or went away). */
export class WorkerCrashed extends AmpTaggedError("WorkerCrashed")<{
  readonly pool: string
  readonly worker: string
  readonly command: string
  readonly cause: ConnectionEnded | ProtocolSwitched
}> {
  override get message(): string {
    return `pool ${this.pool}: worker ${this.worker} went away during ${this.command}: ${this.cause.message}`
  }
}

/** No worker could be started for the call, and none was running. */
export class WorkerStartFailed extends AmpTaggedError("WorkerStartFailed")<{
  readonly pool: string
  readonly cause: unknown
}> {
  override get message(): string {
    const detail = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `pool ${this.pool}: no worker could be started: ${detail}`
  }
}

/**
 * No member of a remote pool (or a `Reconnecting` connection) is up: the
 * pool fails fast (`whenDown: "fail"`), a call waited `waitTimeout` in vain,
 * or reconnecting gave up (its backoff schedule ended).
 */
export class NoMemberAvailable extends AmpTaggedError("NoMemberAvailable")<{
  readonly pool: string
  readonly members: number
}> {
  override get message(): string {
    return `pool ${this.pool}: none of its ${this.members} members is connected`
  }
}

/**
 * Any of a pool's own failures (`AmpPool`, `RemotePool`), on top of the
 * call's own errors.
 */
export type PoolError = PoolQueueFull | PoolClosed | WorkerTimeout | WorkerCrashed | WorkerStartFailed | NoMemberAvailable

// ---------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------

/**
 * A value that does not fit its argument type, on either side of the wire.
 *
 * @since 0.1.0
 */
export class ArgumentError extends AmpTaggedError("ArgumentError")<{
  readonly typeName: string
  readonly detail: string
}> {
  override get message(): string {
    return `${this.typeName}: ${this.detail}`
  }
}

// ---------------------------------------------------------------------------
// All of them
// ---------------------------------------------------------------------------

/**
 * A mistake of our own caller, found before anything is sent: a value over
 * AMP's limits (`TooLong`), a key AMP cannot carry (`InvalidKey`), arguments
 * that do not fit the command (`InvalidSignature`). Typed rather than
 * defects, because they usually come from data (a text too long for
 * `Unicode`), not from the code. Nothing was written; the connection is
 * untouched.
 */
export type CallerMistake = InvalidSignature | EncodeError

/** The peer answered with an error box that is not one of the command's errors. */
export type RemoteFailure = RemoteAmpError | UnknownRemoteError | UnhandledCommand

/**
 * Every error effect-amp makes (your commands' error classes aside). Narrow
 * with `_tag`, or tell ours from anything else with {@link isAmpError}.
 *
 * @since 0.1.0
 */
export type AmpError =
  | DecodeError
  | EncodeError
  | ConnectionEnded
  | ProtocolSwitched
  | ConnectError
  | ListenError
  | TransportUnsupported
  | OnlyOneTLS
  | InvalidSignature
  | BadLocalReturn
  | RemoteFailure
  | CallTimeout
  | TooManyOutstandingCalls
  | PoolError
  | ArgumentError

/**
 * Whether `u` is one of effect-amp's errors (it carries `AmpErrorTypeId`).
 *
 * @since 0.1.0
 */
export const isAmpError = (u: unknown): u is AmpError =>
  typeof u === "object" && u !== null && AmpErrorTypeId in u
