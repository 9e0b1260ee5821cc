/**
 * StartTLS: upgrade a running AMP connection to TLS between two boxes.
 *
 * On the wire it is the command `StartTLS` with no arguments and an empty
 * answer: Twisted's `tls_localCertificate` and `tls_verifyAuthorities` never
 * leave the process, and neither do our `TlsOptions`. The side that asks
 * holds back its boxes until the answer, then starts the handshake; the side
 * that answers starts it right after sending the answer. TLS roles follow the
 * connection: whoever connected is the TLS client.
 *
 * Without a StartTLS responder, a peer's StartTLS on a socket is answered as
 * Twisted's default responder does: TLS with a throwaway self-signed
 * certificate (CN `effect-amp`), encrypted but not authenticated. On a pipe
 * or in memory, or with the dispatcher option `defaultStartTls: false`, it is
 * answered `UNHANDLED`.
 *
 * Both sides live here, as Twisted keeps them with its `StartTLS` command
 * (`_doCommand`, `_TLSBox`): the dispatcher only runs them at the boundary.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { CallOptions, StartTlsError } from "./Amp.js"
import { ConnectionLost, OnlyOneTLS } from "./AmpError.js"
import { BoxBuilder } from "./BoxBuilder.js"
import * as Command from "./Command.js"
import type { Answering, Asking } from "./internal/boundaryCommand.js"
import * as SelfSigned from "./internal/selfSignedCertificate.js"
import type { TlsOptions, TlsSession } from "./Transport.js"

/** The `StartTLS` command. */
export const StartTLS = Command.makeKind("StartTLS", "starttls")

/** The answering side, in the reader held right after the request: answer, then start TLS on the bytes behind it. */
const startAfterAnswer = (result: unknown, kit: Answering): Effect.Effect<void> => {
  if (!kit.asked) return Effect.void
  if (kit.boundary.isTlsActive()) {
    kit.refuse("TLS_ERROR", new OnlyOneTLS({}).message)
    return Effect.void
  }
  kit.answer()
  return Effect.matchEffect(kit.boundary.startTls(result as TlsOptions), {
    onFailure: (e) => kit.fail(new ConnectionLost({ reason: "error", detail: e.message, cause: e })),
    // Nobody waits for the handshake on this side: a failed one also fails the transport's
    // incoming bytes (every Transport's contract), which ends the connection with its typed cause.
    onSuccess: (upgrade) => Effect.sync(() => void kit.fork(Effect.ignore(upgrade.handshake)))
  })
}

/**
 * Answers the peer's StartTLS with these TLS settings (certificate, key, and
 * authorities to verify the peer).
 *
 * `StartTLS` declares no errors (nor does Twisted's), so the handler has
 * none to fail with: one that dies is answered `UNKNOWN` and the connection
 * ends, as for any responder's undeclared failure (Twisted's behaviour).
 *
 * @example
 * Responders.layer(StartTls.respond(() => Effect.succeed({ cert, key })))
 */
export const respond = <R>(handler: () => Effect.Effect<TlsOptions, never, R>): Command.Responder<R> => ({
  _tag: "Responder",
  command: StartTLS,
  handle: () => handler(),
  atBoundary: startAfterAnswer
})

/** @internal Twisted's `_defaultStartTLSResponder`: TLS with a certificate made for the process. */
export const defaultResponder: Command.Responder = respond(() => Effect.sync(SelfSigned.forProcess))

/** @internal `Amp.startTls`: asks, holds our boxes until the answer, then runs the handshake. */
export const ask = (kit: Asking, options: TlsOptions & CallOptions = {}): Effect.Effect<TlsSession, StartTlsError> =>
  Effect.suspend(() => {
    const { timeout, ...tls } = options
    if (kit.boundary.isTlsActive()) return Effect.fail(new OnlyOneTLS({}))
    let handshake: Effect.Effect<TlsSession, StartTlsError> | undefined
    const asked = kit.ask<StartTlsError>(
      StartTLS,
      () => new BoxBuilder().set("_command", StartTLS.wire.nameBytes),
      timeout,
      () => kit.boundary.prepareTls(),
      (resume) => (reply, ok) =>
        ok
          ? Effect.matchEffect(kit.boundary.startTls(tls), {
            onFailure: (e) => Effect.sync(() => resume(Exit.fail(e))),
            onSuccess: (upgrade) =>
              Effect.sync(() => {
                handshake = upgrade.handshake
                resume(Exit.succeed(reply))
              })
          })
          : Effect.sync(() => {
            kit.boundary.cancelTls()
            resume(Exit.fail(kit.remoteError(StartTLS, reply)))
          })
    )
    return Effect.flatMap(asked, () => handshake!)
  })
