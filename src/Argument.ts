/**
 * AMP argument types: how a value travels as the bytes of one box value.
 *
 * Every type writes exactly the bytes Twisted's `twisted.protocols.amp`
 * writes, and reads what Twisted reads (within reason: see each type), and
 * refuses anything else with an {@link ArgumentError} that says what was
 * wrong. The dispatcher uses the plain `fromWire`/`toWire`/`fromBox`/`toBox`
 * functions; `ArgumentSchema.schema` (`effect-amp/schema`) gives the same
 * mapping as an Effect `Schema`, for composition.
 *
 * | Twisted           | here                         | value                     |
 * | ----------------- | ---------------------------- | ------------------------- |
 * | `Integer`         | {@link Integer}              | `bigint`                  |
 * | `Integer`         | {@link IntegerNumber}        | `number` (safe integers)  |
 * | `String`          | {@link String}               | `Uint8Array`              |
 * | `Unicode`         | {@link Unicode}              | `string`                  |
 * | `Path`            | {@link Path}                 | `string`                  |
 * | `Float`           | {@link Float}                | `number`                  |
 * | `Boolean`         | {@link Boolean}              | `boolean`                 |
 * | `Decimal`         | {@link Decimal}              | {@link AmpDecimal}        |
 * | `DateTime`        | {@link DateTime}             | {@link AmpDateTime}       |
 * | `ListOf(T)`       | {@link ListOf}               | `ReadonlyArray<T>`        |
 * | `AmpList([...])`  | {@link AmpList}              | `ReadonlyArray<record>`   |
 * | `Descriptor`      | {@link Descriptor}           | `number` (UNIX sockets)   |
 * | (AMP type list)   | {@link BigString}, {@link BigUnicode} | over 64 KiB      |
 * | `optional=True`   | {@link optional}             | `A \| undefined`          |
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import type * as Types from "effect/Types"
import { type AmpBox, bytesToByteString, utf8 } from "./AmpBox.js"
import { ArgumentError } from "./AmpError.js"
import { BoxBuilder, type BoxFields } from "./BoxBuilder.js"
import { encodeBoxes, MAX_VALUE_LENGTH, parse } from "./BoxCodec.js"
import { concatBytes } from "./internal/bytes.js"
import * as Descriptors from "./internal/descriptors.js"
import { fieldName, fieldsOf, readFields, writeFields } from "./internal/fields.js"
import { describe, quote } from "./internal/messages.js"

/** @since 0.1.0 */
export const ArgumentTypeId: unique symbol = Symbol.for("effect-amp/Argument")

/** A value that does not fit its argument type, on either side of the wire (defined with the other errors). */
export { ArgumentError }

/**
 * An AMP argument type for values of type `A`.
 *
 * @since 0.1.0
 */
export interface Argument<A> {
  readonly [ArgumentTypeId]: typeof ArgumentTypeId
  /** `Integer`, `ListOf(Integer)`...: for messages. */
  readonly typeName: string
  /** Whether the key may be absent (the value is then `undefined`). */
  readonly optional: boolean
  /** Bytes of one wire value to the value (fast path, no Effect). Throws {@link ArgumentError}. */
  readonly fromWire: (bytes: Uint8Array) => A
  /** The value to the bytes of one wire value. Throws {@link ArgumentError}. */
  readonly toWire: (value: A) => Uint8Array
  /**
   * Reads the argument under `key` (by default `fromWire(box.get(key))`);
   * `undefined` when absent. Multi-key types ({@link BigString}) override it.
   * Throws {@link ArgumentError}.
   */
  readonly fromBox: (box: AmpBox, key: string) => A | undefined
  /** Writes the argument under `key` into `out` (by default `out.set(key, toWire(value))`). */
  readonly toBox: (value: A, key: string, out: BoxFields) => void
  /** Recognizes values of `A` (what `toWire` takes). */
  readonly is: (u: unknown) => u is A
}

/** The value type of an argument. */
export type Type<T> = T extends Argument<infer A> ? A : never

const fail = (typeName: string, detail: string): never => {
  throw new ArgumentError({ typeName, detail })
}

/** What `make` accepts. */
export interface Spec<A> {
  readonly typeName: string
  readonly fromWire: (bytes: Uint8Array) => A
  readonly toWire: (value: A) => Uint8Array
  readonly fromBox?: ((box: AmpBox, key: string) => A | undefined) | undefined
  /**
   * `fromWire` over `bytes[start, end)`, for short values: lets the default
   * `fromBox` read a decoded box's value without making a view of it. Must
   * not keep `bytes`.
   */
  readonly fromWireAt?: ((bytes: Uint8Array, start: number, end: number) => A) | undefined
  readonly toBox?: ((value: A, key: string, out: BoxFields) => void) | undefined
  /** Recognizes values of `A` (default: anything). */
  readonly is?: ((u: unknown) => u is A) | undefined
}

const anything = <A>(_: unknown): _ is A => true

/**
 * Defines an argument type from its wire conversions. `fromBox`/`toBox`
 * default to one key holding `toWire`'s bytes.
 *
 * @since 0.1.0
 */
export const make = <A>(spec: Spec<A>): Argument<A> => {
  const { fromWire, fromWireAt, toWire, typeName } = spec
  return {
    [ArgumentTypeId]: ArgumentTypeId,
    typeName,
    optional: false,
    fromWire,
    toWire,
    fromBox: spec.fromBox ?? (fromWireAt !== undefined
      ? (box, key) => box.readValue(key, fromWireAt)
      : (box, key) => {
        const v = box.get(key)
        return v === undefined ? undefined : fromWire(v)
      }),
    toBox: spec.toBox ?? ((value, key, out) => void out.set(key, toWire(value))),
    is: spec.is ?? anything<A>
  }
}

/** Whether `u` is an {@link Argument}. */
export const isArgument = (u: unknown): u is Argument<unknown> =>
  typeof u === "object" && u !== null && ArgumentTypeId in u

/**
 * The same type, but the key may be absent (Twisted's `optional=True`): an
 * absent key reads as `undefined`, and `undefined` writes no key.
 *
 * @since 0.1.0
 */
