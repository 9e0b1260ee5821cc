/**
 * The machine under every `NodeTransport`: one object per connection, with
 * its behaviour on the prototype and where it stands as one value
 * ({@link State}). It is also the transport's fast path, so tests and
 * `NodeTransport.detachToDuplex` reach it through `fastPathOf`.
 *
 * Internal: not exported by the package. (Not tagged internal for tsc:
 * `stripInternal` would drop this file's first import from its .d.ts.)
 */
import * as net from "node:net"
import { Duplex, type Readable, type Writable } from "node:stream"
import * as tls from "node:tls"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { ConnectionLost, OnlyOneTLS, PeerVerifyError, TlsError, TransportUnsupported } from "../../AmpError.js"
import { concatBytes } from "../../internal/bytes.js"
import { Once } from "../../internal/once.js"
import type { FastPath } from "../../internal/transportFastPath.js"
import type { ConnectionInfo, RawConnection, TlsOptions, TlsSession, TlsUpgrade } from "../../Transport.js"
import type { StreamOptions } from "../NodeTransport.js"
import { type EndListener, Inbox } from "./Inbox.js"
import { type During, mapError, type ReadError, secureContextOptions, sessionOf, toConnectionLost, verifyErrorOf } from "./nodeTls.js"
import { addressOf, asBuffer, endedWithPrefix, guessKind, sawEof } from "./streams.js"

const MiB = 1024 * 1024

type HandshakeError = TlsError | PeerVerifyError | ConnectionLost
type StartTlsError = OnlyOneTLS | TransportUnsupported | TlsError

// ---------------------------------------------------------------------------
// Where a connection stands
// ---------------------------------------------------------------------------

/** Plain bytes: one value shared by every connection. */
interface Plain {
  readonly _tag: "Plain"
}
const plain: Plain = { _tag: "Plain" }

/** A TLS handshake under way, after StartTLS. */
class Handshake {
  readonly _tag = "Handshake"
  readonly done = new Once<TlsSession, HandshakeError>()
  timer: ReturnType<typeof setTimeout> | undefined = undefined

  fail(error: HandshakeError): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.done.done(Exit.fail(error))
  }
}

/** TLS runs. `justStarted`: the handshake finished here and no byte came since (Twisted's `_justStartedTLS`). */
class Tls {
  readonly _tag = "Tls"
  constructor(readonly session: TlsSession | undefined, public justStarted: boolean) {}
}

/** What the bytes run through. */
type Layer = Plain | Handshake | Tls

/** Handed to another protocol: nothing more is read or written here. */
class Detached {
  readonly _tag = "Detached"
  constructor(public layer: Layer) {}
}

/** Closing, then closed once `closed` is done; whether it was handed over before is kept. */
class Closing {
  readonly _tag = "Closing"
  readonly closed = new Once<void>()
  constructor(public layer: Layer, public detached: boolean) {}
}

/** Where a connection stands: plain, TLS pending, TLS, handed over, closing. */
export type State = Layer | Detached | Closing

const duringOf = (layer: Layer): During =>
  layer._tag === "Plain" ? "plain" : layer._tag === "Handshake" ? "handshake" : "tls"

/** Twisted's reading of a peer that hangs up around a handshake: it did not like our certificate. */
const blame = (layer: Layer, cause: unknown): PeerVerifyError | undefined => {
  if (layer._tag === "Handshake") {
    return new PeerVerifyError({ detail: "the peer closed the connection during the TLS handshake", cause })
  }
  // TLS 1.3 finishes a client's handshake before the server has judged its certificate.
  if (layer._tag === "Tls" && layer.justStarted) {
    return new PeerVerifyError({
      detail:
        "the peer closed the connection right after the TLS handshake, before sending anything: it likely refused our certificate",
      cause
    })
  }
  return undefined
}

// ---------------------------------------------------------------------------
// Socket chores that need no connection
// ---------------------------------------------------------------------------

const ignore = (): void => undefined
const noIdentityCheck = (): undefined => undefined

