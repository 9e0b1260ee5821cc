/**
 * A `Transport` over a Node socket (TCP, UNIX, TLS) or over a pair of Node
 * streams (stdio, a child's pipes).
 *
 * - Reading: `data` events go into a small inbox that the box protocol
 *   drains (`takeChunks`, or the `incoming` Stream over it). Past
 *   `readBufferChunks` chunks or `readHighWaterMark` bytes waiting there,
 *   the socket is paused until the consumer catches up: Twisted's
 *   `pauseProducing`, and the reason a slow consumer cannot make memory grow.
 * - Writing: straight to the socket (the protocol above batches one
 *   event-loop turn into one write). `write` says `false` past
 *   `writeHighWaterMark` buffered bytes; `writable` waits for `drain`.
 * - StartTLS: the current socket is wrapped in a `TLSSocket`. Bytes already
 *   read past the boundary (`leftover`), then whatever the inbox holds, are
 *   the first TLS records: they are put back in front of the socket's
 *   readable buffer, which `TLSSocket` reads before the wire.
 * - Detach: the socket (plain or TLS) goes to another protocol with the same
 *   care, as a `RawConnection` or as the Node socket itself
 *   ({@link detachToDuplex}).
 *
 * @since 0.1.0
 */
import * as net from "node:net"
import { Duplex, type Readable, type Writable } from "node:stream"
import * as tls from "node:tls"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { ConnectionLost, OnlyOneTLS, PeerVerifyError, TlsError, TransportUnsupported } from "../AmpError.js"
import type {
  ConnectionInfo,
  PeerCertificate,
  RawConnection,
  TlsOptions,
  TlsSession,
  TlsUpgrade,
  Transport,
  WithDetach,
  WithTlsAndDetach
} from "../Transport.js"
import { concatBytes } from "../internal/bytes.js"
import { lazyField } from "../internal/lazyField.js"
import { Once } from "../internal/once.js"
import { type FastPath, withFastPath, writeThrough } from "../internal/transportFastPath.js"

/** Transports whose `incoming` is made on first read (see internal/lazyField). */
const withIncoming = lazyField("incoming")

/**
 * Options of {@link fromSocket} and {@link fromStreams}.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Which side of the connection we are: the default TLS role (the side that connected is the TLS client). */
  readonly role: "client" | "server"
  /** `tcp`, `unix`, `tls`, `stdio`, `child`... as `info().kind`. Guessed from the socket when absent. */
  readonly kind?: string
  /** Chunks read but not yet taken by the consumer before the socket is paused. Default 16. */
  readonly readBufferChunks?: number
  /** Bytes read but not yet taken by the consumer before the socket is paused. Default 1 MiB. */
  readonly readHighWaterMark?: number
  /** Bytes buffered for writing before `write` returns `false`. Default 1 MiB. */
  readonly writeHighWaterMark?: number
  /** How long a graceful close may take before the socket is destroyed. Default 2000 ms. */
  readonly closeTimeoutMillis?: number
  /** How long a StartTLS handshake may take before it fails with `TlsError` (code `ETIMEDOUT`). Default 30000 ms; 0 waits forever. */
  readonly handshakeTimeoutMillis?: number
  /**
   * Turn Nagle's algorithm off (TCP_NODELAY). Default true: the box protocol
   * already gathers a turn's boxes into one write, so holding a small write
   * back for more only adds a round trip of latency to every lone call.
   */
  readonly noDelay?: boolean
  /** `info().localAddress`, when the socket cannot tell (a UNIX socket's path). */
  readonly localAddress?: string
  /** `info().peerAddress`, when the socket cannot tell (a UNIX socket's path). */
  readonly peerAddress?: string
}

/** Options of {@link fromStreams}. */
export interface StreamOptions extends Options {
  /** Destroy both streams once closed (a child's pipes) rather than only pausing the input (this process's stdin). Default false. */
  readonly destroyOnClose?: boolean
}

