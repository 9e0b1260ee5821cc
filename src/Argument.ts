/**
 * AMP argument types: how a value travels as the bytes of one box value.
 *
 * Every type writes exactly what Twisted's `twisted.protocols.amp` writes and
 * reads what it reads (and refuses garbage with an {@link ArgumentError}
 * that says what was wrong). Each is also an Effect `Schema` between wire
 * bytes and the value (`.schema`), for composition; the dispatcher uses the
 * plain `fromWire`/`toWire` functions, which cost less per call.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { type AmpBox, decodeUtf8, unsafeFromMap, utf8 } from "./AmpBox.js"
import { encodeBoxes, MAX_VALUE_LENGTH, parse } from "./BoxCodec.js"

/** @since 0.1.0 */
export const ArgumentTypeId: unique symbol = Symbol.for("effect-amp/Argument")

/**
 * A value that does not fit its argument type, on either side of the wire.
 *
 * @since 0.1.0
 */
export class ArgumentError extends Data.TaggedError("ArgumentError")<{
  readonly typeName: string
  readonly detail: string
}> {
  override get message(): string {
    return `${this.typeName}: ${this.detail}`
  }
}

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
  /** Bytes of one wire value to the value. Throws {@link ArgumentError}. */
  readonly fromWire: (bytes: Uint8Array) => A
  /** The value to the bytes of one wire value. Throws {@link ArgumentError}. */
  readonly toWire: (value: A) => Uint8Array
  /** Reads the argument under `key`; `undefined` when absent. Multi-key types override it. */
  readonly fromBox: (box: AmpBox, key: string) => A | undefined
  /** Writes the argument under `key` into `out`. Multi-key types override it. */
  readonly toBox: (value: A, key: string, out: Map<string, Uint8Array>) => void
  /** The same mapping as a Schema from wire bytes to the value. */
  readonly schema: Schema.Schema<A, Uint8Array>
}

/** The value type of an argument. */
export type Type<T> = T extends Argument<infer A> ? A : never

const fail = (typeName: string, detail: string): never => {
  throw new ArgumentError({ typeName, detail })
}

const describe = (e: unknown): string => (e instanceof Error ? e.message : globalThis.String(e))

const schemaOf = <A>(typeName: string, fromWire: (b: Uint8Array) => A, toWire: (a: A) => Uint8Array) =>
  Schema.transformOrFail(Schema.Uint8ArrayFromSelf, Schema.Any as Schema.Schema<A>, {
    strict: true,
    decode: (bytes, _, ast) => {
      try {
        return ParseResult.succeed(fromWire(bytes))
      } catch (e) {
        return ParseResult.fail(new ParseResult.Type(ast, bytes, describe(e)))
      }
    },
    encode: (value, _, ast) => {
      try {
        return ParseResult.succeed(toWire(value))
      } catch (e) {
        return ParseResult.fail(new ParseResult.Type(ast, value, describe(e)))
      }
    }
  }).annotations({ identifier: typeName })

/**
 * Defines an argument type from its wire conversions.
 *
 * @since 0.1.0
 */
export const make = <A>(spec: {
  readonly typeName: string
  readonly fromWire: (bytes: Uint8Array) => A
  readonly toWire: (value: A) => Uint8Array
  readonly fromBox?: (box: AmpBox, key: string) => A | undefined
  readonly toBox?: (value: A, key: string, out: Map<string, Uint8Array>) => void
}): Argument<A> => {
  const { fromWire, toWire, typeName } = spec
  return {
    [ArgumentTypeId]: ArgumentTypeId,
    typeName,
    optional: false,
    fromWire,
    toWire,
    fromBox: spec.fromBox ?? ((box, key) => {
      const v = box.get(key)
      return v === undefined ? undefined : fromWire(v)
    }),
    toBox: spec.toBox ?? ((value, key, out) => void out.set(key, toWire(value))),
    schema: schemaOf(typeName, fromWire, toWire)
  }
}

