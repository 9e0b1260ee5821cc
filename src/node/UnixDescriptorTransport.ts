/**
 * A UNIX-socket `Transport` that also carries file descriptors (Twisted's
 * `IUNIXTransport.sendFileDescriptor`, and `Argument.Descriptor` on top).
 *
 * The bytes go through the same machinery as every Node transport
 * (`NodeTransport`); the socket under it is our own small native addon
 * (native/fdpass.c), since `net.Socket` drops ancillary data. The addon is
 * built when the package is installed; without it, {@link available} is
 * false, {@link fromSocket} gives the plain transport, and
 * `Argument.Descriptor` fails with an error that says how to enable it.
 *
 * Use it through `NodeServer.listen` / `NodeConnect.connect` on a `unix`
 * address with the `descriptors` option, or wrap a connected UNIX
 * `net.Socket` yourself with {@link fromSocket}.
 *
 * Limits: at most {@link Options.maxUnclaimed} received descriptors waiting
 * to be claimed by a box (default 4096); one more ends the connection with
 * {@link TooManyDescriptors}. Linux carries at most 253 descriptors per
 * message; more staged at once go out on one byte each batch.
 *
 * @since 0.1.0
 */
import { closeSync } from "node:fs"
import type * as net from "node:net"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import { DESCRIPTOR_FAILURE, type DescriptorChannel } from "../internal/descriptors.js"
import { fastPathOf } from "../internal/transportFastPath.js"
import type { Transport, WithTlsAndDetach } from "../Transport.js"
import { transportOf } from "./internal/ConnectionTransport.js"
import { FdSocket } from "./internal/FdSocket.js"
import { errnoError, fdpass, type FdPass, whyUnavailable } from "./internal/fdpass.js"
import { type Io, NodeConnection } from "./internal/NodeConnection.js"
import * as NodeTransport from "./NodeTransport.js"

/**
 * The peer sent more descriptors than the connection lets wait unclaimed.
 *
 * @since 0.1.0
 */
export class TooManyDescriptors extends Data.TaggedError("TooManyDescriptors")<{ readonly limit: number }> {
  override get message(): string {
    return `the peer sent more than ${this.limit} descriptors that no box has claimed (maxUnclaimed): closing the connection`
  }
}

/**
 * Options of {@link fromSocket}.
 *
 * @since 0.1.0
 */
export interface Options extends NodeTransport.Options {
  /** Received descriptors waiting for their box at once; one more ends the connection. Default {@link DEFAULT_MAX_UNCLAIMED}. */
  readonly maxUnclaimed?: number
}

/**
 * Whether descriptor passing works here (the native addon is built and loads).
 *
 * @since 0.1.0
 */
export const available = (): boolean => fdpass() !== undefined

/**
 * Why descriptor passing does not work here, with how to enable it; `undefined` when it does.
 *
 * @since 0.1.0
 */
export const unavailableReason = (): string | undefined => whyUnavailable()

/** A connection's ordinals and the descriptors in flight (Twisted's `_DescriptorExchanger`, with a cap). */
class Channel implements DescriptorChannel {
  private sent = 0
  private staging: Array<number> = []
  private arrivedCount = 0
  private readonly received = new Map<number, number>()
  /** Set at StartTLS: Twisted carries no descriptors over TLS. */
  tls = false
  private ended = false
  onOverflow: (error: TooManyDescriptors) => void = () => undefined

  constructor(private readonly addon: FdPass, private readonly limit: number) {}

  stage(fd: number): number {
    if (this.tls) throw new Error("descriptors cannot be sent after StartTLS: Twisted carries none over TLS")
    if (this.ended) throw new Error("the connection has ended")
    const copy = this.addon.dup(fd)
    if (copy < 0) throw new Error(`cannot duplicate descriptor ${fd} to send it: ${errnoError(copy, "dup").code}`)
    this.staging.push(copy)
    return this.sent++
  }

  staged(): number {
    return this.sent
  }

  unstage(mark: number): void {
    while (this.sent > mark && this.staging.length > 0) {
      this.addon.closeFd(this.staging.pop()!)
      this.sent--
    }
  }

  takeStaged(max: number): Array<number> {
    return this.staging.length <= max ? this.staging.splice(0) : this.staging.splice(0, max)
  }

  stagedCount(): number {
    return this.staging.length
  }

  claim(ordinal: number): number {
    if (this.tls) throw new Error(`${DESCRIPTOR_FAILURE} ${ordinal}: descriptors do not pass after StartTLS (Twisted closes them)`)
    const fd = this.received.get(ordinal)
    if (fd === undefined) {
      throw new Error(
        ordinal < this.arrivedCount
          ? `${DESCRIPTOR_FAILURE} ${ordinal} was claimed by an earlier box already`
          : `${DESCRIPTOR_FAILURE} ${ordinal} names a descriptor that never arrived (${this.arrivedCount} received on this connection so far)`
      )
    }
    this.received.delete(ordinal)
    return fd
  }

