/**
 * A throwaway self-signed certificate, for the default StartTLS responder.
 *
 * Twisted's default responder makes one so that a peer asking for StartTLS
 * without certificates still gets TLS (encrypted, not authenticated), and
 * anonymous cipher suites are refused by today's OpenSSL. Node's crypto can
 * make keys and sign, but not write X.509, so the few DER structures a
 * certificate needs are written here (RFC 5280, §4.1): about fifty lines
 * against a dependency tree for one call.
 *
 * The key is ECDSA P-256 (made in about a millisecond; Twisted's RSA-2048
 * takes 0.1–0.2 s), signed with SHA-256, valid from a day ago for a year.
 */
import * as crypto from "node:crypto"

/** A certificate and its private key, both PEM. */
export interface SelfSigned {
  readonly cert: string
  readonly key: string
}

// DER: tag, definite length, contents.
const der = (tag: number, ...contents: ReadonlyArray<Uint8Array>): Buffer => {
  const body = Buffer.concat(contents)
  const n = body.length
  const length = n < 0x80
    ? Buffer.from([n])
    : n < 0x100
    ? Buffer.from([0x81, n])
    : Buffer.from([0x82, n >> 8, n & 0xff])
  return Buffer.concat([Buffer.from([tag]), length, body])
}
const sequence = (...items: ReadonlyArray<Uint8Array>) => der(0x30, ...items)
const set = (...items: ReadonlyArray<Uint8Array>) => der(0x31, ...items)
const integer = (bytes: Uint8Array) => der(0x02, bytes)
const utf8 = (text: string) => der(0x0c, Buffer.from(text, "utf8"))
const bitString = (bytes: Uint8Array) => der(0x03, Buffer.from([0]), bytes)
const explicit = (n: number, item: Uint8Array) => der(0xa0 + n, item)

const oid = (dotted: string): Buffer => {
  const [a, b, ...rest] = dotted.split(".").map(Number)
  const out = [a! * 40 + b!]
  for (const arc of rest) {
    const base128 = [arc & 0x7f]
    for (let v = arc >>> 7; v > 0; v >>>= 7) base128.unshift((v & 0x7f) | 0x80)
    out.push(...base128)
  }
  return der(0x06, Buffer.from(out))
}

// UTCTime (YYMMDDHHMMSSZ) holds years 1950 to 2049; a year's validity from now fits.
const utcTime = (date: Date): Buffer => der(0x17, Buffer.from(date.toISOString().replace(/[-:T]|\.\d+/g, "").slice(2), "latin1"))

const ECDSA_WITH_SHA256 = sequence(oid("1.2.840.10045.4.3.2"))
const commonName = (cn: string) => sequence(set(sequence(oid("2.5.4.3"), utf8(cn))))

const DAY = 86_400_000

/**
 * Makes a new self-signed certificate for `commonName` (default `effect-amp`).
 */
export const make = (cn = "effect-amp", now = new Date()): SelfSigned => {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
  const serial = crypto.randomBytes(16)
  serial[0] = serial[0]! & 0x7f || 0x01 // positive, and no leading zero byte
  const name = commonName(cn)
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))), // v3
    integer(serial),
    ECDSA_WITH_SHA256,
    name,
    sequence(utcTime(new Date(now.getTime() - DAY)), utcTime(new Date(now.getTime() + 365 * DAY))),
    name,
    publicKey.export({ type: "spki", format: "der" })
  )
  const signature = crypto.sign("sha256", tbs, privateKey)
  const certificate = sequence(tbs, ECDSA_WITH_SHA256, bitString(signature))
  const base64 = certificate.toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "")
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${base64}\n-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: "pkcs8", format: "pem" }).toString()
  }
}

let shared: SelfSigned | undefined

/**
 * The process's throwaway certificate, made when first asked for.
 */
export const forProcess = (): SelfSigned => (shared ??= make())
