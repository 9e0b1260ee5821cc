/**
 * The partial-box timeout of the box protocol, for every connection on one
 * clock at once.
 *
 * Internal (not exported by the package), as everything under `src/internal/`.
 */
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/** A connection holding a partial box, as a {@link Sweeper} sees it. Methods: called on the object. */
export interface Watched {
  /** When its unfinished box began (clock millis); undefined once there is none. */
  since(): number | undefined
  /** The box has been held too long: ends the connection; the Effect closes the transport. */
  expire(): Effect.Effect<void>
}

/**
 * Ends connections whose partial box has outlived `millis`: one fiber for
 * every connection on a clock with that timeout, alive only while some
 * connection holds a partial box (a fiber per connection costs kilobytes,
 * and a timer per read would cost a timer per read: large values straddle
 * nearly every one). It sleeps on the connections' own clock, so a
 * `TestClock` drives it. Deadlines on one clock and one timeout only grow
 * with time, so a connection added while it sleeps is never due before it wakes.
 */
export class Sweeper {
  private readonly watched = new Set<Watched>()
  private running = false

  constructor(private readonly clock: Clock.Clock, private readonly millis: number) {}

  /** Watches `w`; true when the caller must fork {@link sweep} (none runs). */
  add(w: Watched): boolean {
    this.watched.add(w)
    if (this.running) return false
    this.running = true
    return true
  }

  remove(w: Watched): void {
    this.watched.delete(w)
  }

  /** Ends the connections due; the millis until the next is due, or -1 (and not running) when none is left. */
  private step(): { readonly wait: number; readonly closes: Array<Effect.Effect<void>> } {
    const now = this.clock.unsafeCurrentTimeMillis()
    let next = Infinity
    const closes: Array<Effect.Effect<void>> = []
    for (const w of this.watched) {
      const since = w.since()
      if (since === undefined) {
        this.watched.delete(w)
      } else if (since + this.millis <= now) {
        this.watched.delete(w)
        closes.push(w.expire())
      } else if (since + this.millis < next) {
        next = since + this.millis
      }
    }
    if (next === Infinity) this.running = false
    return { wait: next === Infinity ? -1 : next - now, closes }
  }

  readonly sweep: Effect.Effect<void> = Effect.gen(this, function*() {
    for (;;) {
      const { closes, wait } = this.step()
      // Closing waits for the peer (up to the transport's close timeout): not in the sweeper's way.
      if (closes.length > 0) yield* Effect.forkDaemon(Effect.all(closes, { concurrency: "unbounded", discard: true }))
      if (wait < 0) return
      yield* this.clock.sleep(Duration.millis(wait))
    }
  }).pipe(Effect.onInterrupt(() => Effect.sync(() => (this.running = false))))
}

/** The sweepers, by clock and timeout. */
const sweepers = new WeakMap<Clock.Clock, Map<number, Sweeper>>()

/** The sweeper of `clock` for a timeout of `millis`, made on first use. */
export const sweeperFor = (clock: Clock.Clock, millis: number): Sweeper => {
  let byMillis = sweepers.get(clock)
  if (byMillis === undefined) sweepers.set(clock, byMillis = new Map())
  let sweeper = byMillis.get(millis)
  if (sweeper === undefined) byMillis.set(millis, sweeper = new Sweeper(clock, millis))
  return sweeper
}