/** The `TLSSocket` over `base`, in the role asked for. */
const tlsSocketOver = (
  base: Duplex,
  options: TlsOptions,
  secureContext: tls.SecureContext,
  isServer: boolean
): tls.TLSSocket => {
  const verify = options.ca !== undefined
  if (isServer) return new tls.TLSSocket(base, { isServer: true, secureContext, requestCert: verify, rejectUnauthorized: verify })
  return tls.connect({
    socket: base,
    secureContext,
    rejectUnauthorized: verify,
    ...(options.servername ? { servername: options.servername } : {}),
    // Twisted's StartTLS checks the chain, not the name; a servername asks for the name check too.
    checkServerIdentity: options.servername ? tls.checkServerIdentity : noIdentityCheck
  })
}

/** A socket closes once both directions are done: our end, then the peer's. */
const endSocket = (socket: Duplex, done: () => void): void => {
  socket.once("close", done)
  socket.end()
  // A socket paused by a slow consumer would never read the peer's FIN.
  socket.resume()
}

/** A pair of streams: our output ends, and that is all we wait for. */
const endOutput = (out: Writable, done: () => void): void => {
  const settle = () => {
    out.off("finish", settle)
    out.off("close", settle)
    done()
  }
  out.once("finish", settle)
  out.once("close", settle)
  out.end()
}

const alreadyDetached = (kind: string) =>
  Effect.fail(new TransportUnsupported({ operation: "detach", transport: `${kind} (already handed to another protocol)` }))

// ---------------------------------------------------------------------------
// The connection
// ---------------------------------------------------------------------------

/** What a connection reads and writes. */
export interface Io {
  /** The socket, when reading and writing share one (TCP, UNIX, TLS). StartTLS needs one. */
  readonly socket: Duplex | undefined
  readonly input: Readable
  readonly output: Writable
}

/** The read side as the connection sees it, for tests and diagnostics. */
export interface ReadState {
  readonly chunks: number
  readonly bytes: number
  readonly paused: boolean
}

/**
 * One connection over a socket or a pair of streams: reading into an inbox,
 * writing straight to the socket, closing, StartTLS and handing over.
 * Subclasses may override the two hooks ({@link startingTls}, {@link readerEnded}).
 */
export class NodeConnection implements FastPath, EndListener {
  private state: State
  readonly kind: string
  readonly inbox: Inbox<ReadError>
  /** The socket bytes come from and go to: the original one, then the `TLSSocket` over it. */
  private socket: Duplex | undefined
  private input: Readable
  private output: Writable
  private readonly highWaterMark: number
  private readonly localAddress: string | undefined
  private readonly peerAddress: string | undefined
  // The socket's listeners, bound once so that they can be taken off again.
  private readonly onData: (chunk: Buffer) => void
  private readonly onEnd: () => void
  private readonly onError: (error: unknown) => void
  // Made on first use: most connections never wait for room.
  private writableEffect: Effect.Effect<void, ConnectionLost> | undefined = undefined
  private closeEffect: Effect.Effect<void> | undefined = undefined

  constructor(private readonly io: Io, private readonly options: StreamOptions) {
    const socket = io.socket
    this.kind = options.kind ?? (socket ? guessKind(socket) : "stream")
    if (socket instanceof net.Socket && options.noDelay !== false) socket.setNoDelay(true)
    this.highWaterMark = options.writeHighWaterMark ?? MiB
    this.localAddress = options.localAddress ?? (socket ? addressOf(socket, "local", this.kind) : undefined)
    this.peerAddress = options.peerAddress ?? (socket ? addressOf(socket, "remote", this.kind) : undefined)
    this.socket = socket
    this.input = io.input
    this.output = io.output
    this.inbox = this.newInbox(this)
    this.state = socket instanceof tls.TLSSocket
      ? new Tls(!socket.pending && socket.encrypted ? sessionOf(socket) : undefined, false)
      : plain
    this.onData = this.received.bind(this)
    this.onEnd = this.endedCleanly.bind(this)
    this.onError = this.ended.bind(this)
    this.listen(this.input)
    if (this.output !== (this.input as unknown)) this.output.on("error", this.onError)
    this.catchUp(this.input)
  }

  // --- hooks for a connection that carries more (UnixDescriptorTransport) --

