/**
 * The calls waiting for answers, by tag: a `Map` from tag to slot number,
 * and the entries themselves in an array of slots.
 *
 * Why not a `Map` from tag to entry: a long-lived `Map` whose entries come
 * and go thousands of times a second keeps the young objects it held alive
 * through V8's minor collections for a while after they are deleted, so
 * every call's continuation (the caller's fiber state, its `Effect.async`
 * registration) was promoted to the old generation and died there. Measured
 * on the pipelined benchmark: 0.65 MB promoted per scavenge with entries in
 * the `Map`, 0.1 MB with slot numbers (small integers, which the collector
 * never follows), and GC time from about 28% to 10% of the run.
 *
 * The three are made at the first `set`: a connection that never calls (or
 * is never called) keeps none (about 300 bytes each, two tables per connection).
 */
/** Shared by every table until its first entry; never written (`set` replaces them first). */
const EMPTY: Map<number, number> = new Map()
const NONE: Array<never> = []

export class CallTable<A> {
  private slotOf: Map<number, number> = EMPTY
  private slots: Array<A | undefined> = NONE
  private free: Array<number> = NONE

  get size(): number {
    return this.slotOf.size
  }

  get(tag: number): A | undefined {
    const slot = this.slotOf.get(tag)
    return slot === undefined ? undefined : this.slots[slot]
  }

  set(tag: number, entry: A): void {
    if (this.slotOf === EMPTY) {
      this.slotOf = new Map()
      this.slots = []
      this.free = []
    }
    const old = this.slotOf.get(tag)
    if (old !== undefined) {
      this.slots[old] = entry
      return
    }
    const slot = this.free.length > 0 ? this.free.pop()! : this.slots.length
    this.slots[slot] = entry
    this.slotOf.set(tag, slot)
  }

  /** Removes `tag`; returns its entry, if it had one. */
  take(tag: number): A | undefined {
    const slot = this.slotOf.get(tag)
    if (slot === undefined) return undefined
    this.slotOf.delete(tag)
    const entry = this.slots[slot]
    this.slots[slot] = undefined
    this.free.push(slot)
    return entry
  }

  /** Every tag and entry, oldest first (tags were added in increasing order). */
  *entries(): IterableIterator<readonly [number, A]> {
    for (const [tag, slot] of this.slotOf) yield [tag, this.slots[slot]!] as const
  }

  /** Removes everything; returns the entries, oldest first. */
  clear(): Array<A> {
    const out: Array<A> = []
    for (const slot of this.slotOf.values()) out.push(this.slots[slot]!)
    this.slotOf.clear()
    this.slots.length = 0
    this.free.length = 0
    return out
  }
}
