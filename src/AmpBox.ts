/**
 * The AMP box: an ordered set of key/value byte strings.
 *
 * On the wire a key is 1..255 bytes and a value 0..65535 bytes, and any byte is
 * allowed in either. We keep the representation lossless without paying for a
 * byte-array comparison on every lookup:
 *
 * - a **key** is a *byte string*: a JS string whose every character is in
 *   `\u0000..\u00ff`, one character per wire byte (what Python 2 called `str`).
 *   ASCII keys such as `_command` read as themselves; a non-Latin-1 key has to
 *   be spelled as its bytes (see {@link keyFromUtf8}).
 * - a **value** is a `Uint8Array`. Decoded values may be views into the chunk
 *   they arrived in (or into the copy of a box that spanned chunks); treat
 *   them as read-only.
 *
 * Boxes are immutable and compare by content, whatever the key order.
 * Duplicate keys on the wire keep the first key's position and the last
 * value, which is what Twisted's `dict` does.
 *
 * @since 0.1.0
 */
import * as Equal from "effect/Equal"
import * as Hash from "effect/Hash"
import { NodeInspectSymbol } from "effect/Inspectable"

const textEncoder = new TextEncoder()
const utf8Fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
const utf8Lenient = new TextDecoder("utf-8", { ignoreBOM: true })

/** What {@link AmpBox.make} accepts as a value: bytes, or text written as UTF-8. */
export type ValueInput = Uint8Array | string

/**
 * UTF-8 bytes of a string. Short ASCII strings (tags, numbers, command
 * names: most of what AMP carries) skip `TextEncoder`, which costs more to
 * call than to loop over a dozen characters.
 */
export const utf8 = (text: string): Uint8Array => {
  const n = text.length
  if (n > 32) return textEncoder.encode(text)
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i)
    if (c > 0x7f) return textEncoder.encode(text)
    out[i] = c
  }
  return out
}

/**
 * Text of UTF-8 bytes. Returns `undefined` when the bytes are not valid UTF-8,
 * so a caller never mistakes replacement characters for the peer's text.
 */
export const decodeUtf8 = (bytes: Uint8Array): string | undefined => {
  try {
    return utf8Fatal.decode(bytes)
  } catch {
    return undefined
  }
}

/** Text of UTF-8 bytes with U+FFFD for invalid sequences (for messages and logs). */
export const decodeUtf8Lenient = (bytes: Uint8Array): string => utf8Lenient.decode(bytes)

/** The byte-string key whose bytes are the UTF-8 encoding of `text`. */
export const keyFromUtf8 = (text: string): string => bytesToByteString(utf8(text))

/** The text of a byte-string key read as UTF-8 (`undefined` when it is not UTF-8). */
export const keyToUtf8 = (key: string): string | undefined => decodeUtf8(byteStringToBytes(key))

/** A byte string (one char per byte) from bytes. Meant for short strings such as keys. */
export const bytesToByteString = (bytes: Uint8Array, start = 0, end = bytes.length): string => {
  let out = ""
  // Chunked so that very long inputs do not overflow the argument limit.
  for (let i = start; i < end; i += 4096) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, Math.min(end, i + 4096)) as unknown as Array<number>)
  }
  return out
}

/** Bytes of a byte string (callers check {@link isByteString} first; higher chars are truncated). */
export const byteStringToBytes = (s: string): Uint8Array => {
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
  return out
}

/** Whether every character of `s` is a byte (`\u0000..\u00ff`). */
export const isByteString = (s: string): boolean => {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false
  return true
}

const TypeId: unique symbol = Symbol.for("effect-amp/AmpBox")

const EMPTY_VALUE = new Uint8Array(0)

/**
 * Up to this many keys a lookup scans the key array. Decoded keys come from
 * the decoder's cache, so the scan is mostly pointer compares; past it a
 * `Map` index is built once, on first lookup.
 */
const SCAN_KEYS = 12

const bytesEqual = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

const hashBytes = (bytes: Uint8Array): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193)
  return Hash.optimize(h)
}

