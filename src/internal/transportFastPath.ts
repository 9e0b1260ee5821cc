/**
 * What our own transports give the box protocol beyond the public
 * `Transport`: a write that never suspends and says when to wait, several
 * chunks in one call, every waiting chunk in one pull, and descriptor passing.
 *
 * The public contract stays small (an Effect `write` that waits at the
 * high-water mark); these are the speed of the hot path and stay internal,
 * keyed by a symbol that is not exported from the package. A transport a
 * user writes has none: the protocol then drives its `write` through
 * {@link pump}, which queues boxes the same way.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type * as Scope from "effect/Scope"
import type { ConnectionLost, PeerVerifyError, TlsError } from "../AmpError.js"
import type { Transport } from "../Transport.js"
import type { DescriptorChannel } from "./descriptors.js"

/** The key of a transport's {@link FastPath}. */
export const FastPathId: unique symbol = Symbol.for("effect-amp/Transport/FastPath")

/** The internal side of a transport (see the module's comment). */
export interface FastPath {
  /**
   * Queues bytes for the peer; never suspends. `false` once the bytes queued
   * pass the high-water mark: wait for {@link writable} before writing more.
   * Bytes offered after the end are dropped (the end is reported by the reader).
   */
  readonly offer: (bytes: Uint8Array) => boolean
  /** {@link offer} of several byte strings, in order, as one system call where it can. */
  readonly offerv?: (chunks: ReadonlyArray<Uint8Array>) => boolean
  /** Completes when the queued bytes are back under the high-water mark. */
  readonly writable: Effect.Effect<void, ConnectionLost>
  /**
   * The same bytes as `incoming`, every chunk that is waiting (at least one),
   * or `undefined` at a clean end: pulling a `Stream` costs a channel step per chunk.
   */
  readonly takeChunks?: Effect.Effect<ReadonlyArray<Uint8Array> | undefined, ConnectionLost | TlsError | PeerVerifyError>
  /** File descriptors beside the bytes (SCM_RIGHTS on a UNIX socket), for `Argument.Descriptor`. */
  readonly descriptors?: DescriptorChannel
  /** When present, the protocol closes through this rather than `Transport.close` (it writes what is queued first). */
  readonly close?: Effect.Effect<void>
}

interface Carrier {
  readonly [FastPathId]?: FastPath
}

/** The transport's fast path, if it has one. */
export const fastPathOf = (transport: Transport): FastPath | undefined => (transport as Carrier)[FastPathId]

/** Gives `transport` its fast path (not enumerable: spreading a transport does not copy it). */
export const withFastPath = <T extends Transport>(transport: T, fast: FastPath): T => {
  Object.defineProperty(transport, FastPathId, { value: fast, enumerable: false, configurable: true })
  return transport
}

/** The public `write` of a transport that has a fast path: offer, then wait at the high-water mark. */
export const writeThrough = (fast: FastPath) => (bytes: Uint8Array): Effect.Effect<void, ConnectionLost> =>
  Effect.suspend(() => (fast.offer(bytes) ? Effect.void : fast.writable))

/** How long a pumped close waits for the queue to go out before it closes anyway. */
const PUMP_CLOSE_WAIT = "5 seconds"

/**
 * A fast path over any transport's Effect `write`: offered bytes queue here
 * and one fiber (in the current scope) writes them in order. `offer` says
 * `false` once `highWaterMark` bytes are queued; `writable` waits until they
 * are back under it. The first failed write ends the pump: later offers are
 * dropped and `writable` fails with that error. `close` waits (at most 5 s)
 * until the queue is written, then closes the transport.
 */
export const pump = (transport: Transport, highWaterMark = 1024 * 1024): Effect.Effect<FastPath, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue: Array<Uint8Array> = []
    let queued = 0
    let lost: ConnectionLost | undefined
    let work = Deferred.unsafeMake<void>(FiberId.none)
    let room: Deferred.Deferred<void, ConnectionLost> | undefined
    let empty: Deferred.Deferred<void> | undefined

    const settle = (): void => {
      if (room !== undefined && (queued < highWaterMark || lost !== undefined)) {
        Deferred.unsafeDone(room, lost === undefined ? Exit.void : Exit.fail(lost))
        room = undefined
      }
      if (empty !== undefined && (queued === 0 || lost !== undefined)) {
        Deferred.unsafeDone(empty, Exit.void)
        empty = undefined
      }
    }
    const writeNext: Effect.Effect<void> = Effect.suspend(() => {
      const bytes = queue.shift()!
      return Effect.matchEffect(transport.write(bytes), {
        onFailure: (e) =>
          Effect.sync(() => {
            lost = e
            queue.length = 0
            queued = 0
            settle()
          }),
        onSuccess: () =>
          Effect.sync(() => {
            queued -= bytes.length
            settle()
          })
      })
    })
    const loop: Effect.Effect<void> = Effect.suspend(() => {
      if (lost !== undefined) return Effect.void
      if (queue.length === 0) {
        work = Deferred.unsafeMake<void>(FiberId.none)
        return Effect.zipRight(Deferred.await(work), loop)
      }
      return Effect.zipRight(writeNext, loop)
    })
    const writer = yield* Effect.forkScoped(loop)

    const offer = (bytes: Uint8Array): boolean => {
      if (lost !== undefined) return true
      queue.push(bytes)
      queued += bytes.length
      Deferred.unsafeDone(work, Exit.void)
      return queued < highWaterMark
    }
    const writable: Effect.Effect<void, ConnectionLost> = Effect.suspend(() => {
      if (lost !== undefined) return Effect.fail(lost)
      if (queued < highWaterMark) return Effect.void
      room ??= Deferred.unsafeMake(FiberId.none)
      return Deferred.await(room)
    })
    const drained: Effect.Effect<void> = Effect.suspend(() => {
      if (queued === 0 || lost !== undefined) return Effect.void
      empty ??= Deferred.unsafeMake(FiberId.none)
      return Deferred.await(empty)
    })
    const close = Effect.zipRight(
      Effect.zipRight(Effect.timeout(drained, PUMP_CLOSE_WAIT).pipe(Effect.ignore), Fiber.interrupt(writer)),
      transport.close
    )
    return {
      offer,
      offerv: (chunks) => chunks.reduce((ok, c) => offer(c) && ok, true),
      writable,
      close
    }
  })