/**
 * The same type, but the key may be absent (Twisted's `optional=True`):
 * `undefined` on our side.
 *
 * @since 0.1.0
 */
export const optional = <A>(arg: Argument<A>): Argument<A | undefined> => ({
  ...(arg as Argument<A | undefined>),
  optional: true
})

// ---------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------

/** Bytes that must be ASCII (numbers, booleans): as a string, or an error. */
const asciiOf = (typeName: string, bytes: Uint8Array): string => {
  let s = ""
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!
    if (c > 0x7e) fail(typeName, `non-ASCII byte 0x${c.toString(16)} at ${i}`)
    s += globalThis.String.fromCharCode(c)
  }
  return s
}

const ascii = (s: string): Uint8Array => utf8(s)

/** Python's `int()` on ASCII: whitespace around, one sign, underscores between digits. */
const pythonIntPattern = /^\s*[+-]?\d+(?:_\d+)*\s*$/

// ---------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------

/**
 * An integer of any size, as decimal digits (Twisted's `Integer`). A `bigint`
 * on our side, so no digit is ever lost.
 *
 * @since 0.1.0
 */
export const Integer: Argument<bigint> = make({
  typeName: "Integer",
  fromWire: (bytes) => {
    // The common case first: up to 15 plain digits with an optional minus, exact in a double.
    const n = bytes.length
    if (n > 0 && n < 16) {
      let i = bytes[0] === 0x2d ? 1 : 0
      let v = 0
      const digits = i
      for (; i < n; i++) {
        const d = bytes[i]! - 0x30
        if (d < 0 || d > 9) break
        v = v * 10 + d
      }
      if (i === n && n > digits) return BigInt(digits === 1 ? -v : v)
    }
    const s = asciiOf("Integer", bytes)
    if (!pythonIntPattern.test(s)) fail("Integer", `not an integer: ${JSON.stringify(s)}`)
    return BigInt(s.replace(/_/g, "").trim())
  },
  toWire: (n) => {
    if (typeof n !== "bigint") fail("Integer", `expected a bigint, got ${typeof n}`)
    return ascii(n.toString())
  }
})

/**
 * An integer as a JS `number`: refuses, both ways, what a `number` cannot
 * hold exactly (beyond ±2^53-1), rather than lose digits.
 *
 * @since 0.1.0
 */
export const IntegerNumber: Argument<number> = make({
  typeName: "Integer",
  fromWire: (bytes) => {
    const n = Integer.fromWire(bytes)
    if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) {
      fail("Integer", `${n} is beyond what a number holds exactly; use Argument.Integer (bigint)`)
    }
    return Number(n)
  },
  toWire: (n) => {
    if (!Number.isSafeInteger(n)) fail("Integer", `${n} is not a safe integer`)
    return ascii(globalThis.String(n))
  }
})

/**
 * Raw bytes, passed through (Twisted's `String`, which is `bytes`).
 *
 * @since 0.1.0
 */
export const String: Argument<Uint8Array> = make({
  typeName: "String",
  fromWire: (bytes) => bytes,
  toWire: (bytes) => {
    if (!(bytes instanceof Uint8Array)) fail("String", "expected a Uint8Array")
    return bytes
  }
})

const hasLoneSurrogate = (s: string): boolean => {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) i++
      else return true
    } else if (c >= 0xdc00 && c <= 0xdfff) return true
  }
  return false
}

const unicode = (typeName: string): Argument<string> =>
  make({
    typeName,
    fromWire: (bytes) => {
      const s = decodeUtf8(bytes)
      if (s === undefined) return fail(typeName, "not valid UTF-8")
      return s
    },
    toWire: (s) => {
      if (typeof s !== "string") fail(typeName, `expected a string, got ${typeof s}`)
      if (hasLoneSurrogate(s)) fail(typeName, "a lone surrogate cannot be written as UTF-8")
      return utf8(s)
    }
  })