  release(fd: number): void {
    this.addon.closeFd(fd)
  }

  arrived(fds: ReadonlyArray<number>): void {
    if (this.tls || this.ended) {
      for (const fd of fds) this.addon.closeFd(fd)
      return
    }
    for (const fd of fds) this.received.set(this.arrivedCount++, fd)
    if (this.received.size > this.limit) this.onOverflow(new TooManyDescriptors({ limit: this.limit }))
  }

  /** Closes every descriptor nobody claimed, and the staged ones nobody sent. */
  dispose(): void {
    this.ended = true
    for (const fd of this.received.values()) this.addon.closeFd(fd)
    this.received.clear()
    for (const fd of this.staging.splice(0)) this.addon.closeFd(fd)
  }

  get unclaimed(): number {
    return this.received.size
  }
}

/**
 * A NodeConnection that carries descriptors beside the bytes: StartTLS ends
 * descriptor passing (Twisted carries none over TLS), and once the reader
 * has seen the end, what nobody claimed is closed.
 */
class DescriptorConnection extends NodeConnection {
  constructor(io: Io, options: NodeTransport.StreamOptions, readonly descriptors: Channel) {
    super(io, options)
  }

  override startingTls(): void {
    this.descriptors.tls = true
  }

  override readerEnded(): void {
    this.descriptors.dispose()
  }
}

/**
 * The default cap on received descriptors waiting for their box. A sender
 * that pipelines many boxes in one write sends all their descriptors ahead
 * of the bytes (each must arrive no later than its box), so the cap is also
 * the most descriptors a peer may pipeline at once.
 *
 * @since 0.1.0
 */
export const DEFAULT_MAX_UNCLAIMED = 4096

/**
 * A descriptor-capable transport over a connected UNIX `net.Socket`, which
 * must not have read anything yet (accept with `pauseOnConnect`, connect
 * with the socket paused): the addon takes over a duplicate of its
 * descriptor and the socket itself is destroyed. Without the addon, the
 * plain `NodeTransport` over the socket.
 *
 * Unclaimed descriptors are closed when the transport's reader sees the end
 * of the connection, and at the latest with the scope.
 *
 * @since 0.1.0
 */
export const fromSocket = (socket: net.Socket, options: Options): Effect.Effect<WithTlsAndDetach, never, Scope.Scope> =>
  Effect.gen(function*() {
    const addon = fdpass()
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd
    if (addon === undefined || typeof fd !== "number" || fd < 0) return yield* NodeTransport.fromSocket(socket, options)
    const copy = addon.dup(fd)
    if (copy < 0) return yield* NodeTransport.fromSocket(socket, options)
    socket.destroy()
    const channel = new Channel(addon, options.maxUnclaimed ?? DEFAULT_MAX_UNCLAIMED)
    const raw = new FdSocket(addon, copy, {
      onDescriptors: (fds) => channel.arrived(fds),
      takeStaged: (max) => channel.takeStaged(max),
      stagedCount: () => channel.stagedCount()
    })
    channel.onOverflow = (error) => raw.destroy(error)
    const scope = yield* Effect.scope
    yield* Scope.addFinalizer(scope, Effect.sync(() => channel.dispose()))
    const io = { socket: raw, input: raw, output: raw }
    const transport = yield* transportOf(io, { kind: "unix", ...options }, (io, options) => new DescriptorConnection(io, options, channel))
    return transport as WithTlsAndDetach
  })

/**
 * Received descriptors not yet claimed by a box, for tests and diagnostics;
 * `undefined` for a transport without descriptor passing.
 *
 * @since 0.1.0
 */
export const unclaimed = (transport: Transport): number | undefined => {
  const channel = fastPathOf(transport)?.descriptors
  return channel instanceof Channel ? channel.unclaimed : undefined
}

/**
 * A received descriptor tied to the current Scope: closed when the scope
 * closes, or earlier with the returned `close` (at most once either way).
 *
 * @since 0.1.0
 */
export const own = (fd: number): Effect.Effect<{ readonly fd: number; readonly close: Effect.Effect<void> }, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(Effect.sync(() => ({ open: true })), (held) => Effect.sync(() => shut(held, fd))),
    (held) => ({ fd, close: Effect.sync(() => shut(held, fd)) })
  )

const shut = (held: { open: boolean }, fd: number): void => {
  if (!held.open) return
  held.open = false
  try {
    closeSync(fd)
  } catch {
    // closed behind our back: nothing left to do
  }
}

/**
 * A new pipe, `[readFd, writeFd]` (close-on-exec), for handing one end to a
 * peer. Fails when the addon is not built.
 *
 * @since 0.1.0
 */
export const pipe = (): Effect.Effect<readonly [number, number], Error> =>
  Effect.try({
    try: () => {
      const addon = fdpass()
      if (addon === undefined) throw new Error(whyUnavailable())
      return addon.pipe()
    },
    catch: (e) => (e instanceof Error ? e : new Error(String(e)))
  })