export const optional = <A>(arg: Argument<A>): Argument<A | undefined> => {
  const is = arg.is
  const made = make<A | undefined>({
    typeName: arg.typeName,
    fromWire: arg.fromWire,
    toWire: (v) => v === undefined ? fail(arg.typeName, "an absent optional value has no wire bytes") : arg.toWire(v),
    fromBox: arg.fromBox,
    toBox: (v, key, out) => {
      if (v !== undefined) arg.toBox(v, key, out)
    },
    is: (u): u is A | undefined => u === undefined || is(u)
  })
  // Keep any extra members the argument carries (Decimal.fromString...).
  return { ...(arg as Argument<A | undefined>), ...made, optional: true }
}

// ---------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------

/** Bytes that must be ASCII (numbers, booleans, dates) as a string, or an error. */
const asciiOf = (typeName: string, bytes: Uint8Array): string => {
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i]! > 0x7f) fail(typeName, `byte 0x${bytes[i]!.toString(16)} at offset ${i} is not ASCII`)
  }
  return bytesToByteString(bytes)
}

const ascii = (s: string): Uint8Array => utf8(s)

// Python's `decode("utf-8")` keeps a leading BOM as U+FEFF; TextDecoder strips
// it unless told not to.
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/** UTF-8 text as Python decodes it (strictly), or `undefined`. */
const decodeText = (bytes: Uint8Array): string | undefined => {
  const n = bytes.length
  if (n <= 32) {
    // Short ASCII (names, tags) skips TextDecoder, which costs more to call than this loop.
    let ok = true
    for (let i = 0; i < n; i++) {
      if (bytes[i]! > 0x7f) {
        ok = false
        break
      }
    }
    if (ok) return bytesToByteString(bytes)
  }
  try {
    return utf8Decoder.decode(bytes)
  } catch {
    return undefined
  }
}

/** `String.prototype.isWellFormed` (Node 20; not in the ES2022 lib): native, where the loop below took a third of a 60 KB `Echo`. */
const isWellFormed = (globalThis.String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed

/** Index of the first unpaired surrogate in `s`, or -1. */
const loneSurrogate = (s: string): number => {
  if (isWellFormed !== undefined && isWellFormed.call(s)) return -1
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0xd800 || c > 0xdfff) continue
    if (c <= 0xdbff) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++
        continue
      }
    }
    return i
  }
  return -1
}

// Python's int() and float() on bytes strip ASCII whitespace: what JS's \s
// matches within ASCII (\t \n \v \f \r and space).
const DIGITS = "\\d(?:_?\\d)*"

/** Python's `int()` on ASCII: whitespace around, one sign, single underscores between digits. */
const PY_INT = new RegExp(`^\\s*[+-]?${DIGITS}\\s*$`)

/** Python's `float()` on ASCII (PEP 515 underscores; `inf`/`infinity`/`nan` handled apart). */
const PY_FLOAT = new RegExp(`^[+-]?(?:(?:${DIGITS})?\\.${DIGITS}|${DIGITS}\\.?)(?:[eE][+-]?${DIGITS})?$`)

// ---------------------------------------------------------------------------
// Integers
// ---------------------------------------------------------------------------

/** `bytes[start, end)` as Python's `int()` reads it. */
const parseIntegerAt = (bytes: Uint8Array, start: number, end: number): bigint => {
  // The common case first: up to 15 plain digits with an optional minus, exact in a double.
  const n = end - start
  if (n > 0 && n < 16) {
    const negative = bytes[start] === 0x2d
    let i = negative ? start + 1 : start
    const first = i
    let v = 0
    for (; i < end; i++) {
      const d = bytes[i]! - 0x30
      if (d < 0 || d > 9) break
      v = v * 10 + d
    }
    if (i === end && end > first) return BigInt(negative ? -v : v)
  }
  const s = asciiOf("Integer", bytes.subarray(start, end))
  if (!PY_INT.test(s)) fail("Integer", `not an integer: ${quote(s)}`)
  return BigInt(s.replace(/_/g, "").trim())
}

const parseInteger = (bytes: Uint8Array): bigint => parseIntegerAt(bytes, 0, bytes.length)

/**
 * An integer of any size, as decimal digits (Twisted's `Integer`: writes
 * `b"%d" % n`, reads `int(bytes)`). A `bigint` on our side, so no digit is
 * ever lost.
 *
 * Reads what Python's `int()` reads from ASCII: surrounding whitespace, a
 * `+` or `-`, leading zeros, single underscores between digits (`1_000`).
 * Note that CPython 3.11+ refuses integers of more than 4300 digits both
 * ways by default (`sys.set_int_max_str_digits`); we do not.
 *
 * @since 0.1.0
 */
export const Integer: Argument<bigint> = make({
  typeName: "Integer",
  fromWire: parseInteger,
  fromWireAt: parseIntegerAt,
  toWire: (n) => {
    if (typeof n !== "bigint") fail("Integer", `expected a bigint, got ${typeof n}`)
    return ascii(n.toString())
  },
  is: (u): u is bigint => typeof u === "bigint"
})

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

const safeNumber = (n: bigint): number => {
  if (n > MAX_SAFE || n < -MAX_SAFE) {
    fail("Integer", `${n} is beyond what a number holds exactly; use Argument.Integer (bigint)`)
  }
  return Number(n)
}

/**
 * An integer as a JS `number`: the same wire form as {@link Integer}, but it
 * refuses, both ways, what a `number` cannot hold exactly (beyond
 * ±(2^53-1)) rather than lose digits.
 *
 * @since 0.1.0
 */
export const IntegerNumber: Argument<number> = make({
  typeName: "Integer",
  fromWire: (bytes) => safeNumber(parseInteger(bytes)),
  fromWireAt: (bytes, start, end) => safeNumber(parseIntegerAt(bytes, start, end)),
  toWire: (n) => {
    if (!Number.isSafeInteger(n)) fail("Integer", `${n} is not a safe integer (use Argument.Integer with a bigint)`)
    return ascii(globalThis.String(n))
  },
  is: (u): u is number => Number.isSafeInteger(u)
})

