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
 *   they arrived in; treat them as read-only.
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

/** Reserved keys of the request/response layer. */
export const COMMAND = "_command"
export const ASK = "_ask"
export const ANSWER = "_answer"
export const ERROR = "_error"
export const ERROR_CODE = "_error_code"
export const ERROR_DESCRIPTION = "_error_description"

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

/**
 * An AMP box. Construct with {@link make}, {@link fromEntries} or
 * {@link empty}; derive new boxes with {@link AmpBox.set} and friends.
 *
 * @since 0.1.0
 */
export class AmpBox implements Equal.Equal, Iterable<readonly [string, Uint8Array]> {
  readonly [TypeId] = TypeId
  /** @internal the decoder and the builders hand over a map they no longer touch */
  constructor(
    /** @internal */
    readonly entries: ReadonlyMap<string, Uint8Array>
  ) {}

  /** Number of keys. */
  get size(): number {
    return this.entries.size
  }

  /** The value of `key`, or `undefined`. */
  get(key: string): Uint8Array | undefined {
    return this.entries.get(key)
  }

  /** Whether `key` is present. */
  has(key: string): boolean {
    return this.entries.has(key)
  }

  /** The value of `key` decoded as UTF-8; `undefined` when absent or not valid UTF-8. */
  getText(key: string): string | undefined {
    const v = this.entries.get(key)
    return v === undefined ? undefined : decodeUtf8(v)
  }

  /** Keys in insertion order. */
  keys(): IterableIterator<string> {
    return this.entries.keys()
  }

  [Symbol.iterator](): Iterator<readonly [string, Uint8Array]> {
    return this.entries[Symbol.iterator]()
  }

  /** A box with `key` set to `value` (strings are written as UTF-8). */
  set(key: string, value: ValueInput): AmpBox {
    const m = new Map(this.entries)
    m.set(key, toBytes(value))
    return new AmpBox(m)
  }

  /** A box with every entry of `other` set on top of this one. */
  merge(other: AmpBox | Readonly<Record<string, ValueInput>>): AmpBox {
    const m = new Map(this.entries)
    const it = other instanceof AmpBox ? other.entries : Object.entries(other)
    for (const [k, v] of it) m.set(k, toBytes(v))
    return new AmpBox(m)
  }

  /** A box without `keys`. */
  remove(...keys: ReadonlyArray<string>): AmpBox {
    const m = new Map(this.entries)
    for (const k of keys) m.delete(k)
    return new AmpBox(m)
  }

  /** Every value as UTF-8 text (invalid sequences become U+FFFD); for logs and tests. */
  toTextRecord(): Record<string, string> {
    const out: Record<string, string> = {}
    for (const [k, v] of this.entries) out[k] = decodeUtf8Lenient(v)
    return out
  }

  /** Equal when the same keys hold the same bytes: like Twisted's dict, key order does not matter. */
  [Equal.symbol](that: Equal.Equal): boolean {
    if (!isAmpBox(that) || that.size !== this.size) return false
    for (const [k, v] of this.entries) {
      const w = that.entries.get(k)
      if (w === undefined || !bytesEqual(v, w)) return false
    }
    return true
  }

  [Hash.symbol](): number {
    // Order-independent: a sum of per-entry hashes.
    let h = 0
    for (const [k, v] of this.entries) h = (h + Hash.combine(Hash.string(k))(hashBytes(v))) | 0
    return Hash.cached(this, Hash.optimize(Hash.combine(Hash.hash(this.size))(h)))
  }

  toJSON(): unknown {
    return { _id: "AmpBox", entries: this.toTextRecord() }
  }

  toString(): string {
    const parts = [...this.entries].map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(decodeUtf8Lenient(v))}`)
    return `AmpBox({${parts.join(", ")}})`
  }

  [NodeInspectSymbol](): unknown {
    return this.toString()
  }
}

const toBytes = (v: ValueInput): Uint8Array => (typeof v === "string" ? utf8(v) : v)

/** Whether `u` is an {@link AmpBox}. */
export const isAmpBox = (u: unknown): u is AmpBox => typeof u === "object" && u !== null && TypeId in u

/** The box with no keys. */
export const empty: AmpBox = new AmpBox(new Map())

/**
 * A box from a record. String values are written as UTF-8; keys are byte
 * strings (ASCII keys are themselves).
 *
 * @example
 * AmpBox.make({ _command: "Sum", _ask: "1", a: "13", b: "81" })
 */
export const make = (record: Readonly<Record<string, ValueInput>>): AmpBox => {
  const m = new Map<string, Uint8Array>()
  for (const k in record) m.set(k, toBytes(record[k]!))
  return new AmpBox(m)
}

/** A box from key/value pairs, in order. */
export const fromEntries = (entries: Iterable<readonly [string, ValueInput]>): AmpBox => {
  const m = new Map<string, Uint8Array>()
  for (const [k, v] of entries) m.set(k, toBytes(v))
  return new AmpBox(m)
}

/** @internal wraps a map the caller built and will not touch again (no copy). */
export const unsafeFromMap = (map: Map<string, Uint8Array>): AmpBox => new AmpBox(map)

/**
 * @internal wraps keys and values the caller built and will not touch again
 * (no copy). Keys must be distinct byte strings; `values[i]` belongs to `keys[i]`.
 */
export const unsafeFromArrays = (keys: Array<string>, values: Array<Uint8Array>): AmpBox => {
  const m = new Map<string, Uint8Array>()
  for (let i = 0; i < keys.length; i++) m.set(keys[i]!, values[i]!)
  return new AmpBox(m)
}