const indexKeys = (keys: ReadonlyArray<string>): Map<string, number> => {
  const index = new Map<string, number>()
  for (let i = 0; i < keys.length; i++) index.set(keys[i]!, i)
  return index
}

/**
 * An AMP box. Construct with {@link make}, {@link fromEntries} or
 * {@link empty}; derive new boxes with {@link AmpBox.set} and friends.
 *
 * Internally a box is two parallel arrays, keys and values. A box from the
 * decoder does not hold values yet: it keeps the bytes it was read from and
 * each value's offset and length there, and makes a value's `Uint8Array`
 * view the first time it is asked for (creating a view costs more than
 * reading a whole small box).
 *
 * @since 0.1.0
 */
export class AmpBox implements Equal.Equal, Iterable<readonly [string, Uint8Array]> {
  declare readonly [TypeId]: typeof TypeId

  /** @internal distinct byte-string keys, in order; never mutated once the box exists */
  readonly _keys: Array<string>
  /** @internal `_values[i]` belongs to `_keys[i]`; slots are filled lazily when `_src` is set */
  private _values: Array<Uint8Array | undefined> | undefined
  /** @internal the bytes a decoded box reads its values from */
  readonly _src: Uint8Array | undefined
  /** @internal value `i` is `_src[_spans[2i], _spans[2i] + _spans[2i + 1])` */
  readonly _spans: Array<number> | undefined
  /** key → index, for boxes too big to scan */
  private _index: Map<string, number> | undefined

  /** Not for users: build boxes with {@link make}, {@link fromEntries} or the `unsafe*` builders. */
  constructor(
    keys: Array<string>,
    values: Array<Uint8Array | undefined> | undefined,
    src: Uint8Array | undefined,
    spans: Array<number> | undefined,
    index: Map<string, number> | undefined
  ) {
    this._keys = keys
    this._values = values
    this._src = src
    this._spans = spans
    this._index = index
  }

  /** Number of keys. */
  get size(): number {
    return this._keys.length
  }

  /** @internal position of `key` in `_keys`, or -1 */
  indexOf(key: string): number {
    const keys = this._keys
    const n = keys.length
    if (n <= SCAN_KEYS) {
      for (let i = 0; i < n; i++) if (keys[i] === key) return i
      return -1
    }
    const index = this._index ??= indexKeys(keys)
    const i = index.get(key)
    return i === undefined ? -1 : i
  }

  /** @internal the value of `_keys[i]` */
  valueAt(i: number): Uint8Array {
    const values = this._values
    if (values !== undefined) {
      const v = values[i]
      if (v !== undefined) return v
    }
    return this.view(i)
  }

  /** Makes (and keeps) the view of a decoded value. */
  private view(i: number): Uint8Array {
    const src = this._src!
    const length = this._spans![2 * i + 1]!
    // A plain constructor call: `Buffer#subarray` goes through a species lookup and costs 3x more.
    const v = length === 0 ? EMPTY_VALUE : new Uint8Array(src.buffer, src.byteOffset + this._spans![2 * i]!, length)
    ;(this._values ??= new Array(this._keys.length))[i] = v
    return v
  }

  /**
   * @internal `read(bytes, start, end)` over the value of `key`, without
   * making a view of a decoded value; `undefined` when the key is absent.
   * For parsers of short values (tags, integers): `read` must not keep `bytes`.
   */
  readValue<A>(key: string, read: (bytes: Uint8Array, start: number, end: number) => A): A | undefined {
    const i = this.indexOf(key)
    if (i < 0) return undefined
    const v = this._values?.[i]
    if (v !== undefined) return read(v, 0, v.length)
    const from = this._spans![2 * i]!
    return read(this._src!, from, from + this._spans![2 * i + 1]!)
  }

  /** @internal length of the value of `_keys[i]`, without making a view */
  valueLength(i: number): number {
    const v = this._values?.[i]
    return v !== undefined ? v.length : this._spans![2 * i + 1]!
  }