// ---------------------------------------------------------------------------
// Bytes and text
// ---------------------------------------------------------------------------

/**
 * Raw bytes, passed through (Twisted's `String`, which is `bytes`). A value
 * read from the wire may be a view into the chunk it arrived in: treat it as
 * read-only, and copy it to keep a small piece of a large chunk.
 *
 * @since 0.1.0
 */
export const String: Argument<Uint8Array> = make({
  typeName: "String",
  fromWire: (bytes) => bytes,
  toWire: (bytes) => {
    if (!(bytes instanceof Uint8Array)) fail("String", "expected a Uint8Array")
    return bytes
  },
  is: (u): u is Uint8Array => u instanceof Uint8Array
})

const text = (typeName: string): Argument<string> =>
  make({
    typeName,
    fromWire: (bytes) => {
      const s = decodeText(bytes)
      if (s === undefined) return fail(typeName, "not valid UTF-8")
      return s
    },
    toWire: (s) => {
      if (typeof s !== "string") fail(typeName, `expected a string, got ${typeof s}`)
      const at = loneSurrogate(s)
      if (at >= 0) {
        fail(typeName, `unpaired surrogate U+${s.charCodeAt(at).toString(16).toUpperCase()} at index ${at} cannot be written as UTF-8`)
      }
      return utf8(s)
    },
    is: (u): u is string => typeof u === "string"
  })

/**
 * Text as UTF-8 (Twisted's `Unicode`). Invalid UTF-8 on the wire and
 * unpaired surrogates in a string are errors, as in Python; a leading BOM is
 * kept as U+FEFF.
 *
 * @since 0.1.0
 */
export const Unicode: Argument<string> = text("Unicode")

/**
 * A file path as UTF-8 text (Twisted's `Path`, which reads and writes a
 * `FilePath` through `Unicode`). A plain string here, kept as sent: the wire
 * carries no more than the text. Twisted's `FilePath` is always absolute, so
 * a Twisted peer writes absolute, normalized paths, and reads a relative one
 * against its own working directory (`a/../b` arrives as `/its/cwd/b`):
 * send absolute paths.
 *
 * @since 0.1.0
 */
export const Path: Argument<string> = text("Path")

// ---------------------------------------------------------------------------
// Float
// ---------------------------------------------------------------------------

/**
 * Python's `repr(float)`: the shortest digits that read back exactly (the
 * same digits JS prints), in fixed notation for decimal exponents -4..15,
 * otherwise like `1.5e+16` with at least two exponent digits; integral values
 * end in `.0`; `inf`, `-inf`, `nan`, `-0.0`.
 */
export const pythonFloatRepr = (n: number): string => {
  if (n !== n) return "nan"
  if (n === Infinity) return "inf"
  if (n === -Infinity) return "-inf"
  if (n === 0) return Object.is(n, -0) ? "-0.0" : "0.0"
  const sign = n < 0 ? "-" : ""
  // Number#toString gives the shortest round-trip digits (closest on ties, as
  // Python's repr); only the layout differs. Take digits and exponent from it.
  const s = globalThis.String(Math.abs(n))
  let digits: string
  let e: number
  const ei = s.indexOf("e")
  if (ei >= 0) {
    const m = s.slice(0, ei)
    digits = m.replace(".", "")
    e = Number(s.slice(ei + 1))
  } else {
    const dot = s.indexOf(".")
    const int = dot >= 0 ? s.slice(0, dot) : s
    const all = int + (dot >= 0 ? s.slice(dot + 1) : "")
    const lead = all.length - all.replace(/^0+/, "").length
    digits = all.slice(lead).replace(/0+$/, "")
    e = int.length - lead - 1
  }
  if (e >= -4 && e < 16) {
    if (e < 0) return `${sign}0.${"0".repeat(-e - 1)}${digits}`
    const int = digits.slice(0, e + 1).padEnd(e + 1, "0")
    const frac = digits.slice(e + 1)
    return `${sign}${int}.${frac === "" ? "0" : frac}`
  }
  const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits
  return `${sign}${mantissa}e${e < 0 ? "-" : "+"}${Math.abs(e).toString().padStart(2, "0")}`
}

const PY_FLOAT_SPECIAL = /^([+-]?)(?:(inf|infinity)|nan)$/i

/**
 * A float, written as Python's `repr` (Twisted's `Float` writes `str(f)`,
 * which is the repr: `1.0`, `0.1`, `1e-300`, `1e+300`, `1.5e+16`, `inf`,
 * `-inf`, `nan`, `-0.0`) and read as Python's `float()` reads ASCII
 * (whitespace around, `inf`/`infinity`/`nan` in any case and with a sign,
 * PEP 515 underscores, exponents). Every double round-trips exactly; NaN's
 * sign and payload are not kept (Python's repr drops them too).
 *
 * @since 0.1.0
 */
export const Float: Argument<number> = make({
  typeName: "Float",
  fromWire: (bytes) => {
    const s = asciiOf("Float", bytes).trim()
    if (PY_FLOAT.test(s)) return Number(s.indexOf("_") >= 0 ? s.replace(/_/g, "") : s)
    const m = PY_FLOAT_SPECIAL.exec(s)
    if (m === null) return fail("Float", `not a float: ${quote(s)}`)
    if (m[2] === undefined) return NaN
    return m[1] === "-" ? -Infinity : Infinity
  },
  toWire: (n) => {
    if (typeof n !== "number") fail("Float", `expected a number, got ${typeof n}`)
    return ascii(pythonFloatRepr(n))
  },
  is: (u): u is number => typeof u === "number"
})

// ---------------------------------------------------------------------------
// Boolean, Descriptor
// ---------------------------------------------------------------------------

const TRUE = ascii("True")
const FALSE = ascii("False")

/**
 * `True` or `False`, byte for byte; anything else (`true`, `1`, `True `) is
 * an error, as in Twisted's `Boolean`.
 *
 * @since 0.1.0
 */
