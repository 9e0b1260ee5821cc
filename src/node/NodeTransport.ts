/**
 * A `Transport` over a Node socket (TCP, UNIX, TLS) or any Node duplex
 * stream (stdio, a child's pipes).
 *
 * - Reading: socket `data` events go into a queue that the box protocol
 *   pulls; past `readHighWaterMark` bytes waiting there, the socket is
 *   paused until the consumer catches up (Twisted's `pauseProducing`).
 * - Writing: straight to the socket; `write` reports `false` past
 *   `writeHighWaterMark` buffered bytes and `writable` waits for `drain`.
 * - StartTLS: the current socket is wrapped in a `TLSSocket`. Bytes already
 *   read past the boundary, and any the queue still holds, are fed to TLS
 *   first, so a ClientHello that arrived with the last plaintext box is not
 *   lost.
 * - Detach: the socket (plain or TLS) is handed over with the same care.
 *
 * @since 0.1.0
 */
import type * as net from "node:net"
import { Duplex } from "node:stream"
import * as tls from "node:tls"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Mailbox from "effect/Mailbox"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { ConnectionLost, OnlyOneTLS, PeerVerifyError, TlsError, TransportUnsupported } from "../AmpError.js"
import type {
  ConnectionInfo,
  PeerCertificate,
  RawConnection,
  TlsOptions,
  TlsSession,
  TlsUpgrade,
  Transport
} from "../Transport.js"

/** Options of {@link fromSocket}. */
export interface Options {
  /** Which side of the connection we are: decides the TLS role by default. */
  readonly role: "client" | "server"
  /** `tcp`, `unix`, `tls`, `stdio`, `child`... for `info()`. */
  readonly kind?: string
  /** Bytes read but not yet consumed before the socket is paused. Default 1 MiB. */
  readonly readHighWaterMark?: number
  /** Bytes buffered for writing before `write` says to wait. Default 1 MiB. */
  readonly writeHighWaterMark?: number
  /** How long a graceful close may take before the socket is destroyed. Default 2000 ms. */
  readonly closeTimeoutMillis?: number
  /** Whether StartTLS and detach work (false for stdio pairs). Default true. */
  readonly upgradable?: boolean
}

type ReadError = ConnectionLost | TlsError | PeerVerifyError

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
  "ERR_TLS_CERT_ALTNAME_INVALID"
])

/** Maps a socket error to the typed cause the protocol reports. */
export const mapError = (error: unknown, during: "plain" | "handshake" | "tls"): ReadError => {
  const e = error as NodeJS.ErrnoException & { reason?: string }
  const code = e?.code ?? ""
  if (during !== "plain") {
    // An alert from the peer during or right after the handshake: it refused us (our certificate, usually).
    if (/ALERT_(BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|CERTIFICATE_REQUIRED|ACCESS_DENIED|UNSUPPORTED_CERTIFICATE|HANDSHAKE_FAILURE)/.test(code)) {
      return new PeerVerifyError({ detail: e.message, cause: error })
    }
    if (localVerifyCodes.has(code)) return new TlsError({ detail: `the peer's certificate was refused: ${e.message}`, code, cause: error })
    if (code.startsWith("ERR_SSL") || code.startsWith("ERR_TLS")) return new TlsError({ detail: e.message, code, cause: error })
    if (during === "handshake" && (code === "ECONNRESET" || code === "EPIPE")) {
      return new PeerVerifyError({ detail: "the peer dropped the connection during the TLS handshake", cause: error })
    }
  }
  const reason = code === "ECONNRESET" || code === "EPIPE" ? "reset" : "error"
  return new ConnectionLost({ reason, detail: e?.message ?? String(error), cause: error })
}

const certificateOf = (socket: tls.TLSSocket): PeerCertificate | undefined => {
  const c = socket.getPeerCertificate(false)
  if (c === null || c === undefined || Object.keys(c).length === 0) return undefined
  return {
    subject: { ...c.subject } as Record<string, string>,
    issuer: { ...c.issuer } as Record<string, string>,
    fingerprint256: c.fingerprint256,
    validFrom: c.valid_from,
    validTo: c.valid_to,
    raw: new Uint8Array(c.raw)
  }
}

/**
 * The peer-verification error of a server-side `TLSSocket` we built
 * ourselves: Node verifies the chain but, outside `tls.Server`, leaves the
 * verdict to us (`authorized` stays false either way).
 */
