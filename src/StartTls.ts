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
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import * as Command from "./Command.js"
import * as Responders from "./Responders.js"
import type { TlsOptions } from "./Transport.js"

/** The `StartTLS` command. */
export const StartTLS = Command.makeKind("StartTLS", "starttls")

/**
 * Answers the peer's StartTLS with these TLS settings (certificate, key, and
 * authorities to verify the peer). Fail to refuse: the peer gets the error.
 *
 * @example
 * Responders.layer(StartTls.respond(() => Effect.succeed({ cert, key })))
 */
export const respond = <E, R>(handler: () => Effect.Effect<TlsOptions, E, R>) =>
  Responders.respondKind(StartTLS, () => handler())