  /**
   * @internal copies the value of `_keys[i]` into `out` at `at`. Short
   * decoded values are copied byte by byte from the source, without a view.
   */
  copyValue(i: number, out: Uint8Array, at: number): void {
    const v = this._values?.[i]
    if (v === undefined) {
      const spans = this._spans!
      const length = spans[2 * i + 1]!
      if (length <= 32) {
        const src = this._src!
        const from = spans[2 * i]!
        for (let j = 0; j < length; j++) out[at + j] = src[from + j]!
        return
      }
      out.set(this.view(i), at)
    } else if (v.length <= 32) {
      for (let j = 0; j < v.length; j++) out[at + j] = v[j]!
    } else {
      out.set(v, at)
    }
  }

  /** Every value, materialized, in a fresh array. */
  private valueList(): Array<Uint8Array> {
    const n = this._keys.length
    const out = new Array<Uint8Array>(n)
    for (let i = 0; i < n; i++) out[i] = this.valueAt(i)
    return out
  }

  /** The value of `key`, or `undefined`. */
  get(key: string): Uint8Array | undefined {
    const i = this.indexOf(key)
    return i < 0 ? undefined : this.valueAt(i)
  }

  /** Whether `key` is present. */
  has(key: string): boolean {
    return this.indexOf(key) >= 0
  }

  /** The value of `key` decoded as UTF-8; `undefined` when absent or not valid UTF-8. */
  getText(key: string): string | undefined {
    const i = this.indexOf(key)
    if (i < 0) return undefined
    const v = this._values?.[i]
    if (v === undefined && this.valueLength(i) <= 32) {
      // Short ASCII (tags, numbers, names) reads straight from the source bytes.
      const src = this._src!
      const from = this._spans![2 * i]!
      const to = from + this._spans![2 * i + 1]!
      let s = ""
      for (let j = from; j < to; j++) {
        const c = src[j]!
        if (c > 0x7f) return decodeUtf8(this.valueAt(i))
        s += String.fromCharCode(c)
      }
      return s
    }
    return decodeUtf8(this.valueAt(i))
  }

  /** Keys in insertion order. */
  keys(): IterableIterator<string> {
    return this._keys.values()
  }

  *[Symbol.iterator](): Iterator<readonly [string, Uint8Array]> {
    const keys = this._keys
    for (let i = 0; i < keys.length; i++) yield [keys[i]!, this.valueAt(i)] as const
  }

  /** A box with `key` set to `value` (strings are written as UTF-8). */
  set(key: string, value: ValueInput): AmpBox {
    const values = this.valueList()
    const i = this.indexOf(key)
    if (i >= 0) {
      values[i] = toBytes(value)
      return new AmpBox(this._keys, values, undefined, undefined, this._index)
    }
    values.push(toBytes(value))
    return new AmpBox([...this._keys, key], values, undefined, undefined, undefined)
  }

  /** A box with every entry of `other` set on top of this one. */
  merge(other: AmpBox | Readonly<Record<string, ValueInput>>): AmpBox {
    // A Map keeps a key's first position and takes its last value, as Twisted's dict update does.
    const m = new Map<string, Uint8Array>(this)
    if (other instanceof AmpBox) {
      for (const [k, v] of other) m.set(k, v)
    } else {
      for (const [k, v] of Object.entries(other)) m.set(k, toBytes(v))
    }
    return unsafeFromMap(m)
  }

  /** A box without `keys`. */
  remove(...keys: ReadonlyArray<string>): AmpBox {
    const outKeys: Array<string> = []
    const outValues: Array<Uint8Array> = []
    for (let i = 0; i < this._keys.length; i++) {
      const k = this._keys[i]!
      if (!keys.includes(k)) {
        outKeys.push(k)
        outValues.push(this.valueAt(i))
      }
    }
    return new AmpBox(outKeys, outValues, undefined, undefined, undefined)
  }

  /** Every value as UTF-8 text (invalid sequences become U+FFFD); for logs and tests. */
  toTextRecord(): Record<string, string> {
    const out: Record<string, string> = {}
    for (let i = 0; i < this._keys.length; i++) {
      // Defined, not assigned: assigning `__proto__` would set the prototype and drop the key.
      Object.defineProperty(out, this._keys[i]!, {
        value: decodeUtf8Lenient(this.valueAt(i)),
        enumerable: true,
        writable: true,
        configurable: true
      })
    }
    return out
  }