export const Boolean: Argument<boolean> = make({
  typeName: "Boolean",
  fromWire: (bytes) => {
    const n = bytes.length
    if (n === 4 && bytes[0] === 0x54 && bytes[1] === 0x72 && bytes[2] === 0x75 && bytes[3] === 0x65) return true
    if (n === 5 && bytes[0] === 0x46 && bytes[1] === 0x61 && bytes[2] === 0x6c && bytes[3] === 0x73 && bytes[4] === 0x65) {
      return false
    }
    return fail("Boolean", `expected True or False, got ${quote(bytesToByteString(bytes))}`)
  },
  toWire: (b) => {
    if (typeof b !== "boolean") fail("Boolean", `expected a boolean, got ${typeof b}`)
    return b ? TRUE : FALSE
  },
  is: (u): u is boolean => typeof u === "boolean"
})

/**
 * A file descriptor (Twisted's `Descriptor`), over a connection that carries
 * descriptors: a UNIX socket opened with effect-amp/node's descriptor-capable
 * transport (`UnixDescriptorTransport`, or `unix` addresses with
 * `descriptors: true`). On the wire it is an ordinal, as in Twisted: the
 * n-th descriptor sent on the connection (SCM_RIGHTS, beside the bytes) is
 * written as `n`.
 *
 * - Sending: the descriptor is duplicated when the box is encoded, so the
 *   caller may close its own at once; the copy is closed once sent.
 * - Receiving: the value is a descriptor of this process that the handler
 *   (or caller) owns: close it (`fs.close`), or tie it to a Scope with
 *   `UnixDescriptorTransport.own` (effect-amp/node). Descriptors that arrive and are never claimed are
 *   closed when the connection ends; more than the transport's cap waiting
 *   at once ends the connection.
 * - An ordinal that never arrived fails the box (UNKNOWN, and the connection
 *   closes, as in Twisted). After StartTLS both directions fail: Twisted
 *   carries no descriptors over TLS.
 *
 * On any other connection, or when the native addon was not built, both
 * directions fail with an {@link ArgumentError} that says how to enable it.
 *
 * @since 0.1.0
 */
export const Descriptor: Argument<number> = make<number>({
  typeName: "Descriptor",
  fromWire: () => fail("Descriptor", Descriptors.unavailableReason()),
  toWire: () => fail("Descriptor", Descriptors.unavailableReason()),
  fromBox: (box, key) => {
    const v = box.get(key)
    if (v === undefined) return undefined
    const channel = Descriptors.currentChannel()
    if (channel === undefined) return fail("Descriptor", Descriptors.unavailableReason())
    const s = bytesToByteString(v)
    if (!/^(0|[1-9][0-9]{0,14})$/.test(s)) fail("Descriptor", `${Descriptors.DESCRIPTOR_FAILURE} ${quote(s)} is not a count`)
    try {
      const fd = channel.claim(Number(s))
      Descriptors.noteClaim(fd)
      return fd
    } catch (e) {
      return fail("Descriptor", describe(e))
    }
  },
  toBox: (fd, key, out) => {
    if (!Number.isSafeInteger(fd) || fd < 0) fail("Descriptor", `expected a file descriptor (an integer >= 0), got ${globalThis.String(fd)}`)
    const channel = Descriptors.currentChannel()
    if (channel === undefined) return fail("Descriptor", Descriptors.unavailableReason())
    let ordinal: number
    try {
      ordinal = channel.stage(fd)
    } catch (e) {
      return fail("Descriptor", describe(e))
    }
    out.set(key, ascii(globalThis.String(ordinal)))
  },
  is: (u): u is number => Number.isSafeInteger(u)
})

// ---------------------------------------------------------------------------
// Decimal
// ---------------------------------------------------------------------------

// Python's str.strip() whitespace within ASCII, which Decimal() strips: \t..\r, \x1c..\x1f, space.
const PY_STR_SPACE = /^[\t\n\v\f\r\x1c-\x1f ]+|[\t\n\v\f\r\x1c-\x1f ]+$/g

const DECIMAL_SYNTAX = /^([+-]?)(?:(\d*)(?:\.(\d*))?(?:e([+-]?\d+))?|(inf|infinity)|(s?nan)(\d*))$/i

/**
 * An exact decimal number, as Python's `decimal.Decimal` keeps it: a sign,
 * the coefficient digits and a power of ten, so `1.10` (coefficient `110`,
 * exponent -2) stays `1.10` and `1E+2` stays `1E+2`; or a special value
 * (`Infinity`, `NaN`, `sNaN`, each with a sign).
 *
 * Construct with {@link AmpDecimal.fromString}; `toString()` gives Python's
 * `str(Decimal)`. Two values are `Equal` when their representations are the
 * same (`1.10` is not `1.1`, and `NaN` equals `NaN`), unlike Python's `==`.
 *
 * @since 0.1.0
 */