type ReadError = ConnectionLost | TlsError | PeerVerifyError

const MiB = 1024 * 1024

// ---------------------------------------------------------------------------
// Errors and TLS details
// ---------------------------------------------------------------------------

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
export const mapError = (error: unknown, during: "plain" | "handshake" | "tls"): ReadError => {
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

const toConnectionLost = (error: ReadError): ConnectionLost =>
  error._tag === "ConnectionLost" ? error : new ConnectionLost({ reason: "error", detail: error.message, cause: error })

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
const verifyErrorOf = (socket: tls.TLSSocket): Error | undefined =>
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

/**
 * `host:port` as an address string, IPv6 hosts in brackets: `tcp:127.0.0.1:7710`, `tcp:[::1]:7710`.
 *
 * @since 0.1.0
 */
export const hostPort = (scheme: string, host: string, port: number): string =>
  `${scheme}:${host.includes(":") ? `[${host}]` : host}:${port}`

const addressOf = (socket: Duplex, which: "local" | "remote", kind: string): string | undefined => {
  if (!(socket instanceof net.Socket)) return undefined
  const host = which === "local" ? socket.localAddress : socket.remoteAddress
  const port = which === "local" ? socket.localPort : socket.remotePort
  return host !== undefined && port !== undefined ? hostPort(kind === "tls" ? "tls" : "tcp", host, port) : undefined
}

const guessKind = (socket: Duplex): string =>
  socket instanceof tls.TLSSocket
    ? "tls"
    : socket instanceof net.Socket
    ? socket.remotePort !== undefined || socket.localPort !== undefined ? "tcp" : "unix"
    : "stream"

const asBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/**
 * Whether `stream` has seen its end of input, emitted or not: a paused
 * socket can hold the peer's FIN behind unread bytes. The only window on it
 * is the stream's internal state.
 */
const sawEof = (stream: Readable): boolean =>
  stream.readableEnded || (stream as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended === true

/**
 * A duplex that yields `prefix`, then whatever `input` still holds, then the
 * end; writes go to `output`. For a stream whose end of input has already
 * arrived: TLS must see the bytes and the end, which it would not if it took
 * the socket's handle over (the handle has no more to say); and a stream
 * that has emitted its end takes no `unshift`.
 */
const endedWithPrefix = (input: Readable, output: Writable, prefix: Uint8Array): Duplex => {
  const wrapper = new Duplex({
    read() {},
    write(chunk, _encoding, callback) {
      if (output.destroyed || output.writableEnded) return callback(new ConnectionLost({ reason: "closed" }))
      output.write(chunk, callback)
    },
    final(callback) {
      output.end(callback)
    },
    destroy(error, callback) {
      input.destroy(error ?? undefined)
      if (output !== (input as unknown)) output.destroy(error ?? undefined)
      callback(error)
    }
  })
  if (prefix.length > 0) wrapper.push(asBuffer(prefix))
  let chunk: unknown
  while ((chunk = input.read()) !== null) wrapper.push(chunk)
  wrapper.push(null)
  input.on("error", (e) => wrapper.destroy(e))
  return wrapper
}

// ---------------------------------------------------------------------------
// The inbox: what was read and not yet taken
// ---------------------------------------------------------------------------

/**
 * Chunks read from a stream, waiting for the one consumer. Pauses `source`
 * when too much waits, resumes it when the consumer takes them.
 */
class Inbox<E> {
  private items: Array<Uint8Array> = []
  private bytes = 0
  private exit: Exit.Exit<void, E> | undefined = undefined
  // An array, not a Set: see CallTable for what a churning Set costs the young generation.
  private waiters: Array<() => void> = []
  private pausedByUs = false
  /** The stream to pause; `undefined` while nothing feeds the inbox. */
  source: Readable | undefined = undefined
  /** Once closing: drop what does not fit rather than pause (the peer's FIN must get through). */
  private dropping = false

  constructor(private readonly maxChunks: number, private readonly maxBytes: number) {}

  get isDone(): boolean {
    return this.exit !== undefined
  }

  get exitValue(): Exit.Exit<void, E> | undefined {
    return this.exit
  }

  /** Whether the source is paused because the inbox is full. */
  get isPaused(): boolean {
    return this.pausedByUs
  }

  get size(): { readonly chunks: number; readonly bytes: number } {
    return { chunks: this.items.length, bytes: this.bytes }
  }

  private full(): boolean {
    return this.items.length > this.maxChunks || this.bytes > this.maxBytes
  }

  offer(chunk: Uint8Array): void {
    if (this.exit !== undefined) return
    if (this.dropping && this.full()) return
    this.items.push(chunk)
    this.bytes += chunk.length
    if (!this.pausedByUs && !this.dropping && this.source !== undefined && this.full()) {
      this.pausedByUs = true
      this.source.pause()
    }
    this.wake()
  }

  finish(exit: Exit.Exit<void, E>): void {
    if (this.exit !== undefined) return
    this.exit = exit
    this.wake()
  }

  /** Forgets a clean end nobody has seen yet: the bytes before it go to TLS, and so must the end. */
  reopen(): void {
    if (this.exit !== undefined && Exit.isSuccess(this.exit)) this.exit = undefined
  }

  /** Everything waiting, at once; resumes the source. */
  takeNow(): Array<Uint8Array> {
    const out = this.items
    this.items = []
    this.bytes = 0
    this.unpause()
    return out
  }

  /** Stops controlling the source (it is handed elsewhere) and returns it. */
  release(): Readable | undefined {
    const s = this.source
    this.source = undefined
    this.pausedByUs = false
    return s
  }

  /** From now on, drop what does not fit instead of pausing. */
  drain(): void {
    this.dropping = true
    this.unpause()
  }

  private unpause(): void {
    if (this.pausedByUs) {
      this.pausedByUs = false
      this.source?.resume()
    }
  }

  private wake(): void {
    if (this.waiters.length === 0) return
    const waiting = this.waiters
    this.waiters = []
    for (const w of waiting) w()
  }

  /** Every waiting chunk (at least one), or `undefined` at a clean end. */
  readonly take: Effect.Effect<ReadonlyArray<Uint8Array> | undefined, E> = Effect.suspend(() => {
    if (this.items.length > 0) return Effect.succeed(this.takeNow())
    if (this.exit !== undefined) return Exit.isSuccess(this.exit) ? Effect.succeed(undefined) : Effect.failCause(this.exit.cause)
    // No canceler: Effect's interruption hook costs more than a read. A consumer that
    // gives up leaves its waiter behind until the next wake, which resumes nothing.
    return Effect.async<ReadonlyArray<Uint8Array> | undefined, E>((resume) => {
      this.waiters.push(() => resume(this.take))
    })
  })

  stream(): Stream.Stream<Uint8Array, E> {
    return Stream.repeatEffectChunkOption(
      Effect.matchEffect(this.take, {
        onFailure: (e) => Effect.fail(Option.some(e)),
        onSuccess: (chunks) =>
          chunks === undefined ? Effect.fail(Option.none()) : Effect.succeed(Chunk.unsafeFromArray(chunks as Array<Uint8Array>))
      })
    )
  }
}

// ---------------------------------------------------------------------------
// The transport
// ---------------------------------------------------------------------------

interface Internals {
  readonly detachToDuplex: (leftover: Uint8Array) => Effect.Effect<Duplex, TransportUnsupported>
  readonly readState: () => { readonly chunks: number; readonly bytes: number; readonly paused: boolean }
  readonly socket: () => Duplex | undefined
}

/** What each transport of this module keeps behind its interface (made when asked for: tests and RawDuplex ask). */
const internals = new WeakMap<Transport, () => Internals>()

interface Io {
  /** The socket, when reading and writing share one (TCP, UNIX, TLS). StartTLS needs one. */
  readonly socket: Duplex | undefined
  readonly input: Readable
  readonly output: Writable
}

// Not Effect.gen: a generator function made per connection keeps a prototype and a shape of its own alive with it.
const make = (io: Io, options: StreamOptions): Effect.Effect<Transport, never, Scope.Scope> =>
  Effect.flatMap(Effect.scope, (scope) => {
    const kind = options.kind ?? (io.socket ? guessKind(io.socket) : "stream")
    if (io.socket instanceof net.Socket && options.noDelay !== false) io.socket.setNoDelay(true)
    const writeHighWaterMark = options.writeHighWaterMark ?? MiB
    const closeTimeout = options.closeTimeoutMillis ?? 2000
    const handshakeTimeout = options.handshakeTimeoutMillis ?? 30_000
    const newInbox = <E>() => new Inbox<E>(options.readBufferChunks ?? 16, options.readHighWaterMark ?? MiB)
    const localAddress = options.localAddress ?? (io.socket ? addressOf(io.socket, "local", kind) : undefined)
    const peerAddress = options.peerAddress ?? (io.socket ? addressOf(io.socket, "remote", kind) : undefined)

    /** Everything to destroy in the end: the original socket or streams. */
    const roots: ReadonlyArray<Readable | Writable> = io.socket ? [io.socket] : [io.input, io.output]
    /** The socket bytes come from and go to: the original one, then the `TLSSocket` over it. */
    let socket = io.socket
    let input = io.input
    let output = io.output

    const inbox = newInbox<ReadError>()
    let phase: "plain" | "handshake" | "tls" = "plain"
    let session: TlsSession | undefined
    if (io.socket instanceof tls.TLSSocket) {
      phase = "tls"
      if (!io.socket.pending && io.socket.encrypted) session = sessionOf(io.socket)
    }
    /** Twisted's `_justStartedTLS`: TLS started here and not a byte came since the handshake. */
    let justStartedTls = false
    let handshake: Deferred.Deferred<TlsSession, TlsError | PeerVerifyError | ConnectionLost> | undefined
    let handshakeTimer: ReturnType<typeof setTimeout> | undefined
    let closing = false
    let detached = false
    const closed = new Once<void>()

    const failHandshake = (error: TlsError | PeerVerifyError | ConnectionLost) => {
      if (handshakeTimer !== undefined) clearTimeout(handshakeTimer)
      if (handshake !== undefined) Deferred.unsafeDone(handshake, Exit.fail(error))
    }

    /** The end of input (`error` undefined: a clean one), as the protocol must hear it. */
    const ended = (error: unknown) => {
      let failure: ReadError | undefined = error !== undefined ? mapError(error, phase) : undefined
      if (!closing && (failure === undefined || failure._tag === "ConnectionLost")) {
        const cause = failure?.cause
        if (phase === "handshake") {
          // Twisted's reading: a peer that hangs up mid-handshake did not like our certificate.
          failure = new PeerVerifyError({ detail: "the peer closed the connection during the TLS handshake", cause })
        } else if (phase === "tls" && justStartedTls) {
          // TLS 1.3 finishes a client's handshake before the server has judged its certificate.
          failure = new PeerVerifyError({
            detail:
              "the peer closed the connection right after the TLS handshake, before sending anything: it likely refused our certificate",
            cause
          })
        }
      }
      failHandshake(failure ?? new ConnectionLost({ reason: closing ? "closed by us" : "closed" }))
      inbox.finish(failure !== undefined ? Exit.fail(failure) : Exit.void)
    }

    const onData = (chunk: Buffer) => {
      justStartedTls = false
      inbox.offer(chunk)
    }
    const onEnd = () => ended(undefined)
    const onClose = () => ended(undefined)
    const onError = (error: Error) => ended(error)
    const listen = (s: Readable) => {
      s.on("data", onData)
      s.on("end", onEnd)
      s.on("error", onError)
      s.on("close", onClose)
      inbox.source = s
    }
    const unlisten = (s: Readable) => {
      s.off("data", onData)
      s.off("end", onEnd)
      s.off("error", onError)
      s.off("close", onClose)
      inbox.release()
    }
    /** Events that came before we listened (between connect and now). */
    const catchUp = (s: Readable) => {
      if (s.errored) ended(s.errored)
      else if (s.destroyed || s.readableEnded) ended(undefined)
    }
    listen(input)
    if (output !== (input as unknown)) output.on("error", onError)
    catchUp(input)

    // --- writing -----------------------------------------------------------

    const write = (bytes: Uint8Array): boolean => {
      const out = output
      if (detached || closing || out.destroyed || out.writableEnded) return false
      out.write(bytes)
      return out.writableLength <= writeHighWaterMark
    }

    const writev = (chunks: ReadonlyArray<Uint8Array>): boolean => {
      const out = output
      if (detached || closing || out.destroyed || out.writableEnded) return false
      // Corked writes leave in one writev().
      out.cork()
      for (const c of chunks) out.write(c)
      out.uncork()
      return out.writableLength <= writeHighWaterMark
    }

    const lostOnWrite = () => new ConnectionLost({ reason: closing ? "closed by us" : "closed" })

    /** Waits until the output drains under the mark. */
    const drained = Effect.async<void, ConnectionLost>((resume) => {
      const out = output
      if (closing || out.destroyed || out.writableEnded) return resume(Effect.fail(lostOnWrite()))
      if (out.writableLength <= writeHighWaterMark) return resume(Effect.void)
      const cleanup = () => {
        out.off("drain", onDrain)
        out.off("close", onGone)
      }
      const onDrain = () => {
        cleanup()
        resume(Effect.void)
      }
      const onGone = () => {
        cleanup()
        resume(Effect.fail(lostOnWrite()))
      }
      out.on("drain", onDrain)
      out.on("close", onGone)
      return Effect.sync(cleanup)
    })

    const writable = Effect.suspend(() =>
      detached ? Effect.fail(new ConnectionLost({ reason: "closed by us", detail: "handed to another protocol" })) : drained
    )

    // --- closing -----------------------------------------------------------

    /** Ends the close: destroys what we own (not this process's stdio), settles `incoming` and `close`. */
    const finishClose = (destroy: boolean) => {
      if (destroy) {
        for (const r of roots) if (!r.destroyed) r.destroy()
        if (socket !== undefined && !socket.destroyed) socket.destroy()
      } else {
        unlisten(input)
        input.pause()
      }
      if (handshakeTimer !== undefined) clearTimeout(handshakeTimer)
      ended(undefined)
      closed.done(Exit.void)
    }

    const startClose = () => {
      closing = true
      inbox.drain()
      const destroy = socket !== undefined || options.destroyOnClose === true
      let timer: ReturnType<typeof setTimeout> | undefined = undefined
      const done = () => {
        if (timer !== undefined) clearTimeout(timer)
        finishClose(destroy)
      }
      if (socket !== undefined) {
        // A socket closes once both directions are done: our end, then the peer's.
        if (socket.destroyed) return done()
        timer = setTimeout(done, closeTimeout)
        socket.once("close", done)
        socket.end()
        // A socket paused by a slow consumer would never read the peer's FIN.
        socket.resume()
      } else {
        // A pair of streams: our output ends, and that is all we wait for.
        const out = output
        if (out.destroyed || out.writableFinished) return done()
        timer = setTimeout(done, closeTimeout)
        const settle = () => {
          out.off("finish", settle)
          out.off("close", settle)
          done()
        }
        out.once("finish", settle)
        out.once("close", settle)
        out.end()
      }
    }

    const close: Effect.Effect<void> = Effect.suspend(() => {
      if (!closing) startClose()
      return closed.await
    })

    // --- StartTLS ----------------------------------------------------------

    const startTls = (
      tlsOptions: TlsOptions,
      leftover: Uint8Array
    ): Effect.Effect<TlsUpgrade, OnlyOneTLS | TransportUnsupported | TlsError> =>
      Effect.suspend((): Effect.Effect<TlsUpgrade, OnlyOneTLS | TransportUnsupported | TlsError> => {
        const raw = socket
        if (raw === undefined) return Effect.fail(new TransportUnsupported({ operation: "StartTLS", transport: kind }))
        if (detached) {
          return Effect.fail(new TransportUnsupported({ operation: "StartTLS", transport: `${kind} (handed to another protocol)` }))
        }
        if (phase !== "plain") return Effect.fail(new OnlyOneTLS({}))
        if (closing) return Effect.fail(new TlsError({ detail: "the connection is already closed" }))
        if (raw.destroyed) {
          // The peer went away before we could start (Twisted's `_justStartedTLS` reading): the
          // handshake fails, and so does `incoming`, unless its end has been seen already.
          const error = new PeerVerifyError({ detail: "the peer closed the connection before the TLS handshake" })
          inbox.takeNow()
          inbox.reopen()
          inbox.finish(Exit.fail(error))
          phase = "handshake"
          return Effect.succeed({ handshake: Effect.fail(error) })
        }
        let secureContext: tls.SecureContext
        try {
          secureContext = tls.createSecureContext(secureContextOptions(tlsOptions))
        } catch (e) {
          return Effect.fail(new TlsError({ detail: `bad TLS settings: ${(e as Error).message}`, cause: e }))
        }
        return Effect.flatMap(Deferred.make<TlsSession, TlsError | PeerVerifyError | ConnectionLost>(), (deferred) => {
          try {
            return Effect.succeed(upgrade(raw, deferred, tlsOptions, secureContext, leftover))
          } catch (e) {
            // Node refused the socket or the options after we took the socket over: the connection is lost.
            const error = new TlsError({ detail: `cannot start TLS: ${(e as Error).message}`, cause: e })
            inbox.finish(Exit.fail(error))
            raw.destroy()
            return Effect.fail(error)
          }
        })
      })

    /** The socket juggling of `startTls`, once the checks have passed. */
    const upgrade = (
      raw: Duplex,
      deferred: Deferred.Deferred<TlsSession, TlsError | PeerVerifyError | ConnectionLost>,
      tlsOptions: TlsOptions,
      secureContext: tls.SecureContext,
      leftover: Uint8Array
    ): TlsUpgrade => {
      handshake = deferred
      unlisten(raw)
      raw.pause()
      // The first TLS records: the leftover, then what nobody took yet, then the wire.
      const prefix = concatBytes([leftover, ...inbox.takeNow()])
      // A clean end nobody has seen yet belongs to TLS now (a handshake cut off half-way).
      inbox.reopen()
      let base: Duplex = raw
      if (sawEof(raw)) base = endedWithPrefix(raw, raw, prefix)
      else if (prefix.length > 0) raw.unshift(asBuffer(prefix)) // TLSSocket reads the socket's buffer first
      const isServer = (tlsOptions.role ?? options.role) === "server"
      const verify = tlsOptions.ca !== undefined
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
      phase = "handshake"
      socket = tlsSocket
      input = tlsSocket
      output = tlsSocket
      if (handshakeTimeout > 0) {
        handshakeTimer = setTimeout(() => {
          const error = new TlsError({
            detail: `the TLS handshake did not finish within ${handshakeTimeout} ms`,
            code: "ETIMEDOUT"
          })
          failHandshake(error)
          inbox.finish(Exit.fail(error))
          tlsSocket.destroy()
        }, handshakeTimeout)
      }
      tlsSocket.once(isServer ? "secure" : "secureConnect", () => {
        if (handshakeTimer !== undefined) clearTimeout(handshakeTimer)
        if (isServer && verify) {
          const error = verifyErrorOf(tlsSocket)
          if (error !== undefined) {
            const refused = new TlsError({
              detail: `the peer's certificate was refused: ${error.message}`,
              code: (error as NodeJS.ErrnoException).code ?? "CERT_REJECTED",
              cause: error
            })
            failHandshake(refused)
            inbox.finish(Exit.fail(refused))
            tlsSocket.destroy()
            return
          }
        }
        session = sessionOf(tlsSocket, isServer ? verify : tlsSocket.authorized)
        phase = "tls"
        justStartedTls = true
        Deferred.unsafeDone(deferred, Exit.succeed(session))
      })
      listen(tlsSocket)
      // The raw socket's own errors reach us through the TLS socket; this keeps them from being unhandled.
      raw.on("error", () => undefined)
      return { handshake: Deferred.await(deferred) }
    }

    // --- detaching ---------------------------------------------------------

    /** Stops feeding `incoming` (it ends) and returns what was read but not consumed, leftover first. */
    const takeOver = (leftover: Uint8Array) => {
      detached = true
      unlisten(input)
      if (output !== (input as unknown)) output.off("error", onError)
      const pending = concatBytes([leftover, ...inbox.takeNow()])
      const before = inbox.exitValue
      inbox.finish(Exit.void)
      return { pending, before }
    }

    const alreadyDetached = () =>
      Effect.fail(new TransportUnsupported({ operation: "detach", transport: `${kind} (already handed to another protocol)` }))

    const detach = (leftover: Uint8Array): Effect.Effect<RawConnection, TransportUnsupported> =>
      Effect.suspend(() => {
        if (detached) return alreadyDetached()
        const source = input
        const { before, pending } = takeOver(leftover)
        const raw = newInbox<ConnectionLost>()
        if (pending.length > 0) raw.offer(pending)
        if (before !== undefined) {
          raw.finish(Exit.isSuccess(before) ? Exit.void : Exit.mapError(before, toConnectionLost))
        } else {
          const onRawError = (e: Error) => raw.finish(Exit.fail(toConnectionLost(mapError(e, phase))))
          const onRawEnd = () => raw.finish(Exit.void)
          source.on("data", (chunk: Buffer) => raw.offer(chunk))
          source.on("end", onRawEnd)
          source.on("close", onRawEnd)
          source.on("error", onRawError)
          if (output !== (source as unknown)) output.on("error", onRawError)
          raw.source = source
          source.resume()
        }
        const connection: RawConnection = {
          incoming: raw.stream(),
          write: (bytes) =>
            Effect.suspend(() => {
              const out = output
              if (closing || out.destroyed || out.writableEnded) return Effect.fail(lostOnWrite())
              out.write(bytes)
              return out.writableLength <= writeHighWaterMark ? Effect.void : drained
            }),
          end: close,
          info
        }
        return Effect.succeed(connection)
      })

    const detachToDuplex = (leftover: Uint8Array): Effect.Effect<Duplex, TransportUnsupported> =>
      Effect.suspend(() => {
        if (detached) return alreadyDetached()
        const s = input
        s.pause()
        const { pending } = takeOver(leftover)
        // Until the new owner listens, an error must not be unhandled (it reaches their listeners too).
        s.on("error", () => undefined)
        // Unshifted bytes come before the end a stream has not emitted yet; after it, only a wrapper can carry them.
        if (s.readableEnded) return Effect.succeed(endedWithPrefix(s, output, pending))
        if (pending.length > 0) s.unshift(asBuffer(pending))
        // As Node's HTTP server does on an upgrade: the next reader's 'data' listener starts the flow.
        const reader: { readableFlowing: boolean | null } = s
        reader.readableFlowing = null
        return Effect.succeed(socket ?? Duplex.from({ readable: input, writable: output }))
      })

    // --- the rest ----------------------------------------------------------

    const info = (): ConnectionInfo => ({
      kind,
      ...(localAddress !== undefined ? { localAddress } : {}),
      ...(peerAddress !== undefined ? { peerAddress } : {}),
      ...(session !== undefined ? { tls: session } : {})
    })

    // `incoming` is made when first read: the box protocol takes chunks, and a Stream costs about a kilobyte per connection.
    const fast: FastPath = { offer: write, offerv: writev, writable, takeChunks: inbox.take }
    const transport: Transport = withFastPath(withIncoming({
      write: writeThrough(fast),
      close,
      // The TLS capability needs a socket; a pair of streams has none.
      ...(io.socket !== undefined ? { startTls } : {}),
      canStartTls: socket !== undefined && phase === "plain",
      detach,
      info
    }, () => inbox.stream()), fast)
    internals.set(transport, () => ({
      detachToDuplex,
      readState: () => ({ ...inbox.size, paused: inbox.isPaused }),
      socket: () => socket
    }))
    // Scope.addFinalizer, not Effect.addFinalizer: closing needs none of this fiber's refs, and keeping them costs per connection.
    return Effect.as(Scope.addFinalizer(scope, close), transport)
  })

/**
 * A transport over a connected socket (TCP, UNIX, or TLS from the first
 * byte). The socket is closed with the scope: a graceful end, then destroyed
 * after `closeTimeoutMillis`.
 *
 * @since 0.1.0
 */
export const fromSocket = (socket: Duplex, options: Options): Effect.Effect<WithTlsAndDetach, never, Scope.Scope> =>
  make({ socket, input: socket, output: socket }, options) as Effect.Effect<WithTlsAndDetach, never, Scope.Scope>

/**
 * A transport reading `input` and writing `output` (stdio, a child's pipes).
 * A pair of streams has no TLS capability (StartTLS fails with
 * `TransportUnsupported`); detaching works. Closing ends
 * `output` and lets go of `input` (destroys both with `destroyOnClose`).
 *
 * @since 0.1.0
 */
export const fromStreams = (
  input: Readable,
  output: Writable,
  options: StreamOptions
): Effect.Effect<WithDetach, never, Scope.Scope> =>
  make({ socket: undefined, input, output }, options) as Effect.Effect<WithDetach, never, Scope.Scope>

/**
 * Hands the connection to a library that wants a Node `Duplex`: the
 * transport stops reading (its `incoming` ends), `leftover` and every byte
 * it had buffered are put back in front of the socket's readable side, and
 * the socket itself is returned (the `TLSSocket` after StartTLS). It comes
 * back with no reader attached and not flowing: the next `data` listener (or
 * `pipe`) starts it.
 *
 * The transport's scope still owns the socket: keep it open while the
 * duplex is in use. Fails with `TransportUnsupported` for a transport not
 * made by this module (use `RawDuplex.toDuplex` over `detach` there) or one
 * already handed over.
 *
 * @since 0.1.0
 */
export const detachToDuplex = (transport: Transport, leftover: Uint8Array): Effect.Effect<Duplex, TransportUnsupported> =>
  Effect.suspend(() => {
    const inner = internals.get(transport)?.()
    return inner === undefined
      ? Effect.fail(new TransportUnsupported({ operation: "detachToDuplex", transport: transport.info().kind }))
      : inner.detachToDuplex(leftover)
  })

/**
 * The read side as the transport sees it: chunks and bytes waiting for the
 * consumer, and whether the socket is paused because of them. For tests
 * and diagnostics; `undefined` for a transport not made by this module.
 *
 * @since 0.1.0
 */
export const readState = (
  transport: Transport
): { readonly chunks: number; readonly bytes: number; readonly paused: boolean } | undefined =>
  internals.get(transport)?.().readState()

/**
 * The Node socket under the transport right now (the `TLSSocket` after
 * StartTLS); `undefined` for a pair of streams or a foreign transport. For
 * tests and diagnostics: reading from it or writing to it behind the
 * transport's back breaks the transport.
 *
 * @since 0.1.0
 */
export const socketOf = (transport: Transport): Duplex | undefined => internals.get(transport)?.().socket()