  /** StartTLS was asked for, before its checks. */
  startingTls(): void {}

  /** The consumer took the end of input, clean or not. */
  readerEnded(): void {}

  // --- state ---------------------------------------------------------------

  /** What the bytes run through, whoever owns the connection now. */
  private get layer(): Layer {
    const s = this.state
    return s._tag === "Detached" || s._tag === "Closing" ? s.layer : s
  }

  private setLayer(layer: Layer): void {
    const s = this.state
    if (s._tag === "Detached" || s._tag === "Closing") s.layer = layer
    else this.state = layer
  }

  private get isDetached(): boolean {
    const s = this.state
    return s._tag === "Detached" || (s._tag === "Closing" && s.detached)
  }

  private get isClosing(): boolean {
    return this.state._tag === "Closing"
  }

  /** Whether StartTLS can work now: a plain socket. */
  get canStartTls(): boolean {
    return this.socket !== undefined && this.state._tag === "Plain"
  }

  /** Whether this connection has the TLS capability at all (a pair of streams has not). */
  get hasSocket(): boolean {
    return this.io.socket !== undefined
  }

  info(): ConnectionInfo {
    const layer = this.layer
    const session = layer._tag === "Tls" ? layer.session : undefined
    return {
      kind: this.kind,
      ...(this.localAddress !== undefined ? { localAddress: this.localAddress } : {}),
      ...(this.peerAddress !== undefined ? { peerAddress: this.peerAddress } : {}),
      ...(session !== undefined ? { tls: session } : {})
    }
  }

  readState(): ReadState {
    return { ...this.inbox.size, paused: this.inbox.isPaused }
  }

  /** The socket under the connection now (the `TLSSocket` after StartTLS). */
  currentSocket(): Duplex | undefined {
    return this.socket
  }

  // --- reading -------------------------------------------------------------

  private newInbox<E>(onEnd?: EndListener): Inbox<E> {
    return new Inbox<E>(this.options.readBufferChunks ?? 16, this.options.readHighWaterMark ?? MiB, onEnd)
  }

  get takeChunks(): Effect.Effect<ReadonlyArray<Uint8Array> | undefined, ReadError> {
    return this.inbox.take
  }

  private received(chunk: Buffer): void {
    const s = this.state
    if (s._tag === "Tls") s.justStarted = false
    this.inbox.offer(chunk)
  }

  private endedCleanly(): void {
    this.ended(undefined)
  }

  /** The end of input (`error` undefined: a clean one), as the protocol must hear it. */
  private ended(error: unknown): void {
    const layer = this.layer
    const closing = this.isClosing
    let failure = error !== undefined ? mapError(error, duringOf(layer)) : undefined
    if (!closing && (failure === undefined || failure._tag === "ConnectionLost")) failure = blame(layer, failure?.cause) ?? failure
    if (layer._tag === "Handshake") layer.fail(failure ?? new ConnectionLost({ reason: closing ? "closed by us" : "closed" }))
    this.inbox.finish(failure !== undefined ? Exit.fail(failure) : Exit.void)
  }

  private listen(s: Readable): void {
    s.on("data", this.onData)
    s.on("end", this.onEnd)
    s.on("error", this.onError)
    s.on("close", this.onEnd)
    this.inbox.source = s
  }

  private unlisten(s: Readable): void {
    s.off("data", this.onData)
    s.off("end", this.onEnd)
    s.off("error", this.onError)
    s.off("close", this.onEnd)
    this.inbox.release()
  }

  /** Events that came before we listened (between connect and now). */
  private catchUp(s: Readable): void {
    if (s.errored) this.ended(s.errored)
    else if (s.destroyed || s.readableEnded) this.ended(undefined)
  }

  // --- writing -------------------------------------------------------------

  private canWrite(out: Writable): boolean {
    const tag = this.state._tag
    return tag !== "Detached" && tag !== "Closing" && !out.destroyed && !out.writableEnded
  }

  offer(bytes: Uint8Array): boolean {
    const out = this.output
    if (!this.canWrite(out)) return false
    out.write(bytes)
    return out.writableLength <= this.highWaterMark
  }