/**
 * Text as UTF-8 (Twisted's `Unicode`). Invalid UTF-8 is an error.
 *
 * @since 0.1.0
 */
export const Unicode: Argument<string> = unicode("Unicode")

/**
 * A file path as UTF-8 text (Twisted's `Path`, a `FilePath` there).
 *
 * @since 0.1.0
 */
export const Path: Argument<string> = unicode("Path")

/**
 * Python's `repr(float)`: the shortest digits that read back exactly, fixed
 * notation for decimal exponents -4..15, otherwise `1.5e+16` style with at
 * least two exponent digits, and `.0` on integral values.
 */
export const pythonFloatRepr = (n: number): string => {
  if (Number.isNaN(n)) return "nan"
  if (n === Infinity) return "inf"
  if (n === -Infinity) return "-inf"
  if (n === 0) return Object.is(n, -0) ? "-0.0" : "0.0"
  const [mantissa, exp] = n.toExponential().split("e") as [string, string]
  const e = Number(exp)
  const negative = mantissa.startsWith("-")
  const digits = mantissa.replace("-", "").replace(".", "")
  const sign = negative ? "-" : ""
  if (e >= -4 && e < 16) {
    if (e < 0) return `${sign}0.${"0".repeat(-e - 1)}${digits}`
    const int = digits.slice(0, e + 1).padEnd(e + 1, "0")
    const frac = digits.slice(e + 1)
    return `${sign}${int}.${frac === "" ? "0" : frac}`
  }
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits
  const x = Math.abs(e).toString().padStart(2, "0")
  return `${sign}${m}e${e < 0 ? "-" : "+"}${x}`
}

const pythonFloatPattern = /^[+-]?(?:(?:\d+(?:_\d+)*)?\.?\d*(?:_\d+)*(?:[eE][+-]?\d+(?:_\d+)*)?)$/

/**
 * A float, written as Python's `repr` (`inf`, `-inf`, `nan`, `1e-300`,
 * `-0.0`), read as Python's `float()` reads.
 *
 * @since 0.1.0
 */
export const Float: Argument<number> = make({
  typeName: "Float",
  fromWire: (bytes) => {
    const s = asciiOf("Float", bytes).trim()
    const lower = s.toLowerCase().replace(/^\+/, "")
    if (lower === "inf" || lower === "infinity") return Infinity
    if (lower === "-inf" || lower === "-infinity") return -Infinity
    if (lower === "nan" || lower === "-nan") return NaN
    if (s === "" || !/\d/.test(s) || !pythonFloatPattern.test(s)) return fail("Float", `not a float: ${JSON.stringify(s)}`)
    return Number(s.replace(/_/g, ""))
  },
  toWire: (n) => {
    if (typeof n !== "number") fail("Float", `expected a number, got ${typeof n}`)
    return ascii(pythonFloatRepr(n))
  }
})

const TRUE = ascii("True")
const FALSE = ascii("False")

/**
 * `True` or `False`, exactly; anything else is an error (Twisted's `Boolean`).
 *
 * @since 0.1.0
 */
export const Boolean: Argument<boolean> = make({
  typeName: "Boolean",
  fromWire: (bytes) => {
    const s = decodeUtf8(bytes)
    if (s === "True") return true
    if (s === "False") return false
    return fail("Boolean", `expected True or False, got ${JSON.stringify(s ?? "(not UTF-8)")}`)
  },
  toWire: (b) => (b ? TRUE : FALSE)
})

/**
 * A file descriptor, as its ordinal on the wire (Twisted's `Descriptor`).
 * The descriptor itself travels beside the bytes (SCM_RIGHTS on a UNIX
 * socket), which Node cannot do without native code: both directions fail
 * with a clear error.
 *
 * @since 0.1.0
 */
export const Descriptor: Argument<number> = make<number>({
  typeName: "Descriptor",
  fromWire: () => fail("Descriptor", "passing file descriptors needs a transport that can carry them (none of ours can)"),
  toWire: () => fail("Descriptor", "passing file descriptors needs a transport that can carry them (none of ours can)")
})