const verifyErrorOf = (socket: tls.TLSSocket): Error | undefined =>
  (socket as unknown as { _handle?: { verifyError?: () => Error | undefined } })._handle?.verifyError?.() ?? undefined

/** The TLS session of a connected `TLSSocket`. */
export const sessionOf = (socket: tls.TLSSocket, authorized = socket.authorized): TlsSession => {
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

const addressOf = (socket: Duplex, which: "local" | "remote", kind: string): string | undefined => {
  const s = socket as Partial<net.Socket>
  const host = which === "local" ? s.localAddress : s.remoteAddress
  const port = which === "local" ? s.localPort : s.remotePort
  if (host !== undefined && port !== undefined) return `${kind === "unix" ? "tcp" : kind}:${host}:${port}`
  return undefined
}

const toBuffer = (x: string | Uint8Array | ReadonlyArray<string | Uint8Array> | undefined) =>
  x === undefined ? undefined : Array.isArray(x) ? x.map((v) => (typeof v === "string" ? v : Buffer.from(v))) :
    typeof x === "string" ? x : Buffer.from(x as Uint8Array)

/** `tls.SecureContext` options from our `TlsOptions`. */
export const secureContextOptions = (options: TlsOptions): tls.SecureContextOptions => {
  const out: tls.SecureContextOptions = {}
  const cert = toBuffer(options.cert)
  const key = toBuffer(options.key)
  const ca = toBuffer(options.ca)
  if (cert !== undefined) out.cert = cert as string | Buffer
  if (key !== undefined) out.key = key as string | Buffer
  if (ca !== undefined) out.ca = ca as string | Buffer | Array<string | Buffer>
  return out
}

/**
 * A duplex that yields `prefix` first, then what `socket` reads, and writes
 * to `socket`: lets TLS start on bytes we have already taken off the socket.
 */
const withPrefix = (socket: Duplex, prefix: Uint8Array): Duplex => {
  const wrapper = new Duplex({
    read() {
      socket.resume()
    },
    write(chunk, _encoding, callback) {
      socket.write(chunk, callback)
    },
    final(callback) {
      socket.end()
      callback()
    },
    destroy(error, callback) {
      socket.destroy(error ?? undefined)
      callback(error)
    }
  })
  wrapper.push(Buffer.from(prefix.buffer, prefix.byteOffset, prefix.byteLength))
  socket.on("data", (chunk: Buffer) => {
    if (!wrapper.push(chunk)) socket.pause()
  })
  socket.on("end", () => wrapper.push(null))
  socket.on("error", (e) => wrapper.destroy(e))
  socket.on("close", () => wrapper.destroy())
  return wrapper
}

/**
 * A transport over `socket`, closed with the scope.
 *
 * @since 0.1.0
 */
export const fromSocket = (socket: Duplex, options: Options): Effect.Effect<Transport, never, Scope.Scope> =>
  Effect.gen(function*() {
    const kind = options.kind ?? (socket instanceof tls.TLSSocket ? "tls" : "tcp")
    const readHighWaterMark = options.readHighWaterMark ?? 1024 * 1024
    const writeHighWaterMark = options.writeHighWaterMark ?? 1024 * 1024
    const closeTimeout = options.closeTimeoutMillis ?? 2000
    const upgradable = options.upgradable ?? true

    let current: Duplex = socket
    let mailbox = yield* Mailbox.make<Uint8Array, ReadError>()
    let buffered = 0
    let paused = false
    let phase: "plain" | "handshake" | "tls" = socket instanceof tls.TLSSocket ? "tls" : "plain"
    let session: TlsSession | undefined = socket instanceof tls.TLSSocket && !socket.pending ? sessionOf(socket) : undefined
    let closed = false
    /** Whether StartTLS happened here, and whether any byte came since. */
    let startedTls = false
    let dataSinceTls = false

    const onData = (chunk: Buffer) => {
      dataSinceTls = true
      buffered += chunk.length
      mailbox.unsafeOffer(chunk)
      if (buffered > readHighWaterMark && !paused) {
        paused = true
        current.pause()
      }
    }
    // The peer going away mid-handshake: Twisted reports that as the peer refusing our certificate.
    // And a peer that closes right after the handshake, before sending a byte, most likely refused our
    // certificate (TLS 1.3 clients finish before the server has checked them): Twisted says so too.
    const cutOff = () =>
      new PeerVerifyError({
        detail: phase === "handshake"
          ? "the peer closed the connection during the TLS handshake"
          : "the peer closed the connection right after the TLS handshake, without a word: it likely refused our certificate"
      })
    const rejectedUs = () => phase === "handshake" || (phase === "tls" && !dataSinceTls && startedTls)
    const onEnd = () => {
      mailbox.unsafeDone(rejectedUs() ? Exit.fail(cutOff()) : Exit.void)
    }
    const onError = (error: Error) => {
      mailbox.unsafeDone(Exit.fail(mapError(error, phase)))
    }
    const onClose = () => {
      mailbox.unsafeDone(rejectedUs() ? Exit.fail(cutOff()) : Exit.void)
    }
    const listen = (s: Duplex) => {
      s.on("data", onData)
      s.on("end", onEnd)
      s.on("error", onError)
      s.on("close", onClose)
    }
    const unlisten = (s: Duplex) => {
      s.off("data", onData)
      s.off("end", onEnd)
      s.off("error", onError)
      s.off("close", onClose)
    }
    listen(socket)

    const consumed = (chunk: Uint8Array) => {
      buffered -= chunk.length
      if (paused && buffered <= readHighWaterMark / 2) {
        paused = false
        current.resume()
      }
    }

    /** Takes what the queue holds and nobody pulled: it goes ahead of the socket's next bytes. */
    const drainQueue = Effect.gen(function*() {
      const queued = yield* Effect.orElseSucceed(mailbox.clear, () => [] as Iterable<Uint8Array>)
      const parts: Array<Uint8Array> = []
      for (const c of queued) {
        buffered -= c.length
        parts.push(c)
      }
      return parts
    })

    const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => Buffer.concat(parts.filter((p) => p.length > 0))

    const info = (): ConnectionInfo => {
      const local = addressOf(current, "local", kind)
      const peer = addressOf(current, "remote", kind)
      return {
        kind,
        ...(local ? { localAddress: local } : {}),
        ...(peer ? { peerAddress: peer } : {}),
        ...(session ? { tls: session } : {})
      }
    }

    const write = (bytes: Uint8Array): boolean => {
      if (closed || current.destroyed || current.writableEnded) return false
      current.write(bytes)
      return current.writableLength <= writeHighWaterMark
    }

    const writable = Effect.async<void, ConnectionLost>((resume) => {
      const s = current
      if (s.destroyed || closed) return resume(Effect.fail(new ConnectionLost({ reason: "closed" })))
      if (s.writableLength <= writeHighWaterMark) return resume(Effect.void)
      const done = () => {
        s.off("drain", done)
        s.off("close", lost)
        resume(Effect.void)
      }
      const lost = () => {
        s.off("drain", done)
        s.off("close", lost)
        resume(Effect.fail(new ConnectionLost({ reason: "closed" })))
      }
      s.on("drain", done)
      s.on("close", lost)
      return Effect.sync(() => {
        s.off("drain", done)
        s.off("close", lost)
      })
    })

    const close = Effect.async<void>((resume) => {
      const s = current
      closed = true
      if (s.destroyed) return resume(Effect.void)
      const timer = setTimeout(() => s.destroy(), closeTimeout)
      s.once("close", () => {
        clearTimeout(timer)
        resume(Effect.void)
      })
      s.end()
      // A socket whose readable side is paused never sees the peer's FIN; let it flow so it can close.
      s.resume()
    })

    const startTls = (tlsOptions: TlsOptions, leftover: Uint8Array) =>
      Effect.gen(function*() {
        if (!upgradable) return yield* Effect.fail(new TransportUnsupported({ operation: "StartTLS", transport: kind }))
        if (phase !== "plain") return yield* Effect.fail(new OnlyOneTLS({}))
        const raw = current
        unlisten(raw)
        raw.pause()
        const prefix = concat([leftover, ...(yield* drainQueue)])
        const base = prefix.length > 0 ? withPrefix(raw, prefix) : raw
        const isServer = (tlsOptions.role ?? options.role) === "server"
        const verify = tlsOptions.ca !== undefined
        const secureContext = yield* Effect.try({
          try: () => tls.createSecureContext(secureContextOptions(tlsOptions)),
          catch: (e) => new TlsError({ detail: `bad TLS settings: ${(e as Error).message}`, cause: e })
        })
        phase = "handshake"
        startedTls = true
        const tlsSocket = isServer
          ? new tls.TLSSocket(base, { isServer: true, secureContext, requestCert: verify, rejectUnauthorized: verify })
          : tls.connect({
            socket: base,
            secureContext,
            rejectUnauthorized: verify,
            ...(tlsOptions.servername ? { servername: tlsOptions.servername } : {}),
            // Twisted's StartTLS checks the chain, not the name; a servername asks for the name check too.
            checkServerIdentity: tlsOptions.servername ? tls.checkServerIdentity : () => undefined
          })
        current = tlsSocket
        paused = false
        listen(tlsSocket)
        const handshake = Effect.async<TlsSession, TlsError | PeerVerifyError | ConnectionLost>((resume) => {
          const ok = () => {
            cleanup()
            if (refused !== undefined) return resume(Effect.fail(refused))
            resume(Effect.succeed(session!))
          }
          const failed = (e: Error) => {
            cleanup()
            resume(Effect.fail(mapError(e, "handshake")))
          }
          const gone = () => {
            cleanup()
            resume(Effect.fail(new PeerVerifyError({ detail: "the peer closed the connection during the TLS handshake" })))
          }
          const cleanup = () => {
            tlsSocket.off(isServer ? "secure" : "secureConnect", ok)
            tlsSocket.off("error", failed)
            tlsSocket.off("close", gone)
          }
          if (phase === "tls" && session) return resume(Effect.succeed(session))
          tlsSocket.once(isServer ? "secure" : "secureConnect", ok)
          tlsSocket.once("error", failed)
          tlsSocket.once("close", gone)
        })
        // Settle the phase (and, as a server, our verdict on the client) even when nobody awaits the handshake.
        let refused: TlsError | undefined
        tlsSocket.prependOnceListener(isServer ? "secure" : "secureConnect", () => {
          phase = "tls"
          dataSinceTls = false
          if (isServer && verify) {
            const error = verifyErrorOf(tlsSocket)
            if (error !== undefined) {
              refused = new TlsError({
                detail: `the peer's certificate was refused: ${error.message}`,
                code: (error as NodeJS.ErrnoException).code ?? "CERT_REJECTED",
                cause: error
              })
              mailbox.unsafeDone(Exit.fail(refused))
              tlsSocket.destroy()
              return
            }
            session = sessionOf(tlsSocket, true)
          } else {
            session = sessionOf(tlsSocket)
          }
        })
        const cached = yield* Effect.cached(handshake)
        return { handshake: cached } satisfies TlsUpgrade
      })

    const detach = (leftover: Uint8Array) =>
      Effect.gen(function*() {
        if (!upgradable) return yield* Effect.fail(new TransportUnsupported({ operation: "protocol switch", transport: kind }))
        const s = current
        unlisten(s)
        const queued = yield* drainQueue
        const old = mailbox
        mailbox = yield* Mailbox.make<Uint8Array, ReadError>()
        yield* old.end
        const raw = mailbox
        if (leftover.length > 0) raw.unsafeOffer(leftover)
        raw.unsafeOfferAll(queued)
        for (const c of queued) buffered += c.length
        listen(s)
        const connection: RawConnection = {
          incoming: Stream.mapError(
            Mailbox.toStream(raw).pipe(Stream.tap((c) => Effect.sync(() => consumed(c)))),
            (e) => (e._tag === "ConnectionLost" ? e : new ConnectionLost({ reason: "error", detail: e.message, cause: e }))
          ),
          write: (bytes) =>
            Effect.suspend(() =>
              write(bytes) ? Effect.void : writable
            ),
          end: close,
          info
        }
        return connection
      })

    yield* Effect.addFinalizer(() => close)

    const takeChunks = Effect.suspend(() => mailbox.takeAll).pipe(
      Effect.map(([chunks, done]) => {
        if (chunks.length === 0 && done) return undefined
        const out = Chunk.toReadonlyArray(chunks)
        for (const c of out) consumed(c)
        return out
      })
    )

    const transport: Transport = {
      takeChunks,
      incoming: Stream.suspend(() => {
        const box = mailbox
        return Mailbox.toStream(box).pipe(Stream.tap((c) => Effect.sync(() => consumed(c))))
      }),
      write,
      writable,
      close,
      startTls,
      detach,
      info
    }
    return transport
  })
