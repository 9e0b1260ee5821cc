/**
 * Two connected in-memory transports, for tests: no sockets, any chunking,
 * and the power to close or break either end. Runs anywhere, and under
 * `TestClock` (nothing here sleeps).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Mailbox from "effect/Mailbox"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { ConnectionLost } from "./AmpError.js"
import type { ConnectionInfo, RawConnection, Transport } from "./Transport.js"
import { type FastPath, withFastPath, writeThrough } from "./internal/transportFastPath.js"

/** How bytes written on one end are cut into chunks on the other. */
export type Chunking =
  /** Delivered as written (the default). */
  | { readonly _tag: "AsWritten" }
  /** Cut into chunks of `size` bytes (1 exercises every straddle). */
  | { readonly _tag: "Fixed"; readonly size: number }
  /** Cut at pseudo-random points from a seed, reproducibly. */
  | { readonly _tag: "Random"; readonly seed: number; readonly maxSize: number }

/** Options of {@link makePair}. */
export interface PairOptions {
  readonly chunking?: Chunking
  /** Bytes in flight towards an end before its writer is told to wait. Default 1 MiB. */
  readonly highWaterMark?: number
}

/** The test's hand on one end. */
export interface Control {
  /** Ends this end gracefully: the peer's `incoming` ends cleanly. */
  readonly close: Effect.Effect<void>
  /** Breaks the connection from this end: both ends see `ConnectionLost` with `reason: "reset"`. */
  readonly fail: (detail: string) => Effect.Effect<void>
  /** Every byte this end has written so far, in order. */
  readonly written: () => Uint8Array
  /** How many writes this end has made (to check coalescing). */
  readonly writes: () => number
  /** Bytes sent towards this end that it has not pulled yet. */
  readonly backlog: () => number
}

/** One end of a pair. */
export interface End {
  readonly transport: Transport
  readonly control: Control
}

/** Deterministic PRNG (mulberry32) for reproducible random chunking. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const chunker = (chunking: Chunking): (bytes: Uint8Array) => Array<Uint8Array> => {
  switch (chunking._tag) {
    case "AsWritten":
      return (bytes) => [bytes]
    case "Fixed":
      return (bytes) => {
        const out: Array<Uint8Array> = []
        for (let i = 0; i < bytes.length; i += chunking.size) out.push(bytes.subarray(i, i + chunking.size))
        return out
      }
    case "Random": {
      const rand = prng(chunking.seed)
      return (bytes) => {
        const out: Array<Uint8Array> = []
        let i = 0
        while (i < bytes.length) {
          const n = 1 + Math.floor(rand() * chunking.maxSize)
          out.push(bytes.subarray(i, i + n))
          i += n
        }
        return out
      }
    }
  }
}

interface Side {
  name: string
  /** Where bytes for this side go: the box protocol's stream, or a detached raw connection. */
  inbox: Mailbox.Mailbox<Uint8Array, ConnectionLost>
  inFlight: number
  waiters: Array<() => void>
  written: Array<Uint8Array>
  ended: boolean
}

/**
 * Two transports wired to each other. Closing the scope closes both.
 *
 * @example
 * const [client, server] = yield* MemoryTransport.makePair({ chunking: { _tag: "Fixed", size: 1 } })
 */
