/**
 * What NodeTransport knows of TLS and socket errors: how a socket error maps
 * to the protocol's typed causes, the session of a `TLSSocket`, and our
 * `TlsOptions` as Node's. Public through `NodeTransport`.
 *
 * Internal: not exported by the package. (Not tagged internal for tsc:
 * `stripInternal` would drop this file's first import from its .d.ts.)
 */
import type * as tls from "node:tls"
import { ConnectionLost, PeerVerifyError, TlsError } from "../../AmpError.js"
import type { PeerCertificate, TlsOptions, TlsSession } from "../../Transport.js"

/** What ends a read: the connection, or TLS under it. */
export type ReadError = ConnectionLost | TlsError | PeerVerifyError

/** Where the connection stood when an error came: plain bytes, a TLS handshake, or TLS. */
export type During = "plain" | "handshake" | "tls"

/** Codes OpenSSL gives when *we* refuse the peer's certificate. */
const localVerifyCodes = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
  "INVALID_CA",
  "ERR_TLS_CERT_ALTNAME_INVALID"
])

/** Alerts a peer sends when it refuses our certificate (or that we did not send one). */
const peerRefusal = /ALERT_(BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|CERTIFICATE_REQUIRED|ACCESS_DENIED|UNSUPPORTED_CERTIFICATE|CERTIFICATE_EXPIRED|CERTIFICATE_REVOKED|HANDSHAKE_FAILURE)/

/**
 * Maps a socket error to the typed cause the protocol reports. `during`
 * says where the connection stood: plain bytes, a TLS handshake, or TLS.
 *
 * @since 0.1.0
 */
export const mapError = (error: unknown, during: During): ReadError => {
  const e = error as Partial<NodeJS.ErrnoException> | undefined
  const code = typeof e?.code === "string" ? e.code : ""
  const message = typeof e?.message === "string" ? e.message : String(error)
  if (during !== "plain") {
    if (peerRefusal.test(code)) return new PeerVerifyError({ detail: message, cause: error })
    if (localVerifyCodes.has(code)) {
      return new TlsError({ detail: `the peer's certificate was refused: ${message}`, code, cause: error })
    }
    if (code.startsWith("ERR_SSL") || code.startsWith("ERR_TLS")) return new TlsError({ detail: message, code, cause: error })
    if (during === "handshake" && (code === "ECONNRESET" || code === "EPIPE")) {
      // Twisted's reading too: a peer that hangs up mid-handshake did not like our certificate.
      return new PeerVerifyError({ detail: `the peer dropped the connection during the TLS handshake (${message})`, cause: error })
    }
  }
  const reason = code === "ECONNRESET" || code === "EPIPE" ? "reset" : "error"
  return new ConnectionLost({ reason, detail: message, cause: error })
}

/** A certificate name (subject, issuer) without Node's absent fields. */
const nameOf = (name: tls.Certificate): Record<string, string | ReadonlyArray<string>> => {
  const out: Record<string, string | ReadonlyArray<string>> = {}
  for (const [k, v] of Object.entries(name)) if (v !== undefined) out[k] = v
  return out
}

const certificateOf = (socket: tls.TLSSocket): PeerCertificate | undefined => {
  const c = socket.getPeerCertificate(false) as tls.PeerCertificate | null | undefined
  if (c === null || c === undefined || Object.keys(c).length === 0) return undefined
  return {
    subject: nameOf(c.subject),
    issuer: nameOf(c.issuer),
    fingerprint256: c.fingerprint256,
    validFrom: c.valid_from,
    validTo: c.valid_to,
    raw: new Uint8Array(c.raw)
  }
}

/**
 * The chain-verification verdict on the peer of a `TLSSocket`. A server-side
 * `TLSSocket` made outside `tls.Server` does not act on it (Node checks it in
 * `tls.Server` only), so we do, as `tls.Server` does.
 */
export const verifyErrorOf = (socket: tls.TLSSocket): Error | undefined =>
  (socket as unknown as { ssl?: { verifyError?: () => Error | null } }).ssl?.verifyError?.() ?? undefined

/**
 * The TLS session of a connected `TLSSocket`.
 *
 * @since 0.1.0
 */
export const sessionOf = (socket: tls.TLSSocket, authorized: boolean = socket.authorized): TlsSession => {
  const peerCertificate = certificateOf(socket)
  const protocol = socket.getProtocol()
  const cipher = socket.getCipher()?.name
  return {
    authorized,
    ...(peerCertificate ? { peerCertificate } : {}),
    ...(protocol ? { protocol } : {}),
    ...(cipher ? { cipher } : {})
  }
}

const toBuffer = (x: string | Uint8Array): string | Buffer => (typeof x === "string" ? x : Buffer.from(x))

/**
 * `tls.SecureContextOptions` from our `TlsOptions`.
 *
 * @since 0.1.0
 */
export const secureContextOptions = (options: TlsOptions): tls.SecureContextOptions => {
  const out: tls.SecureContextOptions = {}
  if (options.cert !== undefined) out.cert = toBuffer(options.cert)
  if (options.key !== undefined) out.key = toBuffer(options.key)
  if (options.ca !== undefined) {
    const ca = options.ca
    out.ca = typeof ca === "string" || ca instanceof Uint8Array ? toBuffer(ca) : ca.map(toBuffer)
  }
  return out
}
/** A read error as the `ConnectionLost` a raw connection reports. */
export const toConnectionLost = (error: ReadError): ConnectionLost =>
  error._tag === "ConnectionLost" ? error : new ConnectionLost({ reason: "error", detail: error.message, cause: error })