  offerv(chunks: ReadonlyArray<Uint8Array>): boolean {
    const out = this.output
    if (!this.canWrite(out)) return false
    // Corked writes leave in one writev().
    out.cork()
    for (const c of chunks) out.write(c)
    out.uncork()
    return out.writableLength <= this.highWaterMark
  }

  get writable(): Effect.Effect<void, ConnectionLost> {
    return (this.writableEffect ??= Effect.suspend(() =>
      this.isDetached
        ? Effect.fail(new ConnectionLost({ reason: "closed by us", detail: "handed to another protocol" }))
        : this.drained()
    ))
  }

  private lostOnWrite(): ConnectionLost {
    return new ConnectionLost({ reason: this.isClosing ? "closed by us" : "closed" })
  }

  /** Waits until the output drains under the mark. Call inside `Effect.suspend`. */
  private drained(): Effect.Effect<void, ConnectionLost> {
    const out = this.output
    if (this.isClosing || out.destroyed || out.writableEnded) return Effect.fail(this.lostOnWrite())
    if (out.writableLength <= this.highWaterMark) return Effect.void
    return Effect.async<void, ConnectionLost>((resume) => {
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
        resume(Effect.fail(this.lostOnWrite()))
      }
      out.on("drain", onDrain)
      out.on("close", onGone)
      return Effect.sync(cleanup)
    })
  }

  // --- closing -------------------------------------------------------------

  /** Ends our side, waits (at most `closeTimeoutMillis`) for the other, then tears down. Idempotent. */
  get close(): Effect.Effect<void> {
    return (this.closeEffect ??= Effect.suspend(() => {
      const s = this.state
      return (s._tag === "Closing" ? s : this.startClose()).closed.await
    }))
  }

  private startClose(): Closing {
    const closing = new Closing(this.layer, this.isDetached)
    this.state = closing
    this.inbox.drain()
    // Destroy what we own; not this process's stdio.
    const destroy = this.socket !== undefined || this.options.destroyOnClose === true
    let timer: ReturnType<typeof setTimeout> | undefined = undefined
    const done = () => {
      if (timer !== undefined) clearTimeout(timer)
      this.finishClose(closing, destroy)
    }
    const socket = this.socket
    const out = this.output
    if (socket !== undefined ? socket.destroyed : out.destroyed || out.writableFinished) {
      done()
      return closing
    }
    timer = setTimeout(done, this.options.closeTimeoutMillis ?? 2000)
    if (socket !== undefined) endSocket(socket, done)
    else endOutput(out, done)
    return closing
  }

  /** Ends the close: destroys what we own (or lets go of the input), settles `incoming` and `close`. */
  private finishClose(closing: Closing, destroy: boolean): void {
    if (destroy) {
      const roots: ReadonlyArray<Readable | Writable> = this.io.socket ? [this.io.socket] : [this.io.input, this.io.output]
      for (const r of roots) if (!r.destroyed) r.destroy()
      if (this.socket !== undefined && !this.socket.destroyed) this.socket.destroy()
    } else {
      this.unlisten(this.input)
      this.input.pause()
    }
    this.ended(undefined)
    closing.closed.done(Exit.void)
  }

  // --- StartTLS ------------------------------------------------------------

  startTls(options: TlsOptions, leftover: Uint8Array): Effect.Effect<TlsUpgrade, StartTlsError> {
    return Effect.suspend(() => {
      this.startingTls()
      return this.beginTls(options, leftover)
    })
  }

  private refuseTls(): StartTlsError | undefined {
    if (this.socket === undefined) return new TransportUnsupported({ operation: "StartTLS", transport: this.kind })
    if (this.isDetached) {
      return new TransportUnsupported({ operation: "StartTLS", transport: `${this.kind} (handed to another protocol)` })
    }
    if (this.layer._tag !== "Plain") return new OnlyOneTLS({})
    if (this.isClosing) return new TlsError({ detail: "the connection is already closed" })
    return undefined
  }

  private beginTls(options: TlsOptions, leftover: Uint8Array): Effect.Effect<TlsUpgrade, StartTlsError> {
    const refused = this.refuseTls()
    if (refused !== undefined) return Effect.fail(refused)
    const raw = this.socket!
    if (raw.destroyed) return Effect.succeed(this.goneBeforeTls())
    let secureContext: tls.SecureContext
    try {
      secureContext = tls.createSecureContext(secureContextOptions(options))
    } catch (e) {
      return Effect.fail(new TlsError({ detail: `bad TLS settings: ${(e as Error).message}`, cause: e }))
    }
    try {
      return Effect.succeed(this.upgrade(raw, options, secureContext, leftover))
    } catch (e) {
      // Node refused the socket or the options after we took the socket over: the connection is lost.
      const error = new TlsError({ detail: `cannot start TLS: ${(e as Error).message}`, cause: e })
      this.inbox.finish(Exit.fail(error))
      raw.destroy()
      return Effect.fail(error)
    }
  }

  /**
   * The peer went away before we could start (Twisted's `_justStartedTLS` reading): the
   * handshake fails, and so does `incoming`, unless its end has been seen already.
   */
  private goneBeforeTls(): TlsUpgrade {
    const error = new PeerVerifyError({ detail: "the peer closed the connection before the TLS handshake" })
    this.inbox.takeNow()
    this.inbox.reopen()
    this.inbox.finish(Exit.fail(error))
    const handshake = new Handshake()
    handshake.fail(error)
    this.setLayer(handshake)
    return { handshake: Effect.fail(error) }
  }

  /** The socket juggling of StartTLS, once the checks have passed. */
  private upgrade(raw: Duplex, options: TlsOptions, secureContext: tls.SecureContext, leftover: Uint8Array): TlsUpgrade {
    const base = this.handToTls(raw, leftover)
    const isServer = (options.role ?? this.options.role) === "server"
    const tlsSocket = tlsSocketOver(base, options, secureContext, isServer)
    const handshake = new Handshake()
    this.setLayer(handshake)
    this.socket = tlsSocket
    this.input = tlsSocket
    this.output = tlsSocket
    this.armHandshakeTimer(handshake, tlsSocket)
    const verify = isServer && options.ca !== undefined
    tlsSocket.once(isServer ? "secure" : "secureConnect", () => this.secured(handshake, tlsSocket, isServer, verify))
    this.listen(tlsSocket)
    // The raw socket's own errors reach us through the TLS socket; this keeps them from being unhandled.
    raw.on("error", ignore)
    return { handshake: handshake.done.await }
  }

  /** Stops reading `raw` and puts the first TLS records in front of it: the leftover, then what nobody took yet. */
  private handToTls(raw: Duplex, leftover: Uint8Array): Duplex {
    this.unlisten(raw)
    raw.pause()
    const prefix = concatBytes([leftover, ...this.inbox.takeNow()])
    // A clean end nobody has seen yet belongs to TLS now (a handshake cut off half-way).
    this.inbox.reopen()
    if (sawEof(raw)) return endedWithPrefix(raw, raw, prefix)
    if (prefix.length > 0) raw.unshift(asBuffer(prefix)) // TLSSocket reads the socket's buffer first
    return raw
  }

  private armHandshakeTimer(handshake: Handshake, tlsSocket: tls.TLSSocket): void {
    const timeout = this.options.handshakeTimeoutMillis ?? 30_000
    if (timeout <= 0) return
    handshake.timer = setTimeout(() => {
      const error = new TlsError({ detail: `the TLS handshake did not finish within ${timeout} ms`, code: "ETIMEDOUT" })
      this.tlsFailed(handshake, tlsSocket, error)
    }, timeout)
  }

  private tlsFailed(handshake: Handshake, tlsSocket: tls.TLSSocket, error: TlsError): void {
    handshake.fail(error)
    this.inbox.finish(Exit.fail(error))
    tlsSocket.destroy()
  }

  /**
   * The handshake is done. A server-side `TLSSocket` made outside `tls.Server` does not act
   * on the chain's verdict (only `tls.Server` does), so we do (`verify`).
   */
  private secured(handshake: Handshake, tlsSocket: tls.TLSSocket, isServer: boolean, verify: boolean): void {
    if (handshake.timer !== undefined) clearTimeout(handshake.timer)
    const error = verify ? verifyErrorOf(tlsSocket) : undefined
    if (error !== undefined) {
      const code = (error as NodeJS.ErrnoException).code ?? "CERT_REJECTED"
      return this.tlsFailed(handshake, tlsSocket, new TlsError({ detail: `the peer's certificate was refused: ${error.message}`, code, cause: error }))
    }
    const session = sessionOf(tlsSocket, isServer ? verify : tlsSocket.authorized)
    this.setLayer(new Tls(session, true))
    handshake.done.done(Exit.succeed(session))
  }

  // --- handing over --------------------------------------------------------

  /** Stops feeding `incoming` (it ends) and returns what was read but not consumed, leftover first. */
  private takeOver(leftover: Uint8Array): { readonly pending: Uint8Array; readonly before: Exit.Exit<void, ReadError> | undefined } {
    const s = this.state
    if (s._tag === "Closing") s.detached = true
    else this.state = new Detached(this.layer)
    this.unlisten(this.input)
    if (this.output !== (this.input as unknown)) this.output.off("error", this.onError)
    const pending = concatBytes([leftover, ...this.inbox.takeNow()])
    const before = this.inbox.exitValue
    this.inbox.finish(Exit.void)
    return { pending, before }
  }

  detach(leftover: Uint8Array): Effect.Effect<RawConnection, TransportUnsupported> {
    return Effect.suspend(() => this.isDetached ? alreadyDetached(this.kind) : Effect.succeed(this.rawConnection(leftover)))
  }

  private rawConnection(leftover: Uint8Array): RawConnection {
    const source = this.input
    const { before, pending } = this.takeOver(leftover)
    const raw = this.newInbox<ConnectionLost>()
    if (pending.length > 0) raw.offer(pending)
    if (before === undefined) this.feed(raw, source)
    else raw.finish(Exit.isSuccess(before) ? Exit.void : Exit.mapError(before, toConnectionLost))
    return {
      incoming: raw.stream(),
      write: (bytes) => Effect.suspend(() => this.rawWrite(bytes)),
      end: this.close,
      info: () => this.info()
    }
  }

  /** From now on `source` feeds the raw connection's inbox. */
  private feed(raw: Inbox<ConnectionLost>, source: Readable): void {
    const onRawError = (e: Error) => raw.finish(Exit.fail(toConnectionLost(mapError(e, duringOf(this.layer)))))
    const onRawEnd = () => raw.finish(Exit.void)
    source.on("data", (chunk: Buffer) => raw.offer(chunk))
    source.on("end", onRawEnd)
    source.on("close", onRawEnd)
    source.on("error", onRawError)
    if (this.output !== (source as unknown)) this.output.on("error", onRawError)
    raw.source = source
    source.resume()
  }

  private rawWrite(bytes: Uint8Array): Effect.Effect<void, ConnectionLost> {
    const out = this.output
    if (this.isClosing || out.destroyed || out.writableEnded) return Effect.fail(this.lostOnWrite())
    out.write(bytes)
    return out.writableLength <= this.highWaterMark ? Effect.void : this.drained()
  }

  detachToDuplex(leftover: Uint8Array): Effect.Effect<Duplex, TransportUnsupported> {
    return Effect.suspend(() => this.isDetached ? alreadyDetached(this.kind) : Effect.succeed(this.duplex(leftover)))
  }

  private duplex(leftover: Uint8Array): Duplex {
    const s = this.input
    s.pause()
    const { pending } = this.takeOver(leftover)
    // Until the new owner listens, an error must not be unhandled (it reaches their listeners too).
    s.on("error", ignore)
    // Unshifted bytes come before the end a stream has not emitted yet; after it, only a wrapper can carry them.
    if (s.readableEnded) return endedWithPrefix(s, this.output, pending)
    if (pending.length > 0) s.unshift(asBuffer(pending))
    // As Node's HTTP server does on an upgrade: the next reader's 'data' listener starts the flow.
    const reader: { readableFlowing: boolean | null } = s
    reader.readableFlowing = null
    return this.socket ?? Duplex.from({ readable: this.input, writable: this.output })
  }
}