  /** Equal when the same keys hold the same bytes: like Twisted's dict, key order does not matter. */
  [Equal.symbol](that: Equal.Equal): boolean {
    if (!isAmpBox(that) || that.size !== this.size) return false
    for (let i = 0; i < this._keys.length; i++) {
      const j = that.indexOf(this._keys[i]!)
      if (j < 0 || !bytesEqual(this.valueAt(i), that.valueAt(j))) return false
    }
    return true
  }

  [Hash.symbol](): number {
    // Order-independent: a sum of per-entry hashes.
    let h = 0
    for (let i = 0; i < this._keys.length; i++) {
      h = (h + Hash.combine(Hash.string(this._keys[i]!))(hashBytes(this.valueAt(i)))) | 0
    }
    return Hash.cached(this, Hash.optimize(Hash.combine(Hash.hash(this.size))(h)))
  }

  toJSON(): unknown {
    return { _id: "AmpBox", entries: this.toTextRecord() }
  }

  toString(): string {
    const parts = this._keys.map((k, i) => `${JSON.stringify(k)}: ${JSON.stringify(decodeUtf8Lenient(this.valueAt(i)))}`)
    return `AmpBox({${parts.join(", ")}})`
  }

  [NodeInspectSymbol](): unknown {
    return this.toString()
  }
}

// On the prototype, not on every instance: `isAmpBox` only needs `in`.
Object.defineProperty(AmpBox.prototype, TypeId, { value: TypeId })

const toBytes = (v: ValueInput): Uint8Array => (typeof v === "string" ? utf8(v) : v)

/** Whether `u` is an {@link AmpBox}. */
export const isAmpBox = (u: unknown): u is AmpBox => typeof u === "object" && u !== null && TypeId in u

/** The box with no keys. */
export const empty: AmpBox = new AmpBox([], [], undefined, undefined, undefined)

/**
 * A box from a record. String values are written as UTF-8; keys are byte
 * strings (ASCII keys are themselves).
 *
 * @example
 * AmpBox.make({ _command: "Sum", _ask: "1", a: "13", b: "81" })
 */
export const make = (record: Readonly<Record<string, ValueInput>>): AmpBox => {
  const keys: Array<string> = []
  const values: Array<Uint8Array> = []
  // A record's own keys are distinct: no duplicate check needed.
  for (const k in record) {
    keys.push(k)
    values.push(toBytes(record[k]!))
  }
  return new AmpBox(keys, values, undefined, undefined, undefined)
}

/** A box from key/value pairs, in order. A repeated key keeps its first position and takes the last value. */
export const fromEntries = (entries: Iterable<readonly [string, ValueInput]>): AmpBox => {
  const m = new Map<string, Uint8Array>()
  for (const [k, v] of entries) m.set(k, toBytes(v))
  return unsafeFromMap(m)
}

/** @internal wraps a map the caller built and will not touch again. */
export const unsafeFromMap = (map: ReadonlyMap<string, Uint8Array>): AmpBox =>
  new AmpBox([...map.keys()], [...map.values()], undefined, undefined, undefined)

/**
 * @internal wraps keys and values the caller built and will not touch again
 * (no copy). Keys must be distinct byte strings; `values[i]` belongs to `keys[i]`.
 */
export const unsafeFromArrays = (keys: Array<string>, values: Array<Uint8Array>): AmpBox =>
  new AmpBox(keys, values, undefined, undefined, undefined)

/**
 * @internal the decoder's builder: value `i` is the `spans[2i + 1]` bytes of
 * `src` at `spans[2i]`. Keys must be distinct; `index`, when given, maps each
 * key to its position. `src` must never change (it is the peer's bytes).
 */
export const unsafeFromSpans = (
  keys: Array<string>,
  src: Uint8Array,
  spans: Array<number>,
  index: Map<string, number> | undefined
): AmpBox => new AmpBox(keys, undefined, src, spans, index)