export const makePair = (options?: PairOptions): Effect.Effect<readonly [End, End], never, Scope.Scope> =>
  Effect.gen(function*() {
    const cut = chunker(options?.chunking ?? { _tag: "AsWritten" })
    const highWaterMark = options?.highWaterMark ?? 1024 * 1024
    const newSide = (name: string): Effect.Effect<Side> =>
      Effect.map(Mailbox.make<Uint8Array, ConnectionLost>(), (inbox) => ({
        name,
        inbox,
        inFlight: 0,
        waiters: [],
        written: [],
        ended: false
      }))
    const a = yield* newSide("a")
    const b = yield* newSide("b")

    const wake = (s: Side) => {
      const ws = s.waiters
      s.waiters = []
      for (const w of ws) w()
    }

    /** Ends both directions with `exit` for `s` and `peerExit` for its peer. */
    const shut = (s: Side, peer: Side, exit: Exit.Exit<void, ConnectionLost>, peerExit: Exit.Exit<void, ConnectionLost>) => {
      if (!s.ended) {
        s.ended = true
        s.inbox.unsafeDone(exit)
        wake(s)
      }
      if (!peer.ended) {
        peer.ended = true
        peer.inbox.unsafeDone(peerExit)
        wake(peer)
      }
    }

    const makeEnd = (self: Side, peer: Side): End => {
      const info = (): ConnectionInfo => ({
        kind: "memory",
        localAddress: `memory:${self.name}`,
        peerAddress: `memory:${peer.name}`
      })
      const deliver = (bytes: Uint8Array): boolean => {
        if (self.ended || peer.ended || bytes.length === 0) return !self.ended
        self.written.push(bytes.slice())
        for (const c of cut(bytes)) {
          peer.inFlight += c.length
          peer.inbox.unsafeOffer(c)
        }
        return peer.inFlight <= highWaterMark
      }
      const pulled = (c: Uint8Array) => {
        self.inFlight -= c.length
        if (self.inFlight <= highWaterMark) {
          const ws = peer.waiters
          peer.waiters = []
          for (const w of ws) w()
        }
      }
      const close = Effect.sync(() => shut(self, peer, Exit.void, Exit.void))
      const fast: FastPath = {
        offer: deliver,
        writable: Effect.async<void, ConnectionLost>((resume) => {
          if (self.ended || peer.ended) return resume(Effect.fail(new ConnectionLost({ reason: "closed" })))
          if (peer.inFlight <= highWaterMark) return resume(Effect.void)
          self.waiters.push(() => resume(Effect.void))
        })
      }
      const transport: Transport = withFastPath({
        incoming: Stream.suspend(() => Mailbox.toStream(self.inbox)).pipe(Stream.tap((c) => Effect.sync(() => pulled(c)))),
        write: writeThrough(fast),
        close,
        detach: (leftover) =>
          Effect.gen(function*() {
            // Move what nobody pulled yet behind the leftover, then end the box protocol's stream.
            const queued = yield* Effect.orElseSucceed(self.inbox.clear, () => [] as Iterable<Uint8Array>)
            const raw = yield* Mailbox.make<Uint8Array, ConnectionLost>()
            if (leftover.length > 0) raw.unsafeOffer(leftover)
            raw.unsafeOfferAll(queued)
            const old = self.inbox
            self.inbox = raw
            yield* old.end
            const connection: RawConnection = {
              incoming: Mailbox.toStream(raw).pipe(Stream.tap((c) => Effect.sync(() => pulled(c)))),
              write: (bytes) =>
                self.ended ? Effect.fail(new ConnectionLost({ reason: "closed" })) : Effect.sync(() => void deliver(bytes)),
              end: close,
              info
            }
            return connection
          }),
        info
      }, fast)
      const control: Control = {
        close,
        fail: (detail) =>
          Effect.sync(() => {
            const lost = Exit.fail(new ConnectionLost({ reason: "reset", detail }))
            shut(self, peer, lost, lost)
          }),
        written: () => {
          const n = self.written.reduce((s, c) => s + c.length, 0)
          const out = new Uint8Array(n)
          let at = 0
          for (const c of self.written) {
            out.set(c, at)
            at += c.length
          }
          return out
        },
        writes: () => self.written.length,
        backlog: () => self.inFlight
      }
      return { transport, control }
    }

    const ends = [makeEnd(a, b), makeEnd(b, a)] as const
    yield* Effect.addFinalizer(() => Effect.sync(() => shut(a, b, Exit.void, Exit.void)))
    return ends
  })
