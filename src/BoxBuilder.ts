/**
 * A box assembled field by field: what argument types write into
 * (`Argument.toBox`), and how the dispatcher builds requests and answers.
 *
 * Cheaper than a `Map` per box: two arrays, and a linear search for the
 * handful of keys a command has (an index appears only for boxes with many
 * keys). Setting a key again replaces its value in place, as a `Map` (and
 * Twisted's dict) would.
 *
 * @since 0.1.0
 */
import { type AmpBox, unsafeFromArrays } from "./AmpBox.js"

/**
 * Where fields are written. A `Map<string, Uint8Array>` fits too, so argument
 * types written against a `Map` keep working.
 *
 * @since 0.1.0
 */
export interface BoxFields {
  readonly set: (key: string, value: Uint8Array) => unknown
}

/** Past this many keys, lookups go through an index instead of a scan. */
const INDEX_FROM = 32

/**
 * Collects fields, then becomes an {@link AmpBox} with {@link BoxBuilder.build}.
 *
 * @since 0.1.0
 */
export class BoxBuilder implements BoxFields {
  private keys: Array<string> = []
  private values: Array<Uint8Array> = []
  private index: Map<string, number> | undefined = undefined

  /** Number of distinct keys set so far. */
  get size(): number {
    return this.keys.length
  }

  private find(key: string): number {
    if (this.index !== undefined) return this.index.get(key) ?? -1
    const keys = this.keys
    for (let i = 0; i < keys.length; i++) if (keys[i] === key) return i
    return -1
  }

  /** Sets `key` (a byte string) to `value`; a key set twice keeps its first position. */
  set(key: string, value: Uint8Array): this {
    const at = this.find(key)
    if (at >= 0) {
      this.values[at] = value
      return this
    }
    this.keys.push(key)
    this.values.push(value)
    if (this.index !== undefined) this.index.set(key, this.keys.length - 1)
    else if (this.keys.length > INDEX_FROM) this.index = new Map(this.keys.map((k, i) => [k, i]))
    return this
  }

  /** The value set for `key`, if any. */
  get(key: string): Uint8Array | undefined {
    const at = this.find(key)
    return at < 0 ? undefined : this.values[at]
  }

  /** Orders the keys by their bytes (Twisted writes some boxes that way). */
  sortKeys(): this {
    const order = this.keys.map((_, i) => i).sort((a, b) => {
      const x = this.keys[a]!
      const y = this.keys[b]!
      return x < y ? -1 : x > y ? 1 : 0
    })
    this.keys = order.map((i) => this.keys[i]!)
    this.values = order.map((i) => this.values[i]!)
    this.index = undefined
    return this
  }

  /** The box. The builder must not be used afterwards: the box takes its arrays over. */
  build(): AmpBox {
    return unsafeFromArrays(this.keys, this.values)
  }
}
