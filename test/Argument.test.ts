/**
 * Argument types: exact wire bytes against what a live Twisted writes, round
 * trips, and every error path.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Schema from "effect/Schema"
import * as AmpBox from "../src/AmpBox.js"
import * as Argument from "../src/Argument.js"
import { requireTwisted, runPython } from "./support/twisted.js"

const text = (b: Uint8Array) => new TextDecoder().decode(b)
const bytes = (s: string) => new TextEncoder().encode(s)
const throws = (f: () => unknown) => {
  try {
    f()
  } catch (e) {
    return e as Argument.ArgumentError
  }
  throw new Error("did not throw")
}

describe("Argument against Twisted's bytes", () => {
  requireTwisted()
  const vectors = JSON.parse(runPython("argument_vectors.py")) as ReadonlyArray<{ type: string; value: unknown; wire_b64: string }>
  const ours = (type: string, value: unknown): Uint8Array => {
    switch (type) {
      case "Integer":
        return Argument.Integer.toWire(BigInt(value as string))
      case "Float":
        return Argument.Float.toWire(Argument.Float.fromWire(bytes(value as string)))
      case "Boolean":
        return Argument.Boolean.toWire(value as boolean)
      case "Decimal":
        return Argument.Decimal.toWire(Argument.AmpDecimal.fromString(value as string))
      case "DateTime": {
        const [year, month, day, hour, minute, second, microsecond, offsetMinutes] = value as Array<number>
        return Argument.DateTime.toWire(Argument.AmpDateTime.make({ year: year!, month: month!, day: day!, hour: hour!, minute: minute!, second: second!, microsecond: microsecond!, offsetMinutes: offsetMinutes! }))
      }
      case "ListOf(Integer)":
        return Argument.ListOf(Argument.Integer).toWire((value as Array<string>).map(BigInt))
      case "ListOf(Unicode)":
        return Argument.ListOf(Argument.Unicode).toWire(value as Array<string>)
      case "Unicode":
        return Argument.Unicode.toWire(value as string)
    }
    throw new Error(type)
  }
  for (const v of vectors) {
    it(`${v.type} ${JSON.stringify(v.value)}: our bytes are Twisted's, and we read them back`, () => {
      const wire = new Uint8Array(Buffer.from(v.wire_b64, "base64"))
      expect(text(ours(v.type, v.value))).toBe(text(wire))
      const arg = (v.type.startsWith("ListOf(Integer") ? Argument.ListOf(Argument.Integer) : v.type.startsWith("ListOf(Unicode")
        ? Argument.ListOf(Argument.Unicode)
        : (Argument as unknown as Record<string, Argument.Argument<unknown>>)[v.type]!) as Argument.Argument<unknown>
      const back = arg.toWire(arg.fromWire(wire))
      // Decimal normalizes its input as Python does ("+5" reads as 5), so compare the re-encoding.
      expect(text(back)).toBe(text(wire))
    })
  }
})

describe("Argument round trips and errors", () => {
  it("Integer: arbitrary size, Python's int() syntax, garbage refused", () => {
    FastCheck.assert(FastCheck.property(FastCheck.bigInt(), (n) => Argument.Integer.fromWire(Argument.Integer.toWire(n)) === n))
    expect(Argument.Integer.fromWire(bytes(" +1_000 "))).toBe(1000n)
    for (const bad of ["", "1.5", "0x10", "1__0", "abc", "1 2"]) {
      expect(throws(() => Argument.Integer.fromWire(bytes(bad)))).toMatchObject({ _tag: "ArgumentError", typeName: "Integer" })
    }
  })

  it("IntegerNumber refuses what a number cannot hold, both ways", () => {
    expect(Argument.IntegerNumber.fromWire(bytes("9007199254740991"))).toBe(9007199254740991)
    expect(throws(() => Argument.IntegerNumber.fromWire(bytes("9007199254740993"))).message).toContain("beyond")
    expect(throws(() => Argument.IntegerNumber.toWire(2 ** 53))).toMatchObject({ _tag: "ArgumentError" })
    expect(throws(() => Argument.IntegerNumber.toWire(1.5))).toMatchObject({ _tag: "ArgumentError" })
  })

  it("Float reads what Python's float() reads, and round trips every double", () => {
    FastCheck.assert(FastCheck.property(FastCheck.double(), (n) => Object.is(Argument.Float.fromWire(Argument.Float.toWire(n)), n)))
    expect(Argument.Float.fromWire(bytes("Infinity"))).toBe(Infinity)
    expect(Argument.Float.fromWire(bytes(" -1E5 "))).toBe(-100000)
    expect(Number.isNaN(Argument.Float.fromWire(bytes("NaN")))).toBe(true)
    for (const bad of ["", "1e", "x", "--1", "1.2.3"]) expect(throws(() => Argument.Float.fromWire(bytes(bad))).typeName).toBe("Float")
  })

  it("Boolean is exactly True or False", () => {
    expect(Argument.Boolean.fromWire(bytes("True"))).toBe(true)
    for (const bad of ["true", "1", "", "False "]) expect(throws(() => Argument.Boolean.fromWire(bytes(bad))).typeName).toBe("Boolean")
  })

  it("Unicode: invalid UTF-8 and lone surrogates are errors", () => {
    expect(throws(() => Argument.Unicode.fromWire(new Uint8Array([0xff, 0xfe]))).message).toContain("UTF-8")
    expect(throws(() => Argument.Unicode.toWire("\ud800")).message).toContain("surrogate")
    FastCheck.assert(FastCheck.property(FastCheck.string({ unit: "grapheme" }), (s) => Argument.Unicode.fromWire(Argument.Unicode.toWire(s)) === s))
  })

  it("Decimal keeps precision and special values exactly", () => {
    for (const s of ["1.10", "-0", "1E+2", "1.23E-7", "Infinity", "-Infinity", "NaN", "sNaN", "0.000001", "123456789012345678901234567890.123"]) {
      expect(Argument.AmpDecimal.fromString(s).toString()).toBe(s)
    }
    expect(Argument.AmpDecimal.fromString("1.10").toNumber()).toBe(1.1)
    expect(throws(() => Argument.AmpDecimal.fromString("1.2.3")).typeName).toBe("Decimal")
  })

  it("DateTime keeps microseconds and the offset; malformed input says what is wrong", () => {
    const dt = Argument.AmpDateTime.fromString("2026-11-24T23:59:59.999999+05:45")
    expect(dt).toMatchObject({ microsecond: 999999, offsetMinutes: 345 })
    expect(dt.toString()).toBe("2026-11-24T23:59:59.999999+05:45")
    expect(dt.toDate().toISOString()).toBe("2026-11-24T18:14:59.999Z")
    expect(throws(() => Argument.AmpDateTime.fromString("2026-11-24")).message).toContain("32 characters")
    expect(throws(() => Argument.AmpDateTime.fromString("2026-02-30T00:00:00.000000+00:00")).message).toContain("day 30")
    expect(throws(() => Argument.AmpDateTime.fromString("2026-01-01T24:00:00.000000+00:00")).message).toContain("hour 24")
  })

  it("ListOf: empty lists, element errors, oversized elements, truncation", () => {
    const ints = Argument.ListOf(Argument.Integer)
    expect(ints.fromWire(new Uint8Array(0))).toEqual([])
    expect(throws(() => ints.fromWire(new Uint8Array([0, 2, 0x31]))).message).toContain("announces 2 bytes")
    expect(throws(() => ints.fromWire(new Uint8Array([0, 1, 0x78]))).message).toContain("element 0")
    expect(throws(() => Argument.ListOf(Argument.String).toWire([new Uint8Array(65536)])).message).toContain("65535")
  })

  it("AmpList: nested lists and optional fields", () => {
    const list = Argument.AmpList({ x: Argument.Integer, y: Argument.optional(Argument.Unicode), inner: Argument.AmpList({ z: Argument.Integer }) })
    const value = [{ x: 1n, y: "one", inner: [{ z: 2n }] }, { x: 3n, inner: [] }]
    expect(list.fromWire(list.toWire(value))).toEqual(value)
    expect(throws(() => list.toWire([{ inner: [] } as never])).message).toContain("lacks")
    expect(throws(() => list.toWire([{ x: 1n, inner: [], w: 1 } as never])).message).toContain("unknown field")
  })

  it("BigString splits past 65535 bytes into key, key.2, ... and reassembles", () => {
    const value = new Uint8Array(200 * 1024).map((_, i) => i % 251)
    const out = new Map<string, Uint8Array>()
    Argument.BigString.toBox(value, "blob", out)
    expect([...out.keys()]).toEqual(["blob", "blob.2", "blob.3", "blob.4"])
    expect(Buffer.from(Argument.BigString.fromBox(AmpBox.unsafeFromMap(out), "blob")!).equals(Buffer.from(value))).toBe(true)
    const small = new Map<string, Uint8Array>()
    Argument.BigUnicode.toBox("short", "t", small)
    expect([...small.keys()]).toEqual(["t"])
  })

  it("Descriptor fails clearly", () => {
    expect(throws(() => Argument.Descriptor.toWire(3)).message).toContain("file descriptors")
  })

  it.effect("each type is also a Schema from wire bytes", () =>
    Effect.gen(function*() {
      expect(yield* Schema.decode(Argument.Integer.schema)(bytes("42"))).toBe(42n)
      const error = yield* Effect.flip(Schema.decode(Argument.Boolean.schema)(bytes("yes")))
      expect(error.message).toContain("True or False")
      expect(text(yield* Schema.encode(Argument.Float.schema)(-0))).toBe("-0.0")
    }))
})