export class AmpDecimal extends Data.Class<{
  /** `true` for negative values, including `-0`, `-Infinity` and `-NaN`. */
  readonly negative: boolean
  /**
   * Coefficient digits without leading zeros (`"0"` for zero). For `NaN`
   * and `sNaN`: the diagnostic payload digits (`NaN123`), `""` when none.
   * `""` for `Infinity`.
   */
  readonly coefficient: string
  /** The power of ten the coefficient is scaled by (0 for specials). */
  readonly exponent: number
  readonly special?: "Infinity" | "NaN" | "sNaN"
}> {
  /**
   * Parses what Python's `Decimal(str)` accepts from ASCII: surrounding
   * whitespace, a sign, `1.`, `.5`, exponents, `Inf`/`Infinity`/`NaN`/`sNaN`
   * in any case, NaN payloads, and underscores (CPython's decimal drops
   * every `_`, wherever it is). Exponents beyond ±(2^53-1) are refused (Python
   * allows up to ±10^18). Throws {@link ArgumentError}.
   */
  static fromString(input: string): AmpDecimal {
    const stripped = input.replace(PY_STR_SPACE, "")
    const s = stripped.indexOf("_") >= 0 ? stripped.replace(/_/g, "") : stripped
    const m = DECIMAL_SYNTAX.exec(s)
    if (m === null) return fail("Decimal", `not a decimal: ${quote(input)}`)
    const negative = m[1] === "-"
    if (m[5] !== undefined) return new AmpDecimal({ negative, coefficient: "", exponent: 0, special: "Infinity" })
    if (m[6] !== undefined) {
      return new AmpDecimal({
        negative,
        coefficient: m[7]!.replace(/^0+/, ""),
        exponent: 0,
        special: m[6].length === 4 ? "sNaN" : "NaN"
      })
    }
    const int = m[2]!
    const frac = m[3] ?? ""
    if (int === "" && frac === "") return fail("Decimal", `not a decimal: ${quote(input)}`)
    const exponent = Number(m[4] ?? "0") - frac.length
    if (!Number.isSafeInteger(exponent)) {
      return fail("Decimal", `exponent of ${quote(input)} is beyond ±${Number.MAX_SAFE_INTEGER}, which we do not support`)
    }
    const digits = int + frac
    let lead = 0
    while (lead < digits.length - 1 && digits.charCodeAt(lead) === 0x30) lead++
    return new AmpDecimal({ negative, coefficient: digits.slice(lead), exponent })
  }

  /**
   * A decimal from a JS number through its shortest round-trip digits, like
   * Python's `Decimal(repr(x))` (so `0.1` is `0.1`; Python's `Decimal(0.1)`
   * would be the exact binary value instead). `-0` is `-0`, and infinities
   * and NaN map to the specials.
   */
  static fromNumber(n: number): AmpDecimal {
    if (n !== n) return new AmpDecimal({ negative: false, coefficient: "", exponent: 0, special: "NaN" })
    if (n === Infinity || n === -Infinity) {
      return new AmpDecimal({ negative: n < 0, coefficient: "", exponent: 0, special: "Infinity" })
    }
    return AmpDecimal.fromString(pythonFloatRepr(n))
  }

  /** A decimal with an integral value, exactly. */
  static fromBigInt(n: bigint): AmpDecimal {
    return new AmpDecimal({ negative: n < 0n, coefficient: (n < 0n ? -n : n).toString(), exponent: 0 })
  }

  /**
   * Python's `str(Decimal)` (the General Decimal Arithmetic
   * to-scientific-string): plain notation when the exponent is at most 0 and
   * the adjusted exponent at least -6, otherwise `d.dddE±n`.
   */
  override toString(): string {
    const sign = this.negative ? "-" : ""
    if (this.special !== undefined) return sign + this.special + (this.special === "Infinity" ? "" : this.coefficient)
    const c = this.coefficient
    const e = this.exponent
    const leftDigits = e + c.length
    if (e <= 0 && leftDigits > -6) {
      if (e === 0) return sign + c
      return leftDigits > 0
        ? `${sign}${c.slice(0, leftDigits)}.${c.slice(leftDigits)}`
        : `${sign}0.${"0".repeat(-leftDigits)}${c}`
    }
    const adjusted = leftDigits - 1
    const mantissa = c.length > 1 ? `${c[0]}.${c.slice(1)}` : c
    return `${sign}${mantissa}E${adjusted >= 0 ? "+" : "-"}${Math.abs(adjusted)}`
  }

  /** Whether this is a finite number (not `Infinity`, `NaN` or `sNaN`). */
  get isFinite(): boolean {
    return this.special === undefined
  }

  /** The nearest JS number (lossy: a double holds about 17 significant digits). */
  toNumber(): number {
    if (this.special === "Infinity") return this.negative ? -Infinity : Infinity
    if (this.special !== undefined) return NaN
    return Number(`${this.negative ? "-" : ""}${this.coefficient}e${this.exponent}`)
  }
}

/** Why a hand-built {@link AmpDecimal} cannot be written, or `undefined`. */
const invalidDecimal = (d: AmpDecimal): string | undefined => {
  if (d.special === "Infinity") return d.coefficient === "" ? undefined : "Infinity has no payload"
  if (d.special === "NaN" || d.special === "sNaN") {
    return /^(?:[1-9]\d*)?$/.test(d.coefficient) ? undefined : `${d.special} payload ${quote(d.coefficient)} is not digits without leading zeros`
  }
  if (d.special !== undefined) return `unknown special value ${quote(globalThis.String(d.special))}`
  if (!/^(?:0|[1-9]\d*)$/.test(d.coefficient)) return `coefficient ${quote(d.coefficient)} is not digits without leading zeros`
  if (!Number.isSafeInteger(d.exponent)) return `exponent ${d.exponent} is not a safe integer`
  return undefined
}

/**
 * The text form of an argument's values, for types whose wire bytes are text
 * ({@link Decimal}, {@link DateTime}): `fromString` parses it, `toString`
 * writes it, and without a value names the type.
 *
 * @since 0.1.0
 */
export interface TextForm<V> {
  readonly fromString: (text: string) => V
  readonly toString: (value?: V) => string
}

const withTextForm = <V extends { toString(): string }>(
  arg: Argument<V>,
  fromString: (text: string) => V
): Argument<V> & TextForm<V> => ({
  ...arg,
  fromString,
  toString: (value) => (value === undefined ? arg.typeName : value.toString())
})

/**
 * An exact decimal (Twisted's `Decimal`): written as Python's
 * `str(Decimal)` (`1.10`, `-0`, `1E+2`, `1.23E-7`, `Infinity`, `-Infinity`,
 * `NaN`, `sNaN`), read as Python's `Decimal()` reads, precision kept.
 * `Decimal.fromString(text)` parses a value, `Decimal.toString(value)`
 * writes one.
 *
 * @since 0.1.0
 */