// ---------------------------------------------------------------------------
// Decimal
// ---------------------------------------------------------------------------

/**
 * An exact decimal number, as Python's `decimal.Decimal` keeps it: sign,
 * coefficient digits and exponent, so `1.10` stays `1.10`; or a special
 * value.
 *
 * @since 0.1.0
 */
export class AmpDecimal extends Data.Class<{
  /** `true` for negative values, including `-0` and `-NaN`. */
  readonly negative: boolean
  /** Coefficient digits without leading zeros (`"0"` for zero); empty for specials. */
  readonly coefficient: string
  /** Power of ten the coefficient is scaled by. */
  readonly exponent: number
  readonly special?: "Infinity" | "NaN" | "sNaN"
}> {
  /** Parses Python's (and the General Decimal Arithmetic spec's) number syntax. */
  static fromString(text: string): AmpDecimal {
    const s = text.trim()
    const m = /^([+-]?)(?:(\d+(?:_\d+)*)?(?:\.(\d*(?:_\d+)*))?(?:[eE]([+-]?\d+))?|(inf|infinity)|(s?nan)(\d*))$/i.exec(s)
    if (m === null || (m[2] === undefined && m[3] === undefined && m[5] === undefined && m[6] === undefined)) {
      return fail("Decimal", `not a decimal: ${JSON.stringify(text)}`)
    }
    const negative = m[1] === "-"
    if (m[5] !== undefined) return new AmpDecimal({ negative, coefficient: "", exponent: 0, special: "Infinity" })
    if (m[6] !== undefined) {
      return new AmpDecimal({ negative, coefficient: "", exponent: 0, special: m[6].toLowerCase() === "snan" ? "sNaN" : "NaN" })
    }
    const int = (m[2] ?? "").replace(/_/g, "")
    const frac = (m[3] ?? "").replace(/_/g, "")
    if (int === "" && frac === "") return fail("Decimal", `not a decimal: ${JSON.stringify(text)}`)
    const coefficient = (int + frac).replace(/^0+(?=\d)/, "")
    return new AmpDecimal({ negative, coefficient, exponent: Number(m[4] ?? 0) - frac.length })
  }

  /** A decimal from a JS number, through its shortest exact-enough repr. */
  static fromNumber(n: number): AmpDecimal {
    return AmpDecimal.fromString(Number.isFinite(n) ? pythonFloatRepr(n) : Number.isNaN(n) ? "NaN" : n > 0 ? "Infinity" : "-Infinity")
  }

  /** Python's `str(Decimal)`: the spec's to-scientific-string. */
  override toString(): string {
    const sign = this.negative ? "-" : ""
    if (this.special !== undefined) return sign + this.special
    const c = this.coefficient
    const e = this.exponent
    const adjusted = e + c.length - 1
    if (e <= 0 && adjusted >= -6) {
      if (e === 0) return sign + c
      const point = c.length + e
      return point > 0 ? `${sign}${c.slice(0, point)}.${c.slice(point)}` : `${sign}0.${"0".repeat(-point)}${c}`
    }
    const mantissa = c.length > 1 ? `${c[0]}.${c.slice(1)}` : c
    return `${sign}${mantissa}E${adjusted >= 0 ? "+" : "-"}${Math.abs(adjusted)}`
  }

  /** The nearest JS number (lossy). */
  toNumber(): number {
    if (this.special === "Infinity") return this.negative ? -Infinity : Infinity
    if (this.special !== undefined) return NaN
    return Number(`${this.negative ? "-" : ""}${this.coefficient}e${this.exponent}`)
  }
}

/**
 * An exact decimal, as Python's `str(Decimal)` writes it (`1.10`, `1E+2`,
 * `-0`, `Infinity`, `NaN`, `sNaN`).
 *
 * @since 0.1.0
 */
