/**
 * What the box protocol lends the dispatcher and the connection-changing
 * commands beyond the public `BinaryBoxProtocol`: a send that never
 * suspends, whether a send would wait, the operations at a box boundary, and
 * descriptor passing.
 *
 * They are the hot path and the StartTLS/switch machinery, not something a
 * user calls: keyed by a symbol the package does not export (as
 * `transportFastPath.ts` does for transports), so the public type stays small.
 *
 * Internal (not exported by the package), as everything under `src/internal/`.
 */
import type * as Effect from "effect/Effect"
import type { AmpBox } from "../AmpBox.js"
import type { OnlyOneTLS, ProtocolSwitched, TlsError, TransportUnsupported } from "../AmpError.js"
import type { BinaryBoxProtocol, BoxReceiver } from "../BinaryBoxProtocol.js"
import type { RawConnection, TlsOptions, TlsUpgrade } from "../Transport.js"
import type { DescriptorChannel } from "./descriptors.js"

/** The key of a protocol's {@link ProtocolInternals}. */
export const ProtocolInternalsId: unique symbol = Symbol.for("effect-amp/BinaryBoxProtocol/Internals")

/**
 * The private machinery behind `StartTLS` and `ProtocolSwitchCommand`.
 * `startTls` and `switchTo` must run while the reader is held by the receiver
 * (inside the Effect returned by `ampBoxReceived`), or before it starts, so
 * that no byte past the boundary has been parsed.
 *
 * Methods: call them on the object (`boundary.startTls(...)`), do not detach them.
 */
export interface Boundary {
  /** Holds back every box sent from now on until `startTls` or `cancelTls` (the asking side). Throws `OnlyOneTLS`. */
  prepareTls(): void
  /** Flushes plaintext, starts TLS with the bytes read past the boundary, then sends the held boxes. */
  startTls(options: TlsOptions): Effect.Effect<TlsUpgrade, OnlyOneTLS | TransportUnsupported | TlsError>
  /** The StartTLS request failed: send the held boxes in plaintext. (Twisted leaves them stuck.) */
  cancelTls(): void
  /** Refuses further `sendBox` with `ProtocolSwitched` (the side that asked to switch). Throws `ProtocolSwitched` once switched. */
  lockForSwitch(): void
  /** The switch was refused: boxes may flow again (Twisted's `_unlockFromSwitch`). */
  unlockFromSwitch(): void
  /** Flushes, stops reading boxes, and gives the raw connection (with every byte read past the boundary) away. */
  readonly switchTo: Effect.Effect<RawConnection, TransportUnsupported | ProtocolSwitched>
  /** Whether TLS has started (or is being prepared) on this connection. */
  isTlsActive(): boolean
  /** Whether the transport can start TLS at all (see `Transport.canStartTls`). */
  readonly canStartTls: boolean
}

/** The internal side of a protocol (see the module's comment). Methods: call them on the object. */
export interface ProtocolInternals {
  /** `sendBox` without the Effect: throws the same errors; never waits. For the dispatcher's hot paths. */
  unsafeSendBox(box: AmpBox): void
  /** Whether `sendBox` would wait for the transport to drain. */
  isBlocked(): boolean
  /** `startReceivingBoxes`, called as a method (the public one is a bound function, made when read). */
  receiveInFiber(receiver: BoxReceiver): Effect.Effect<void>
  /** `receiveBoxes`, called as a method. */
  receiveHere(receiver: BoxReceiver): Effect.Effect<void>
  /** Operations at a box boundary, used by the StartTLS and protocol-switch commands. */
  readonly boundary: Boundary
  /** The transport's descriptor passing, when it has it (for `Argument.Descriptor`). */
  readonly descriptors: DescriptorChannel | undefined
}

interface Carrier {
  readonly [ProtocolInternalsId]?: ProtocolInternals
}

/**
 * The internals of a protocol made by `BinaryBoxProtocol.make`. Throws for
 * any other object: the dispatcher cannot run over a protocol without them.
 */
export const internalsOf = (protocol: BinaryBoxProtocol): ProtocolInternals => {
  const internals = (protocol as Carrier)[ProtocolInternalsId]
  if (internals === undefined) throw new TypeError("effect-amp: not a protocol made by BinaryBoxProtocol.make")
  return internals
}