export const Decimal: Argument<AmpDecimal> & TextForm<AmpDecimal> = withTextForm(
  make({
    typeName: "Decimal",
    fromWire: (bytes) => AmpDecimal.fromString(asciiOf("Decimal", bytes)),
    toWire: (d) => {
      if (!(d instanceof AmpDecimal)) return fail("Decimal", "expected an AmpDecimal value")
      const bad = invalidDecimal(d)
      if (bad !== undefined) fail("Decimal", bad)
      return ascii(d.toString())
    },
    is: (u): u is AmpDecimal => u instanceof AmpDecimal
  }),
  (text) => AmpDecimal.fromString(text)
)

// ---------------------------------------------------------------------------
// DateTime
// ---------------------------------------------------------------------------

const daysIn = (year: number, month: number): number =>
  month === 2
    ? ((year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28)
    : month === 4 || month === 6 || month === 9 || month === 11
    ? 30
    : 31

/** The fields of an {@link AmpDateTime}. */
export interface DateTimeFields {
  readonly year: number
  readonly month: number
  readonly day: number
  readonly hour: number
  readonly minute: number
  readonly second: number
  /** 0..999999: kept exactly, unlike a JS `Date`. */
  readonly microsecond: number
  /** Minutes east of UTC (`+05:45` is 345, `-09:30` is -570); within a day. */
  readonly offsetMinutes: number
}

const FIELD_NAMES = ["year", "month", "day", "hour", "minute", "second", "microsecond", "offsetMinutes"] as const

/**
 * A date and time with a fixed UTC offset and exact microseconds: Python's
 * timezone-aware `datetime`, as AMP carries it (the wire has whole minutes of
 * offset and no zone name). Build with {@link AmpDateTime.make}, which checks
 * the fields as Python's `datetime` does.
 *
 * @since 0.1.0
 */
export class AmpDateTime extends Data.Class<DateTimeFields> {
  /** Checks ranges as Python's `datetime` does; throws {@link ArgumentError}. */
  static make(fields: DateTimeFields): AmpDateTime {
    const { day, hour, microsecond, minute, month, offsetMinutes, second, year } = fields
    const check = (ok: boolean, what: string) => ok || fail("DateTime", what)
    for (const name of FIELD_NAMES) check(Number.isInteger(fields[name]), `${name} ${globalThis.String(fields[name])} is not an integer`)
    check(year >= 1 && year <= 9999, `year ${year} is out of range 1..9999`)
    check(month >= 1 && month <= 12, `month ${month} is out of range 1..12`)
    check(day >= 1 && day <= daysIn(year, month), `day ${day} is out of range for ${year}-${month} (1..${daysIn(year, month)})`)
    check(hour >= 0 && hour < 24, `hour ${hour} is out of range 0..23`)
    check(minute >= 0 && minute < 60, `minute ${minute} is out of range 0..59`)
    check(second >= 0 && second < 60, `second ${second} is out of range 0..59`)
    check(microsecond >= 0 && microsecond < 1_000_000, `microsecond ${microsecond} is out of range 0..999999`)
    check(Math.abs(offsetMinutes) < 24 * 60, `UTC offset of ${offsetMinutes} minutes is not strictly within a day`)
    // `+ 0` turns a -0 (from arithmetic such as `-offset`) into 0, so equal values compare equal.
    return new AmpDateTime({
      year: year + 0,
      month: month + 0,
      day: day + 0,
      hour: hour + 0,
      minute: minute + 0,
      second: second + 0,
      microsecond: microsecond + 0,
      offsetMinutes: offsetMinutes + 0
    })
  }

  /**
   * The instant of a JS `Date`, shown at `offsetMinutes` east of UTC. A
   * `Date` has milliseconds, so the microseconds are a multiple of 1000.
   */
  static fromDate(date: Date, offsetMinutes = 0): AmpDateTime {
    const t = date.getTime()
    if (t !== t) fail("DateTime", "invalid Date")
    if (!Number.isInteger(offsetMinutes) || Math.abs(offsetMinutes) >= 24 * 60) {
      fail("DateTime", `UTC offset of ${offsetMinutes} minutes is not a whole number of minutes within a day`)
    }
    const shifted = new Date(t + offsetMinutes * 60_000)
    return AmpDateTime.make({
      year: shifted.getUTCFullYear(),
      month: shifted.getUTCMonth() + 1,
      day: shifted.getUTCDate(),
      hour: shifted.getUTCHours(),
      minute: shifted.getUTCMinutes(),
      second: shifted.getUTCSeconds(),
      microsecond: shifted.getUTCMilliseconds() * 1000,
      offsetMinutes
    })
  }

  /** The instant as a JS `Date`. Lossy: microseconds below a millisecond are dropped, and the offset. */
  toDate(): Date {
    const d = new Date(0)
    // setUTCFullYear, unlike Date.UTC, does not read years 0..99 as 1900..1999.
    d.setUTCFullYear(this.year, this.month - 1, this.day)
    d.setUTCHours(this.hour, this.minute - this.offsetMinutes, this.second, Math.floor(this.microsecond / 1000))
    return d
  }

  /**
   * Twisted's 32-character wire form, `YYYY-MM-DDTHH:MM:SS.ffffff±HH:MM`. A
   * zero offset is written `-00:00`, as Twisted writes it.
   */
  override toString(): string {
    const p = (n: number, w: number) => n.toString().padStart(w, "0")
    const o = Math.abs(this.offsetMinutes)
    return `${p(this.year, 4)}-${p(this.month, 2)}-${p(this.day, 2)}T${p(this.hour, 2)}:${p(this.minute, 2)}:${
      p(this.second, 2)
    }.${p(this.microsecond, 6)}${this.offsetMinutes > 0 ? "+" : "-"}${p(Math.floor(o / 60), 2)}:${p(o % 60, 2)}`
  }

  /**
   * Parses the wire form. Throws {@link ArgumentError} saying what is wrong
   * and where. Stricter than Twisted, which checks only the length and reads
   * each field with `int()` (so it would take `2000/01/01 ...` or ` 1` for a
   * month): we want the form Twisted writes, exactly.
   */
  static fromString(s: string): AmpDateTime {
    if (s.length !== 32) {
      return fail("DateTime", `expected 32 characters (YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM), got ${s.length}: ${quote(s)}`)
    }
    const num = (name: string, from: number, to: number): number => {
      for (let i = from; i < to; i++) {
        const c = s.charCodeAt(i)
        if (c < 0x30 || c > 0x39) {
          fail("DateTime", `${name} ${quote(s.slice(from, to))} at offset ${from} is not ${to - from} digits in ${quote(s)}`)
        }
      }
      return Number(s.slice(from, to))
    }
    const sep = (at: number, expected: string) => {
      if (s[at] !== expected) {
        fail("DateTime", `expected ${quote(expected)} at offset ${at}, got ${quote(s[at] ?? "")} in ${quote(s)}`)
      }
    }
    const year = num("year", 0, 4)
    sep(4, "-")
    const month = num("month", 5, 7)
    sep(7, "-")
    const day = num("day", 8, 10)
    sep(10, "T")
    const hour = num("hour", 11, 13)
    sep(13, ":")
    const minute = num("minute", 14, 16)
    sep(16, ":")
    const second = num("second", 17, 19)
    sep(19, ".")
    const microsecond = num("microsecond", 20, 26)
    const sign = s[26]
    if (sign !== "+" && sign !== "-") {
      fail("DateTime", `expected the offset's sign, "+" or "-", at offset 26, got ${quote(sign ?? "")} in ${quote(s)}`)
    }
    const offsetHours = num("offset hours", 27, 29)
    sep(29, ":")
    const offsetMins = num("offset minutes", 30, 32)
    if (offsetMins >= 60) fail("DateTime", `offset minutes ${offsetMins} are out of range 0..59 in ${quote(s)}`)
    const offsetMinutes = sign === "-" ? 0 - (offsetHours * 60 + offsetMins) : offsetHours * 60 + offsetMins
    return AmpDateTime.make({ year, month, day, hour, minute, second, microsecond, offsetMinutes })
  }
}

/**
 * A timezone-aware date and time (Twisted's `DateTime`): 32 ASCII characters,
 * `YYYY-MM-DDTHH:MM:SS.ffffff±HH:MM`, microseconds and UTC offset kept
 * exactly. `DateTime.fromString`/`DateTime.toString` parse and write one.
 *
 * @since 0.1.0
 */
export const DateTime: Argument<AmpDateTime> & TextForm<AmpDateTime> = withTextForm(
  make({
    typeName: "DateTime",
    fromWire: (bytes) => AmpDateTime.fromString(asciiOf("DateTime", bytes)),
    toWire: (d) => {
      if (!(d instanceof AmpDateTime)) return fail("DateTime", "expected an AmpDateTime value")
      // Re-check: the class constructor itself does not validate.
      return ascii(AmpDateTime.make(d).toString())
    },
    is: (u): u is AmpDateTime => u instanceof AmpDateTime
  }),
  (text) => AmpDateTime.fromString(text)
)

// ---------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------

/**
 * A list of one type (Twisted's `ListOf`): each element's bytes behind a
 * 2-byte big-endian length, back to back; the empty list is no bytes. An
 * element over 65535 bytes is an error. Stricter than Twisted on reading:
 * Twisted silently drops a truncated last element, we refuse it.
 *
 * @since 0.1.0
 */
export const ListOf = <A>(element: Argument<A>): Argument<ReadonlyArray<A>> => {
  const typeName = `ListOf(${element.typeName})`
  const is = element.is
  return make<ReadonlyArray<A>>({
    typeName,
    fromWire: (bytes) => {
      const out: Array<A> = []
      let at = 0
      while (at < bytes.length) {
        if (at + 2 > bytes.length) fail(typeName, `truncated element length at byte ${at}`)
        const n = (bytes[at]! << 8) | bytes[at + 1]!
        if (at + 2 + n > bytes.length) {
          fail(typeName, `element ${out.length} at byte ${at} announces ${n} bytes, ${bytes.length - at - 2} remain`)
        }
        try {
          out.push(element.fromWire(bytes.subarray(at + 2, at + 2 + n)))
        } catch (e) {
          fail(typeName, `element ${out.length}: ${describe(e)}`)
        }
        at += 2 + n
      }
      return out
    },
    toWire: (values) => {
      if (!Array.isArray(values)) fail(typeName, "expected an array")
      const parts: Array<Uint8Array> = []
      let size = 0
      for (let i = 0; i < values.length; i++) {
        let b: Uint8Array
        try {
          b = element.toWire(values[i] as A)
        } catch (e) {
          return fail(typeName, `element ${i}: ${describe(e)}`)
        }
        if (b.length > MAX_VALUE_LENGTH) fail(typeName, `element ${i} is ${b.length} bytes, the limit is ${MAX_VALUE_LENGTH}`)
        parts.push(b)
        size += 2 + b.length
      }
      const out = new Uint8Array(size)
      let at = 0
      for (const p of parts) {
        out[at] = p.length >>> 8
        out[at + 1] = p.length & 0xff
        out.set(p, at + 2)
        at += 2 + p.length
      }
      return out
    },
    is: (u): u is ReadonlyArray<A> => Array.isArray(u) && u.every((x) => is(x))
  })
}

/** Argument declarations by wire name: a command's arguments or response, an {@link AmpList} element. */
export type Fields = { readonly [wireName: string]: Argument<any> }
type OptionalKeys<F extends Fields> = { [K in keyof F]: undefined extends Type<F[K]> ? K : never }[keyof F]
/** `foo-bar` as a field name: `foo_bar` (see {@link wireNameToField}). */
export type FieldName<K extends string> = K extends `${infer A}-${infer B}` ? `${A}_${FieldName<B>}` : K
/**
 * The record of a set of fields, by field name: required fields required,
 * optional ones optional. Simplified into one object type, so that editors
 * show `{ readonly result: number }` rather than the mapped types.
 */
export type Record<F extends Fields> = Types.Simplify<
  & { readonly [K in Exclude<keyof F, OptionalKeys<F>> & string as FieldName<K>]: Type<F[K]> }
  & { readonly [K in OptionalKeys<F> & string as FieldName<K>]?: Type<F[K]> }
>

/**
 * The field name of a wire name: every `-` becomes `_` (`foo-bar` is
 * `foo_bar`), as Twisted's `_wireNameToPythonIdentifier` does, so that names
 * from Lisp-style peers are usable as identifiers. The wire name itself is
 * unchanged on the wire. Twisted also capitalizes the result when it is a
 * Python keyword (`from` becomes `From`); JavaScript allows reserved words as
 * property names, so we do not (see {@link wireNameToPythonIdentifier}).
 *
 * @since 0.1.0
 */
export const wireNameToField: (wireName: string) => string = fieldName

/** Twisted 22.4's `PYTHON_KEYWORDS` (a Python 2 era list, `print` and `exec` included). */
const PYTHON_KEYWORDS = new Set([
  "and", "del", "for", "is", "raise", "assert", "elif", "from", "lambda", "return", "break", "else", "global", "not",
  "try", "class", "except", "if", "or", "while", "continue", "exec", "import", "pass", "yield", "def", "finally", "in",
  "print"
])

/**
 * Exactly Twisted's `_wireNameToPythonIdentifier`: dashes to underscores,
 * then a Python keyword (from Twisted's list) is title-cased (`from` ->
 * `From`). The keyword names a Twisted responder receives; for tools and
 * messages that talk about the Python side.
 *
 * @since 0.1.0
 */
export const wireNameToPythonIdentifier = (wireName: string): string => {
  const k = wireNameToField(wireName)
  return PYTHON_KEYWORDS.has(k) ? k[0]!.toUpperCase() + k.slice(1) : k
}

/**
 * A list of records, each an AMP box (Twisted's `AmpList`): the encoded
 * boxes back to back, keys in byte order within each box as Twisted sorts
 * them. Fields are declared by wire name and used by field name
 * ({@link wireNameToField}); optional fields may be absent from an element;
 * keys a declaration does not name are ignored on reading (as in Twisted)
 * and unknown fields refused on writing. Elements may hold any argument
 * type, nested `AmpList`s and multi-key types included.
 *
 * @since 0.1.0
 */
export const AmpList = <F extends Fields>(fields: F): Argument<ReadonlyArray<Record<F>>> => {
  const spec = fieldsOf(fields)
  const typeName = `AmpList(${spec.map((s) => `${s.wire}: ${s.argument.typeName}${s.argument.optional ? "?" : ""}`).join(", ")})`
  const known = new Set(spec.map((s) => s.field))
  const isRecord = (u: unknown): u is { readonly [k: string]: unknown } => typeof u === "object" && u !== null
  return make<ReadonlyArray<Record<F>>>({
    typeName,
    fromWire: (bytes) => {
      let boxes: Array<AmpBox>
      try {
        boxes = parse(bytes)
      } catch (e) {
        return fail(typeName, describe(e))
      }
      return boxes.map((box, i) =>
        readFields(spec, box, (detail) => new ArgumentError({ typeName, detail: `element ${i}: ${detail}` })) as Record<F>
      )
    },
    toWire: (records) => {
      if (!Array.isArray(records)) fail(typeName, "expected an array")
      const boxes = records.map((record: unknown, i) => {
        if (!isRecord(record)) return fail(typeName, `element ${i} is not a record`)
        const out = new BoxBuilder()
        writeFields(spec, known, record, out, (detail) => new ArgumentError({ typeName, detail: `element ${i}: ${detail}` }))
        // Twisted writes a box's keys sorted; so do we, for the same bytes.
        return out.sortKeys().build()
      })
      try {
        return encodeBoxes(boxes)
      } catch (e) {
        return fail(typeName, describe(e))
      }
    },
    is: (u): u is ReadonlyArray<Record<F>> => Array.isArray(u) && u.every((x) => isRecord(x))
  })
}

// ---------------------------------------------------------------------------
// Values over 64 KiB
// ---------------------------------------------------------------------------

const big = <A>(inner: Argument<A>, typeName: string): Argument<A> => {
  const join = (box: AmpBox, key: string): Uint8Array | undefined => {
    const first = box.get(key)
    if (first === undefined) return undefined
    const second = box.get(`${key}.2`)
    if (second === undefined) return first
    const parts = [first, second]
    for (let i = 3;; i++) {
      const part = box.get(`${key}.${i}`)
      if (part === undefined) break
      parts.push(part)
    }
    return concatBytes(parts)
  }
  return make({
    typeName,
    fromWire: inner.fromWire,
    toWire: inner.toWire,
    fromBox: (box, key) => {
      const bytes = join(box, key)
      if (bytes === undefined) return undefined
      try {
        return inner.fromWire(bytes)
      } catch (e) {
        return fail(typeName, describe(e))
      }
    },
    toBox: (value, key, out) => {
      let bytes: Uint8Array
      try {
        bytes = inner.toWire(value)
      } catch (e) {
        return fail(typeName, describe(e))
      }
      out.set(key, bytes.length > MAX_VALUE_LENGTH ? bytes.subarray(0, MAX_VALUE_LENGTH) : bytes)
      for (let at = MAX_VALUE_LENGTH, i = 2; at < bytes.length; at += MAX_VALUE_LENGTH, i++) {
        out.set(`${key}.${i}`, bytes.subarray(at, at + MAX_VALUE_LENGTH))
      }
    },
    is: inner.is
  })
}

/**
 * Bytes of any length: split across `key`, `key.2`, `key.3`... in pieces of
 * at most 65535 bytes, the convention published with AMP's type list (a
 * value of up to 65535 bytes is just `key`, as a {@link String}). Twisted
 * has no such type: a Twisted peer sees the pieces as separate `String`s.
 *
 * @since 0.1.0
 */
export const BigString: Argument<Uint8Array> = big(String, "BigString")

/**
 * Text of any length, as UTF-8 split like {@link BigString} (pieces may cut
 * a character; they are joined before decoding).
 *
 * @since 0.1.0
 */
export const BigUnicode: Argument<string> = big(Unicode, "BigUnicode")