export const Decimal: Argument<AmpDecimal> = make({
  typeName: "Decimal",
  fromWire: (bytes) => AmpDecimal.fromString(asciiOf("Decimal", bytes)),
  toWire: (d) => {
    if (!(d instanceof AmpDecimal)) fail("Decimal", "expected an AmpDecimal value")
    return ascii(d.toString())
  }
})

// ---------------------------------------------------------------------------
// DateTime
// ---------------------------------------------------------------------------

const daysIn = (year: number, month: number): number =>
  month === 2 ? ((year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31

/**
 * A date and time with a fixed UTC offset and exact microseconds (Python's
 * aware `datetime`, as AMP carries it).
 *
 * @since 0.1.0
 */
export class AmpDateTime extends Data.Class<{
  readonly year: number
  readonly month: number
  readonly day: number
  readonly hour: number
  readonly minute: number
  readonly second: number
  readonly microsecond: number
  /** Minutes east of UTC (`+05:45` is 345, `-09:30` is -570). */
  readonly offsetMinutes: number
}> {
  /** Checks ranges as Python's `datetime` does; throws {@link ArgumentError}. */
  static make(fields: ConstructorParameters<typeof AmpDateTime>[0]): AmpDateTime {
    const { day, hour, microsecond, minute, month, offsetMinutes, second, year } = fields
    const check = (ok: boolean, what: string) => ok || fail("DateTime", what)
    const int = Number.isInteger
    check([year, month, day, hour, minute, second, microsecond, offsetMinutes].every(int), "fields must be integers")
    check(year >= 1 && year <= 9999, `year ${year} is out of range 1..9999`)
    check(month >= 1 && month <= 12, `month ${month} is out of range 1..12`)
    check(day >= 1 && day <= daysIn(year, month), `day ${day} is out of range for ${year}-${month}`)
    check(hour >= 0 && hour < 24, `hour ${hour} is out of range 0..23`)
    check(minute >= 0 && minute < 60, `minute ${minute} is out of range 0..59`)
    check(second >= 0 && second < 60, `second ${second} is out of range 0..59`)
    check(microsecond >= 0 && microsecond < 1_000_000, `microsecond ${microsecond} is out of range`)
    check(Math.abs(offsetMinutes) < 24 * 60, `UTC offset ${offsetMinutes} minutes is not within a day`)
    return new AmpDateTime(fields)
  }

  /** The instant of a JS `Date` (millisecond precision), shown at `offsetMinutes`. */
  static fromDate(date: Date, offsetMinutes = 0): AmpDateTime {
    const shifted = new Date(date.getTime() + offsetMinutes * 60_000)
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

  /** The instant as a JS `Date`: microseconds below a millisecond are dropped. */
  toDate(): Date {
    const utc = Date.UTC(this.year, this.month - 1, this.day, this.hour, this.minute, this.second, Math.floor(this.microsecond / 1000))
    const d = new Date(utc - this.offsetMinutes * 60_000)
    if (this.year < 100) d.setUTCFullYear(d.getUTCFullYear() - 1900)
    return d
  }

  /** Twisted's 32-character wire form, `YYYY-MM-DDTHH:MM:SS.ffffff±HH:MM`. A zero offset is `-00:00`, as Twisted writes it. */
  override toString(): string {
    const p = (n: number, w: number) => n.toString().padStart(w, "0")
    const o = Math.abs(this.offsetMinutes)
    return `${p(this.year, 4)}-${p(this.month, 2)}-${p(this.day, 2)}T${p(this.hour, 2)}:${p(this.minute, 2)}:${p(this.second, 2)}.${
      p(this.microsecond, 6)
    }${this.offsetMinutes > 0 ? "+" : "-"}${p(Math.floor(o / 60), 2)}:${p(o % 60, 2)}`
  }

  /** Parses the wire form; throws {@link ArgumentError} saying what is wrong. */
  static fromString(s: string): AmpDateTime {
    if (s.length !== 32) return fail("DateTime", `expected 32 characters, got ${s.length}: ${JSON.stringify(s)}`)
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})([+-])(\d{2}):(\d{2})$/.exec(s)
    if (m === null) return fail("DateTime", `not in the form YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM: ${JSON.stringify(s)}`)
    const n = m.slice(1).map((x) => Number(x))
    const offsetHours = n[8]!
    const offsetMins = n[9]!
    if (offsetMins >= 60) fail("DateTime", `offset minutes ${offsetMins} out of range`)
    const offset = (offsetHours * 60 + offsetMins) * (m[8] === "-" ? -1 : 1)
    return AmpDateTime.make({
      year: n[0]!,
      month: n[1]!,
      day: n[2]!,
      hour: n[3]!,
      minute: n[4]!,
      second: n[5]!,
      microsecond: n[6]!,
      offsetMinutes: offset
    })
  }
}

/**
 * A timezone-aware date and time (Twisted's `AmpDateTime`): 32 characters
 * with microseconds and a UTC offset, kept exactly.
 *
 * @since 0.1.0
 */
export const DateTime: Argument<AmpDateTime> = make({
  typeName: "DateTime",
  fromWire: (bytes) => AmpDateTime.fromString(asciiOf("DateTime", bytes)),
  toWire: (d) => {
    if (!(d instanceof AmpDateTime)) fail("DateTime", "expected an AmpDateTime value")
    return ascii(d.toString())
  }
})

// ---------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------

/**
 * A list of one type (Twisted's `ListOf`): each element's bytes behind a
 * 2-byte big-endian length, back to back.
 *
 * @since 0.1.0
 */
export const ListOf = <A>(element: Argument<A>): Argument<ReadonlyArray<A>> => {
  const typeName = `ListOf(${element.typeName})`
  return make<ReadonlyArray<A>>({
    typeName,
    fromWire: (bytes) => {
      const out: Array<A> = []
      let at = 0
      while (at < bytes.length) {
        if (at + 2 > bytes.length) fail(typeName, `truncated element length at byte ${at}`)
        const n = (bytes[at]! << 8) | bytes[at + 1]!
        if (at + 2 + n > bytes.length) fail(typeName, `element at byte ${at} announces ${n} bytes, ${bytes.length - at - 2} remain`)
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
      const parts = values.map((v, i) => {
        let b: Uint8Array
        try {
          b = element.toWire(v)
        } catch (e) {
          return fail(typeName, `element ${i}: ${describe(e)}`)
        }
        if (b.length > MAX_VALUE_LENGTH) fail(typeName, `element ${i} is ${b.length} bytes, the limit is 65535`)
        return b
      })
      const out = new Uint8Array(parts.reduce((s, p) => s + 2 + p.length, 0))
      let at = 0
      for (const p of parts) {
        out[at] = p.length >>> 8
        out[at + 1] = p.length & 0xff
        out.set(p, at + 2)
        at += 2 + p.length
      }
      return out
    }
  })
}

type Fields = { readonly [wireName: string]: Argument<any> }
type ValueOf<T> = T extends Argument<infer A> ? A : never
type OptionalKeys<F extends Fields> = { [K in keyof F]: undefined extends ValueOf<F[K]> ? K : never }[keyof F]
type FieldName<K extends string> = K extends `${infer A}-${infer B}` ? `${A}_${FieldName<B>}` : K
/** The record type of an `AmpList` element. */
export type Record<F extends Fields> =
  & { readonly [K in Exclude<keyof F, OptionalKeys<F>> & string as FieldName<K>]: ValueOf<F[K]> }
  & { readonly [K in OptionalKeys<F> & string as FieldName<K>]?: ValueOf<F[K]> }

/** `foo-bar` to `foo_bar`: wire names that are not identifiers become fields this way (Twisted's rule). */
export const wireNameToField = (wireName: string): string => wireName.replace(/-/g, "_")

/**
 * A list of records, each an AMP box (Twisted's `AmpList`): the encoded
 * boxes back to back.
 *
 * @since 0.1.0
 */
export const AmpList = <F extends Fields>(fields: F): Argument<ReadonlyArray<Record<F>>> => {
  const spec = Object.entries(fields).map(([wire, argument]) => ({ wire, field: wireNameToField(wire), argument }))
  const typeName = `AmpList(${spec.map((s) => `${s.wire}: ${s.argument.typeName}`).join(", ")})`
  const known = new Set(spec.map((s) => s.field))
  return make<ReadonlyArray<Record<F>>>({
    typeName,
    fromWire: (bytes) => {
      let boxes: Array<AmpBox>
      try {
        boxes = parse(bytes)
      } catch (e) {
        return fail(typeName, describe(e))
      }
      return boxes.map((box, i) => {
        const out: { [k: string]: unknown } = {}
        for (const s of spec) {
          let v: unknown
          try {
            v = s.argument.fromBox(box, s.wire)
          } catch (e) {
            return fail(typeName, `element ${i}, ${s.wire}: ${describe(e)}`)
          }
          if (v === undefined) {
            if (!s.argument.optional) fail(typeName, `element ${i} lacks ${JSON.stringify(s.wire)}`)
            continue
          }
          out[s.field] = v
        }
        return out as Record<F>
      })
    },
    toWire: (records) => {
      if (!Array.isArray(records)) fail(typeName, "expected an array")
      const boxes = records.map((record, i) => {
        const out = new Map<string, Uint8Array>()
        for (const k in record) if (!known.has(k)) fail(typeName, `element ${i} has unknown field ${JSON.stringify(k)}`)
        for (const s of spec) {
          const v = (record as { [k: string]: unknown })[s.field]
          if (v === undefined) {
            if (!s.argument.optional) fail(typeName, `element ${i} lacks ${JSON.stringify(s.field)}`)
            continue
          }
          try {
            s.argument.toBox(v, s.wire, out)
          } catch (e) {
            fail(typeName, `element ${i}, ${s.field}: ${describe(e)}`)
          }
        }
        return out
      })
      try {
        return encodeBoxes(boxes.map(unsafeFromMap))
      } catch (e) {
        return fail(typeName, describe(e))
      }
    }
  })
}

// ---------------------------------------------------------------------------
// Values over 64 KiB
// ---------------------------------------------------------------------------

const big = <A>(inner: Argument<A>, typeName: string): Argument<A> => {
  const join = (box: AmpBox, key: string): Uint8Array | undefined => {
    const first = box.get(key)
    if (first === undefined) return undefined
    const parts = [first]
    for (let i = 2;; i++) {
      const part = box.get(`${key}.${i}`)
      if (part === undefined) break
      parts.push(part)
    }
    if (parts.length === 1) return first
    const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0))
    let at = 0
    for (const p of parts) {
      out.set(p, at)
      at += p.length
    }
    return out
  }
  return make({
    typeName,
    fromWire: inner.fromWire,
    toWire: inner.toWire,
    fromBox: (box, key) => {
      const bytes = join(box, key)
      return bytes === undefined ? undefined : inner.fromWire(bytes)
    },
    toBox: (value, key, out) => {
      const bytes = inner.toWire(value)
      out.set(key, bytes.subarray(0, MAX_VALUE_LENGTH))
      for (let at = MAX_VALUE_LENGTH, i = 2; at < bytes.length; at += MAX_VALUE_LENGTH, i++) {
        out.set(`${key}.${i}`, bytes.subarray(at, at + MAX_VALUE_LENGTH))
      }
    }
  })
}

/**
 * Bytes of any length: split across `key`, `key.2`, `key.3`... in pieces of
 * at most 65535 bytes (the convention published with AMP's type list).
 *
 * @since 0.1.0
 */
export const BigString: Argument<Uint8Array> = big(String, "BigString")

/**
 * Text of any length, as UTF-8 split like {@link BigString}.
 *
 * @since 0.1.0
 */
export const BigUnicode: Argument<string> = big(Unicode, "BigUnicode")
