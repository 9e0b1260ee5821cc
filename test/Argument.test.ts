/**
 * Argument types on their own: exact wire bytes for edge values (as Twisted
 * writes them; ArgumentTwisted.test.ts checks the same against a live
 * Twisted), round-trip properties, and every error path.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as FastCheck from "effect/FastCheck"
import * as Schema from "effect/Schema"
import * as AmpBox from "../src/AmpBox.js"
import * as Argument from "../src/Argument.js"
import * as ArgumentSchema from "../src/ArgumentSchema.js"
import * as BoxCodec from "../src/BoxCodec.js"

const bytes = (s: string) => new TextEncoder().encode(s)
const latin1 = (s: string) => AmpBox.byteStringToBytes(s)
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")
const wireText = (b: Uint8Array) => Buffer.from(b).toString("latin1")

/** The ArgumentError `f` throws (fails the test when it does not throw one). */
const thrown = (f: () => unknown): Argument.ArgumentError => {
  try {
    f()
  } catch (e) {
    if (e instanceof Argument.ArgumentError) return e
    throw new Error(`threw something else: ${String(e)}`)
  }
  throw new Error("did not throw")
}

const dt = (
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  microsecond: number,
  offsetMinutes: number
) => Argument.AmpDateTime.make({ year, month, day, hour, minute, second, microsecond, offsetMinutes })

const daysIn = (y: number, m: number) => new Date(Date.UTC(2000, m, 0)).getUTCDate() - (m === 2 && !(y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0)) ? 1 : 0)

const arbDateTime = FastCheck.record({
  year: FastCheck.integer({ min: 1, max: 9999 }),
  month: FastCheck.integer({ min: 1, max: 12 }),
  day: FastCheck.integer({ min: 1, max: 31 }),
  hour: FastCheck.integer({ min: 0, max: 23 }),
  minute: FastCheck.integer({ min: 0, max: 59 }),
  second: FastCheck.integer({ min: 0, max: 59 }),
  microsecond: FastCheck.integer({ min: 0, max: 999_999 }),
  offsetMinutes: FastCheck.integer({ min: -1439, max: 1439 })
}).map((f) => Argument.AmpDateTime.make({ ...f, day: Math.min(f.day, daysIn(f.year, f.month)) }))

const arbDecimal = FastCheck.oneof(
  FastCheck.record({
    negative: FastCheck.boolean(),
    coefficient: FastCheck.bigInt({ min: 0n, max: 10n ** 60n }).map(String),
    exponent: FastCheck.integer({ min: -60, max: 60 })
  }).map((f) => new Argument.AmpDecimal(f)),
  FastCheck.record({
    negative: FastCheck.boolean(),
    special: FastCheck.constantFrom("Infinity" as const, "NaN" as const, "sNaN" as const),
    payload: FastCheck.bigInt({ min: 0n, max: 10n ** 20n })
  }).map(({ negative, payload, special }) =>
    new Argument.AmpDecimal({ negative, special, exponent: 0, coefficient: special === "Infinity" || payload === 0n ? "" : String(payload) })
  )
)

describe("Integer", () => {
  it.prop("round-trips any bigint", [FastCheck.bigInt()], ([n]) => {
    expect(Argument.Integer.fromWire(Argument.Integer.toWire(n))).toBe(n)
  })

  it("writes decimal digits exactly, past 2^53 and 2^64", () => {
    const cases: ReadonlyArray<readonly [bigint, string]> = [
      [0n, "0"],
      [-1n, "-1"],
      [42n, "42"],
      [2n ** 53n + 1n, "9007199254740993"],
      [2n ** 64n, "18446744073709551616"],
      [-(2n ** 64n) - 1n, "-18446744073709551617"],
      [10n ** 40n, "1" + "0".repeat(40)]
    ]
    for (const [n, wire] of cases) {
      expect(wireText(Argument.Integer.toWire(n))).toBe(wire)
      expect(Argument.Integer.fromWire(bytes(wire))).toBe(n)
    }
  })

  it("reads what Python's int() reads from ASCII", () => {
    const cases: ReadonlyArray<readonly [string, bigint]> = [
      [" +1_000 ", 1000n],
      ["\t-5\n", -5n],
      ["\v7\f", 7n],
      ["007", 7n],
      ["0_7", 7n],
      ["-0", 0n],
      ["+0", 0n],
      ["123456789012345678901234567890", 123456789012345678901234567890n]
    ]
    for (const [wire, n] of cases) expect(Argument.Integer.fromWire(bytes(wire)), wire).toBe(n)
  })

  it("refuses garbage", () => {
    for (const bad of ["", " ", "-", "+", "+-1", "1.5", "1e3", "0x10", "1__0", "_1", "1_", "abc", "1 2", "\x001", "1\x00", "\x1c1", "٣", "１"]) {
      const e = thrown(() => Argument.Integer.fromWire(bytes(bad)))
      expect(e).toMatchObject({ _tag: "ArgumentError", typeName: "Integer" })
    }
    expect(thrown(() => Argument.Integer.fromWire(bytes("12x"))).message).toBe("Integer: not an integer: \"12x\"")
    expect(thrown(() => Argument.Integer.fromWire(new Uint8Array([0x31, 0xc3, 0xa9]))).message).toContain("not ASCII")
    expect(thrown(() => Argument.Integer.toWire(1 as never)).message).toContain("expected a bigint")
  })

  it("reads a decoded box's value in place exactly as fromWire reads its bytes", () => {
    // Decoded boxes hand integers their bytes without a view (fromWireAt); the results must not differ.
    const wires = ["0", "-1", "42", "007", " +1_000 ", "-0", "123456789012345", "1234567890123456", "9".repeat(40), "12x", "", "-", "1\u00e9"]
    for (const wire of wires) {
      const [box] = BoxCodec.parse(BoxCodec.encodeBox(AmpBox.make({ pad: "x", n: wire, after: "y" })))
      const direct = (() => {
        try {
          return Argument.Integer.fromWire(AmpBox.utf8(wire))
        } catch (e) {
          return (e as Error).message
        }
      })()
      const inPlace = (() => {
        try {
          return Argument.Integer.fromBox(box!, "n")
        } catch (e) {
          return (e as Error).message
        }
      })()
      expect(inPlace, JSON.stringify(wire)).toEqual(direct)
      expect(Argument.IntegerNumber.fromBox(box!, "missing")).toBeUndefined()
    }
  })
})

describe("IntegerNumber", () => {
  it.prop("round-trips safe integers", [FastCheck.maxSafeInteger()], ([n]) => {
    expect(Argument.IntegerNumber.fromWire(Argument.IntegerNumber.toWire(n))).toBe(n)
  })

  it("refuses, both ways, what a number cannot hold exactly", () => {
    expect(Argument.IntegerNumber.fromWire(bytes("9007199254740991"))).toBe(9007199254740991)
    expect(Argument.IntegerNumber.fromWire(bytes("-9007199254740991"))).toBe(-9007199254740991)
    expect(thrown(() => Argument.IntegerNumber.fromWire(bytes("9007199254740992"))).message).toContain("beyond")
    expect(thrown(() => Argument.IntegerNumber.fromWire(bytes("-9007199254740993"))).message).toContain("beyond")
    for (const bad of [2 ** 53, -(2 ** 53), 1.5, NaN, Infinity]) {
      expect(thrown(() => Argument.IntegerNumber.toWire(bad)).message).toContain("not a safe integer")
    }
    expect(thrown(() => Argument.IntegerNumber.fromWire(bytes("x"))).typeName).toBe("Integer")
  })
})

describe("Float", () => {
  it.prop("round-trips every double exactly, -0 included", [FastCheck.double()], ([n]) => {
    expect(Object.is(Argument.Float.fromWire(Argument.Float.toWire(n)), n)).toBe(true)
  })

  it("writes Python's repr", () => {
    const cases: ReadonlyArray<readonly [number, string]> = [
      [Infinity, "inf"],
      [-Infinity, "-inf"],
      [NaN, "nan"],
      [0, "0.0"],
      [-0, "-0.0"],
      [1, "1.0"],
      [-1, "-1.0"],
      [0.1, "0.1"],
      [0.1 + 0.2, "0.30000000000000004"],
      [1e-300, "1e-300"],
      [1e300, "1e+300"],
      [123456789012345680, "1.2345678901234568e+17"],
      [1.5e16, "1.5e+16"],
      [1e16, "1e+16"],
      [9999999999999998, "9999999999999998.0"],
      [1e-5, "1e-05"],
      [0.0001, "0.0001"],
      [0.00012345, "0.00012345"],
      [5e-324, "5e-324"],
      [1.7976931348623157e308, "1.7976931348623157e+308"],
      [1e21, "1e+21"],
      [1e22, "1e+22"],
      [100, "100.0"],
      [2.5, "2.5"],
      [-1.5e-7, "-1.5e-07"],
      [1234567.125, "1234567.125"]
    ]
    for (const [n, repr] of cases) {
      expect(wireText(Argument.Float.toWire(n)), repr).toBe(repr)
      expect(Argument.pythonFloatRepr(n)).toBe(repr)
    }
  })

  it("reads what Python's float() reads", () => {
    const cases: ReadonlyArray<readonly [string, number]> = [
      ["inf", Infinity],
      ["Infinity", Infinity],
      ["iNF", Infinity],
      ["+inf", Infinity],
      ["-Infinity", -Infinity],
      [" -1E5 ", -100000],
      ["1.", 1],
      [".5", 0.5],
      ["1_0.5", 10.5],
      [".5_5", 0.55],
      ["1e5_0", 1e50],
      ["1e+0_5", 1e5],
      ["1E-05", 1e-5],
      ["1.5\v", 1.5],
      ["1e400", Infinity],
      ["-1e400", -Infinity],
      ["1e-400", 0],
      ["-0", -0]
    ]
    for (const [wire, n] of cases) expect(Object.is(Argument.Float.fromWire(bytes(wire)), n), wire).toBe(true)
    for (const wire of ["nan", "NaN", "-nan", "+nAn"]) expect(Number.isNaN(Argument.Float.fromWire(bytes(wire)))).toBe(true)
  })

  it("refuses garbage", () => {
    for (const bad of ["", " ", ".", "1e", "e5", "x", "--1", "1.2.3", "1._5", "_5", "1_.5", "1.5_", "1_e5", "1e_5", "0x10", "infinit", "nan(1)", "\x1c1.5", "1,5"]) {
      expect(thrown(() => Argument.Float.fromWire(bytes(bad))).typeName, bad).toBe("Float")
    }
    expect(thrown(() => Argument.Float.fromWire(bytes("1.5x"))).message).toBe("Float: not a float: \"1.5x\"")
    expect(thrown(() => Argument.Float.toWire(1n as never)).message).toContain("expected a number")
  })
})

describe("Boolean", () => {
  it("is exactly True or False", () => {
    expect(wireText(Argument.Boolean.toWire(true))).toBe("True")
    expect(wireText(Argument.Boolean.toWire(false))).toBe("False")
    expect(Argument.Boolean.fromWire(bytes("True"))).toBe(true)
    expect(Argument.Boolean.fromWire(bytes("False"))).toBe(false)
    for (const bad of ["true", "false", "TRUE", "1", "0", "", "False ", " True", "Tru", "Falsy"]) {
      expect(thrown(() => Argument.Boolean.fromWire(bytes(bad))).message, bad).toContain("expected True or False")
    }
    expect(thrown(() => Argument.Boolean.toWire(1 as never)).message).toContain("expected a boolean")
  })
})

describe("String", () => {
  it.prop("passes any bytes through", [FastCheck.uint8Array({ maxLength: 2000 })], ([b]) => {
    expect(hex(Argument.String.fromWire(Argument.String.toWire(b)))).toBe(hex(b))
  })

  it("carries empty and 65535-byte values", () => {
    expect(Argument.String.toWire(new Uint8Array(0)).length).toBe(0)
    const big = new Uint8Array(65535).fill(0xff)
    expect(Argument.String.fromWire(Argument.String.toWire(big)).length).toBe(65535)
    expect(thrown(() => Argument.String.toWire("text" as never)).message).toContain("Uint8Array")
  })
})

describe("Unicode and Path", () => {
  it.prop("round-trips any well-formed string", [FastCheck.string({ unit: "binary" })], ([s]) => {
    expect(Argument.Unicode.fromWire(Argument.Unicode.toWire(s))).toBe(s)
    expect(Argument.Path.fromWire(Argument.Path.toWire(s))).toBe(s)
  })

  it("writes UTF-8, outside the BMP too, and keeps a BOM", () => {
    expect(hex(Argument.Unicode.toWire("\u{1F40D}"))).toBe("f09f908d")
    expect(hex(Argument.Unicode.toWire("h\u00e9"))).toBe("68c3a9")
    expect(hex(Argument.Unicode.toWire("\u{10FFFF}"))).toBe("f48fbfbf")
    expect(Argument.Unicode.toWire("").length).toBe(0)
    expect(Argument.Unicode.fromWire(new Uint8Array([0xef, 0xbb, 0xbf, 0x41]))).toBe("\ufeffA")
    expect(Argument.Unicode.fromWire(new Uint8Array([0xf0, 0x9f, 0x90, 0x8d]))).toBe("\u{1F40D}")
    expect(Argument.Path.fromWire(bytes("/home/\u00e9l\u00e8ve"))).toBe("/home/\u00e9l\u00e8ve")
  })

  it("refuses invalid UTF-8 and unpaired surrogates", () => {
    const invalid = [[0xff], [0xfe, 0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0x80], [0x41, 0xc3]]
    for (const b of invalid) {
      expect(thrown(() => Argument.Unicode.fromWire(new Uint8Array(b)))).toMatchObject({ typeName: "Unicode", detail: "not valid UTF-8" })
      expect(thrown(() => Argument.Path.fromWire(new Uint8Array(b))).typeName).toBe("Path")
    }
    expect(thrown(() => Argument.Unicode.toWire("a\ud800")).message).toBe(
      "Unicode: unpaired surrogate U+D800 at index 1 cannot be written as UTF-8"
    )
    expect(thrown(() => Argument.Unicode.toWire("\udc00\ud83d\udc0d")).message).toContain("U+DC00 at index 0")
    expect(thrown(() => Argument.Unicode.toWire("\ud83d")).message).toContain("U+D83D")
    expect(thrown(() => Argument.Unicode.toWire(5 as never)).message).toContain("expected a string")
  })
})

describe("Decimal", () => {
  it.prop("round-trips any decimal, precision and specials included", [arbDecimal], ([d]) => {
    const back = Argument.Decimal.fromWire(Argument.Decimal.toWire(d))
    expect(back).toEqual(d)
    expect(Equal.equals(back, d)).toBe(true)
  })

  it("writes Python's str(Decimal)", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["1.10", "1.10"],
      ["-0", "-0"],
      ["1e2", "1E+2"],
      ["100", "100"],
      ["1.23E-7", "1.23E-7"],
      ["-1.10E-7", "-1.10E-7"],
      ["0.000001", "0.000001"],
      ["0.0000001", "1E-7"],
      ["0.000000", "0.000000"],
      ["0E+3", "0E+3"],
      ["0E-7", "0E-7"],
      ["-0.00", "-0.00"],
      ["12345E-10", "0.0000012345"],
      ["123.4500", "123.4500"],
      ["00012.3400", "12.3400"],
      ["1.e5", "1E+5"],
      [".5", "0.5"],
      ["5.", "5"],
      ["Infinity", "Infinity"],
      ["-inf", "-Infinity"],
      ["NaN", "NaN"],
      ["-nan", "-NaN"],
      ["sNaN", "sNaN"],
      ["-sNaN07", "-sNaN7"],
      ["NaN0123", "NaN123"],
      ["nan0", "NaN"],
      ["1_000", "1000"],
      ["_+1", "1"],
      [" 7.50\x1c", "7.50"],
      ["1E+999999999", "1E+999999999"]
    ]
    for (const [input, str] of cases) {
      const d = Argument.AmpDecimal.fromString(input)
      expect(d.toString(), input).toBe(str)
      expect(wireText(Argument.Decimal.toWire(d))).toBe(str)
      expect(Argument.Decimal.fromWire(bytes(input))).toEqual(d)
    }
    expect(Argument.AmpDecimal.fromString("1.10")).toMatchObject({ negative: false, coefficient: "110", exponent: -2 })
    expect(Argument.AmpDecimal.fromString("1.10").toNumber()).toBe(1.1)
    expect(Argument.AmpDecimal.fromString("-Infinity").toNumber()).toBe(-Infinity)
    expect(Argument.AmpDecimal.fromString("1.10").isFinite).toBe(true)
    expect(Argument.AmpDecimal.fromString("sNaN").isFinite).toBe(false)
    expect(Equal.equals(Argument.AmpDecimal.fromString("1.10"), Argument.AmpDecimal.fromString("1.1"))).toBe(false)
    expect(Argument.Decimal.fromString("1E+2")).toEqual(Argument.AmpDecimal.fromString("0.01E4"))
    expect(Argument.Decimal.toString(Argument.Decimal.fromString("1.5"))).toBe("1.5")
    expect(String(Argument.Decimal)).toBe("Decimal")
  })

  it("builds from numbers and bigints", () => {
    expect(Argument.AmpDecimal.fromNumber(0.1).toString()).toBe("0.1")
    expect(Argument.AmpDecimal.fromNumber(-0).toString()).toBe("-0.0")
    expect(Argument.AmpDecimal.fromNumber(1e-300).toString()).toBe("1E-300")
    expect(Argument.AmpDecimal.fromNumber(-Infinity).toString()).toBe("-Infinity")
    expect(Argument.AmpDecimal.fromNumber(NaN).toString()).toBe("NaN")
    expect(Argument.AmpDecimal.fromBigInt(-(2n ** 70n)).toString()).toBe("-1180591620717411303424")
  })

  it("refuses garbage and malformed values", () => {
    for (const bad of ["", " ", ".", "e", "1e", "1e+", ".e5", "+", "-", "0x1", "1.2.3", "1 _", "NaN-1", "Infinity1", "1\x00", "abc", "1E+99999999999999999999"]) {
      expect(thrown(() => Argument.AmpDecimal.fromString(bad)).typeName, bad).toBe("Decimal")
    }
    expect(thrown(() => Argument.AmpDecimal.fromString("1E+99999999999999999999")).message).toContain("exponent")
    expect(thrown(() => Argument.Decimal.fromWire(new Uint8Array([0x31, 0xff]))).message).toContain("not ASCII")
    expect(thrown(() => Argument.Decimal.toWire("1.5" as never)).message).toContain("expected an AmpDecimal")
    const malformed = [
      { negative: false, coefficient: "01", exponent: 0 },
      { negative: false, coefficient: "", exponent: 0 },
      { negative: false, coefficient: "1a", exponent: 0 },
      { negative: false, coefficient: "1", exponent: 0.5 },
      { negative: false, coefficient: "1", exponent: 0, special: "Infinity" as const },
      { negative: false, coefficient: "x", exponent: 0, special: "NaN" as const }
    ]
    for (const fields of malformed) expect(thrown(() => Argument.Decimal.toWire(new Argument.AmpDecimal(fields))).typeName).toBe("Decimal")
  })
})

describe("DateTime", () => {
  it.prop("round-trips any valid datetime, microseconds and offset exact", [arbDateTime], ([d]) => {
    const wire = Argument.DateTime.toWire(d)
    expect(wire.length).toBe(32)
    expect(Argument.DateTime.fromWire(wire)).toEqual(d)
  })

  it("writes Twisted's 32-character form", () => {
    expect(wireText(Argument.DateTime.toWire(dt(2026, 11, 24, 23, 59, 59, 999999, 345)))).toBe("2026-11-24T23:59:59.999999+05:45")
    expect(wireText(Argument.DateTime.toWire(dt(1, 1, 1, 0, 0, 0, 1, -570)))).toBe("0001-01-01T00:00:00.000001-09:30")
    expect(wireText(Argument.DateTime.toWire(dt(2000, 1, 1, 0, 0, 0, 0, 0)))).toBe("2000-01-01T00:00:00.000000-00:00")
    expect(wireText(Argument.DateTime.toWire(dt(9999, 12, 31, 23, 59, 59, 0, -1)))).toBe("9999-12-31T23:59:59.000000-00:01")
    expect(wireText(Argument.DateTime.toWire(dt(2024, 2, 29, 12, 0, 0, 500, 1439)))).toBe("2024-02-29T12:00:00.000500+23:59")
    expect(Argument.DateTime.fromString("2024-02-29T12:00:00.000500+00:00").offsetMinutes).toBe(0)
    expect(Argument.DateTime.fromString("1999-12-31T23:59:59.123456-09:30")).toMatchObject({ microsecond: 123456, offsetMinutes: -570 })
    expect(String(Argument.DateTime)).toBe("DateTime")
  })

  it("converts to and from JS Date (lossy below a millisecond)", () => {
    const d = Argument.AmpDateTime.fromString("2026-11-24T23:59:59.999999+05:45")
    expect(d.toDate().toISOString()).toBe("2026-11-24T18:14:59.999Z")
    expect(Argument.AmpDateTime.fromString("0012-03-04T05:06:07.000008+01:00").toDate().toISOString()).toBe("0012-03-04T04:06:07.000Z")
    expect(Argument.AmpDateTime.fromString("0001-01-01T00:00:00.000000+05:00").toDate().toISOString()).toBe("0000-12-31T19:00:00.000Z")
    const back = Argument.AmpDateTime.fromDate(new Date("2026-11-24T18:14:59.999Z"), 345)
    expect(back.toString()).toBe("2026-11-24T23:59:59.999000+05:45")
    expect(Argument.AmpDateTime.fromDate(new Date(Date.UTC(2020, 0, 1)), -570).toString()).toBe("2019-12-31T14:30:00.000000-09:30")
    expect(thrown(() => Argument.AmpDateTime.fromDate(new Date(NaN))).message).toContain("invalid Date")
    expect(thrown(() => Argument.AmpDateTime.fromDate(new Date(0), 1440)).message).toContain("offset")
  })

  it("says what is wrong with malformed input", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["2026-11-24", "expected 32 characters"],
      ["2026-11-24T23:59:59.999999+05:45 ", "got 33"],
      ["2026/11/24T23:59:59.999999+05:45", "expected \"-\" at offset 4"],
      ["2026-11-24 23:59:59.999999+05:45", "expected \"T\" at offset 10"],
      ["2026-11-24T23-59:59.999999+05:45", "expected \":\" at offset 13"],
      ["2026-11-24T23:59:59,999999+05:45", "expected \".\" at offset 19"],
      ["2026-11-24T23:59:59.999999*05:45", "sign"],
      ["2026-11-24T23:59:59.999999+0545X", "expected \":\" at offset 29"],
      ["2026-1x-24T23:59:59.999999+05:45", "month \"1x\""],
      ["2026-11-24T23:59:59.99999a+05:45", "microsecond"],
      ["+026-11-24T23:59:59.999999+05:45", "year"],
      ["2026-02-30T00:00:00.000000+00:00", "day 30"],
      ["2023-02-29T00:00:00.000000+00:00", "day 29"],
      ["2026-13-01T00:00:00.000000+00:00", "month 13"],
      ["0000-01-01T00:00:00.000000+00:00", "year 0"],
      ["2026-01-01T24:00:00.000000+00:00", "hour 24"],
      ["2026-01-01T00:60:00.000000+00:00", "minute 60"],
      ["2026-01-01T00:00:60.000000+00:00", "second 60"],
      ["2026-01-01T00:00:00.000000+00:60", "offset minutes 60"],
      ["2026-01-01T00:00:00.000000+24:00", "not strictly within a day"]
    ]
    for (const [s, why] of cases) {
      const e = thrown(() => Argument.DateTime.fromWire(latin1(s)))
      expect(e.typeName).toBe("DateTime")
      expect(e.message, s).toContain(why)
    }
    expect(thrown(() => Argument.DateTime.fromWire(bytes("2026-11-24T23:59:59.999999+05:4\u00e9"))).message).toContain("not ASCII")
    expect(thrown(() => Argument.DateTime.toWire("2026" as never)).message).toContain("expected an AmpDateTime")
    expect(thrown(() => dt(2026, 1, 1, 0, 0, 0, 1.5, 0)).message).toContain("microsecond 1.5 is not an integer")
    expect(thrown(() => dt(2026, 1, 1, 0, 0, 0, 1_000_000, 0)).message).toContain("microsecond")
    // The class constructor does not check: toWire does.
    const unchecked = new Argument.AmpDateTime({ year: 2026, month: 2, day: 30, hour: 0, minute: 0, second: 0, microsecond: 0, offsetMinutes: 0 })
    expect(thrown(() => Argument.DateTime.toWire(unchecked)).message).toContain("day 30")
  })
})

describe("Descriptor", () => {
  it("fails both ways, saying descriptor passing needs a transport that carries them", () => {
    for (const e of [thrown(() => Argument.Descriptor.toWire(3)), thrown(() => Argument.Descriptor.fromWire(bytes("0")))]) {
      expect(e.typeName).toBe("Descriptor")
      expect(e.message).toContain("file descriptors needs a transport")
    }
  })
})

describe("ListOf", () => {
  const ints = Argument.ListOf(Argument.Integer)

  it.prop("round-trips lists", [FastCheck.array(FastCheck.bigInt()), FastCheck.array(FastCheck.string({ unit: "binary" }))], ([a, b]) => {
    expect(ints.fromWire(ints.toWire(a))).toEqual(a)
    const texts = Argument.ListOf(Argument.Unicode)
    expect(texts.fromWire(texts.toWire(b))).toEqual(b)
  })

  it("writes each element behind a 2-byte big-endian length", () => {
    expect(ints.typeName).toBe("ListOf(Integer)")
    expect(ints.toWire([]).length).toBe(0)
    expect(ints.fromWire(new Uint8Array(0))).toEqual([])
    expect(hex(ints.toWire([1n, -2n]))).toBe("00013100022d32")
    expect(hex(Argument.ListOf(Argument.Unicode).toWire(["", "\u{1F600}"]))).toBe("00000004f09f9880")
    const element = new Uint8Array(65535).fill(7)
    const wire = Argument.ListOf(Argument.String).toWire([element])
    expect(hex(wire.subarray(0, 2))).toBe("ffff")
    expect(Argument.ListOf(Argument.String).fromWire(wire)[0]!.length).toBe(65535)
    const nested = Argument.ListOf(Argument.ListOf(Argument.Integer))
    expect(hex(nested.toWire([[1n], []]))).toBe("0003000131" + "0000")
    expect(nested.fromWire(nested.toWire([[1n, 2n], [], [3n]]))).toEqual([[1n, 2n], [], [3n]])
  })

  it("refuses oversized elements, truncation and bad elements", () => {
    expect(thrown(() => Argument.ListOf(Argument.String).toWire([new Uint8Array(1), new Uint8Array(65536)])).message).toBe(
      "ListOf(String): element 1 is 65536 bytes, the limit is 65535"
    )
    expect(thrown(() => ints.fromWire(new Uint8Array([0, 2, 0x31]))).message).toContain("announces 2 bytes, 1 remain")
    expect(thrown(() => ints.fromWire(new Uint8Array([0, 1, 0x31, 0]))).message).toContain("truncated element length at byte 3")
    expect(thrown(() => ints.fromWire(new Uint8Array([0, 1, 0x31, 0, 1, 0x78]))).message).toBe(
      "ListOf(Integer): element 1: Integer: not an integer: \"x\""
    )
    expect(thrown(() => ints.toWire([1n, 2 as never])).message).toContain("element 1: Integer: expected a bigint")
    expect(thrown(() => ints.toWire(1n as never)).message).toContain("expected an array")
  })
})

describe("AmpList", () => {
  const Point = Argument.AmpList({ x: Argument.Integer, "label-text": Argument.optional(Argument.Unicode) })
  const arbPoints = FastCheck.array(
    FastCheck.record({ x: FastCheck.bigInt(), label_text: FastCheck.string({ unit: "binary" }) }, { requiredKeys: ["x"] })
  )

  it.prop("round-trips records, optional fields present and absent", [arbPoints], ([points]) => {
    expect(Point.fromWire(Point.toWire(points))).toEqual(points)
  })

  it("writes each element as an AMP box, keys in byte order as Twisted sorts them", () => {
    expect(Point.toWire([]).length).toBe(0)
    expect(Point.fromWire(new Uint8Array(0))).toEqual([])
    expect(hex(Argument.AmpList({ x: Argument.Integer }).toWire([{ x: 1n }]))).toBe("0001" + "78" + "0001" + "31" + "0000")
    // Declared x then a: written a then x.
    expect(hex(Argument.AmpList({ x: Argument.Integer, a: Argument.Integer }).toWire([{ x: 1n, a: 2n }]))).toBe(
      "000161000132" + "000178000131" + "0000"
    )
    // The optional field absent: not written; all fields absent: an empty box.
    expect(hex(Point.toWire([{ x: 5n }]))).toBe("000178000135" + "0000")
    expect(hex(Argument.AmpList({ y: Argument.optional(Argument.Integer) }).toWire([{}, { y: 3n }]))).toBe("0000" + "000179000133" + "0000")
    expect(Argument.AmpList({ y: Argument.optional(Argument.Integer) }).fromWire(latin1("\x00\x00"))).toEqual([{}])
    // Dashes in wire names become underscores in field names.
    expect(wireText(Point.toWire([{ x: 1n, label_text: "hi" }]))).toBe("\x00\x0alabel-text\x00\x02hi\x00\x01x\x00\x011\x00\x00")
    expect(Point.fromWire(Point.toWire([{ x: 1n, label_text: "hi" }]))).toEqual([{ x: 1n, label_text: "hi" }])
    expect(Point.typeName).toBe("AmpList(x: Integer, label-text: Unicode?)")
  })

  it("nests AmpLists and ListOfs", () => {
    const Outer = Argument.AmpList({
      name: Argument.Unicode,
      inner: Argument.AmpList({ z: Argument.Integer, w: Argument.optional(Argument.AmpList({ q: Argument.Boolean })) }),
      tags: Argument.ListOf(Argument.Unicode)
    })
    const value = [
      { name: "a", inner: [{ z: 2n, w: [{ q: true }, { q: false }] }, { z: 3n }], tags: ["t"] },
      { name: "\u{1F40D}", inner: [], tags: [] }
    ]
    expect(Outer.fromWire(Outer.toWire(value))).toEqual(value)
    const nested = Argument.AmpList({ a: Argument.Integer, inner: Argument.AmpList({ z: Argument.Integer }) })
    expect(hex(nested.toWire([{ a: 5n, inner: [{ z: 2n }] }]))).toBe(
      "000161000135" + "0005" + Buffer.from("inner").toString("hex") + "0008" + "00017a000132" + "0000" + "0000"
    )
  })

  it("ignores keys it does not declare on reading, as Twisted does", () => {
    const box = AmpBox.make({ x: "1", extra: "whatever" })
    const wire = Argument.AmpList({ x: Argument.Integer, extra: Argument.String }).toWire([{ x: 1n, extra: box.get("extra")! }])
    expect(Argument.AmpList({ x: Argument.Integer }).fromWire(wire)).toEqual([{ x: 1n }])
  })

  it("carries multi-key values inside elements", () => {
    const Blobs = Argument.AmpList({ b: Argument.BigString })
    // The element box splits the value over b and b.2...
    const value = [{ b: new Uint8Array(70000).fill(1) }]
    const wire = Blobs.toWire(value)
    expect(BoxCodec.parse(wire)[0]!.get("b.2")!.length).toBe(70000 - 65535)
    expect(Buffer.from(Blobs.fromWire(wire)[0]!.b).equals(Buffer.from(value[0]!.b))).toBe(true)
    // ...but the AmpList is itself one value: the box encoder refuses it past 65535 bytes.
    expect(() => BoxCodec.encodeBox(AmpBox.make({ list: wire }))).toThrow(/65535/)
    const small = [{ b: new Uint8Array(10).fill(2) }]
    expect(Blobs.fromWire(Blobs.toWire(small))).toEqual(small)
  })

  it("refuses missing, unknown and malformed fields and truncated boxes", () => {
    expect(thrown(() => Point.toWire([{ label_text: "x" } as never])).message).toContain("element 0: missing field \"x\"")
    expect(thrown(() => Point.toWire([{ x: 1n }, { x: 1n, w: 1 } as never])).message).toContain("element 1: unknown field \"w\"")
    expect(thrown(() => Point.toWire([{ x: 1 as never }])).message).toContain("element 0: field \"x\": Integer: expected a bigint")
    expect(thrown(() => Point.toWire([5 as never])).message).toContain("element 0 is not a record")
    expect(thrown(() => Point.toWire({} as never)).message).toContain("expected an array")
    expect(thrown(() => Point.fromWire(latin1("\x00\x01y\x00\x011\x00\x00"))).message).toContain("element 0: missing field \"x\"")
    expect(thrown(() => Point.fromWire(latin1("\x00\x01x\x00\x01z\x00\x00"))).message).toContain("element 0: field \"x\": Integer: not an integer")
    const truncated = thrown(() => Point.fromWire(latin1("\x00\x01x\x00\x011")))
    expect(truncated.typeName).toBe(Point.typeName)
    expect(truncated.message).toContain("stream ended")
  })
})

describe("optional", () => {
  const maybe = Argument.optional(Argument.Integer)

  it("reads an absent key as undefined and writes undefined as no key", () => {
    expect(maybe.optional).toBe(true)
    expect(Argument.Integer.optional).toBe(false)
    expect(maybe.typeName).toBe("Integer")
    expect(maybe.fromBox(AmpBox.empty, "n")).toBeUndefined()
    expect(maybe.fromBox(AmpBox.make({ n: "12" }), "n")).toBe(12n)
    const out = new Map<string, Uint8Array>()
    maybe.toBox(undefined, "n", out)
    expect(out.size).toBe(0)
    maybe.toBox(7n, "n", out)
    expect(wireText(out.get("n")!)).toBe("7")
    expect(thrown(() => maybe.toWire(undefined)).message).toContain("absent optional value")
    expect(thrown(() => maybe.fromBox(AmpBox.make({ n: "x" }), "n")).typeName).toBe("Integer")
  })

  it("keeps the type's own fromBox/toBox (multi-key types stay multi-key)", () => {
    const maybeBig = Argument.optional(Argument.BigString)
    expect(maybeBig.typeName).toBe("BigString")
    const out = new Map<string, Uint8Array>()
    maybeBig.toBox(new Uint8Array(70000).fill(3), "b", out)
    expect([...out.keys()]).toEqual(["b", "b.2"])
    expect(maybeBig.fromBox(AmpBox.unsafeFromMap(out), "b")!.length).toBe(70000)
    expect(maybeBig.fromBox(AmpBox.empty, "b")).toBeUndefined()
    expect(Argument.optional(Argument.Decimal).fromWire(bytes("1.50"))!.toString()).toBe("1.50")
  })
})

describe("BigString and BigUnicode", () => {
  const boxOf = (m: Map<string, Uint8Array>) => AmpBox.unsafeFromMap(m)

  it("splits a 200 KiB value into key, key.2, ... of at most 65535 bytes, and reassembles it", () => {
    const value = new Uint8Array(200 * 1024).map((_, i) => i % 251)
    const out = new Map<string, Uint8Array>()
    Argument.BigString.toBox(value, "blob", out)
    expect([...out.keys()]).toEqual(["blob", "blob.2", "blob.3", "blob.4"])
    expect([...out.values()].map((v) => v.length)).toEqual([65535, 65535, 65535, 200 * 1024 - 3 * 65535])
    expect(Buffer.from(Argument.BigString.fromBox(boxOf(out), "blob")!).equals(Buffer.from(value))).toBe(true)
  })

  it("uses one key up to 65535 bytes, and splits exactly at the boundary", () => {
    for (const [size, keys] of [[0, 1], [1, 1], [65535, 1], [65536, 2], [131070, 2], [131071, 3]] as const) {
      const out = new Map<string, Uint8Array>()
      Argument.BigString.toBox(new Uint8Array(size).fill(9), "k", out)
      expect(out.size, `${size}`).toBe(keys)
      expect(Argument.BigString.fromBox(boxOf(out), "k")!.length).toBe(size)
    }
    expect(Argument.BigString.fromBox(AmpBox.empty, "k")).toBeUndefined()
  })

  it("joins pieces before decoding UTF-8, so a split character survives", () => {
    const text = "\u00e9".repeat(40000) + "\u{1F40D}".repeat(20000)
    const out = new Map<string, Uint8Array>()
    Argument.BigUnicode.toBox(text, "t", out)
    expect(out.size).toBe(3)
    expect(Argument.BigUnicode.fromBox(boxOf(out), "t")).toBe(text)
    const small = new Map<string, Uint8Array>()
    Argument.BigUnicode.toBox("short", "t", small)
    expect([...small.keys()]).toEqual(["t"])
  })

  it("reports invalid text and values", () => {
    const out = new Map<string, Uint8Array>([["t", new Uint8Array(65535).fill(0x41)], ["t.2", new Uint8Array([0xff])]])
    expect(thrown(() => Argument.BigUnicode.fromBox(boxOf(out), "t")).message).toBe("BigUnicode: Unicode: not valid UTF-8")
    expect(thrown(() => Argument.BigUnicode.toBox("\ud800", "t", new Map())).message).toContain("BigUnicode: Unicode: unpaired surrogate")
  })
})

describe("wire names", () => {
  it("wireNameToField turns dashes into underscores", () => {
    expect(Argument.wireNameToField("foo-bar-baz")).toBe("foo_bar_baz")
    expect(Argument.wireNameToField("plain")).toBe("plain")
    expect(Argument.wireNameToField("from")).toBe("from")
  })

  it("wireNameToPythonIdentifier is Twisted's, keywords capitalized", () => {
    expect(Argument.wireNameToPythonIdentifier("foo-bar")).toBe("foo_bar")
    expect(Argument.wireNameToPythonIdentifier("from")).toBe("From")
    expect(Argument.wireNameToPythonIdentifier("print")).toBe("Print")
    expect(Argument.wireNameToPythonIdentifier("None")).toBe("None")
  })
})

describe("make and schema", () => {
  it("make defines a type, with default single-key fromBox/toBox", () => {
    const Upper = Argument.make<string>({
      typeName: "Upper",
      fromWire: (b) => new TextDecoder().decode(b).toUpperCase(),
      toWire: (s) => bytes(s.toLowerCase())
    })
    expect(Argument.isArgument(Upper)).toBe(true)
    expect(Argument.isArgument({})).toBe(false)
    expect(Upper.fromBox(AmpBox.make({ k: "abc" }), "k")).toBe("ABC")
    const out = new Map<string, Uint8Array>()
    Upper.toBox("XY", "k", out)
    expect(wireText(out.get("k")!)).toBe("xy")
  })

  it.effect("each type is also a Schema between wire bytes and the value (effect-amp/schema)", () =>
    Effect.gen(function*() {
      expect(yield* Schema.decode(ArgumentSchema.schema(Argument.Integer))(bytes("42"))).toBe(42n)
      expect(wireText(yield* Schema.encode(ArgumentSchema.schema(Argument.Float))(-0))).toBe("-0.0")
      const list = Argument.ListOf(Argument.Decimal)
      const decoded = yield* Schema.decode(ArgumentSchema.schema(list))(list.toWire([Argument.AmpDecimal.fromString("1.10")]))
      expect(decoded[0]!.toString()).toBe("1.10")
      const error = yield* Effect.flip(Schema.decode(ArgumentSchema.schema(Argument.Boolean))(bytes("yes")))
      expect(error.message).toContain("True or False")
      const encodeError = yield* Effect.flip(Schema.encode(ArgumentSchema.schema(Argument.IntegerNumber))(2 ** 60))
      expect(encodeError.message).toContain("Integer")
      // The type side recognizes values, as the argument's own `is` does.
      expect(Schema.is(Schema.typeSchema(ArgumentSchema.schema(Argument.Integer)))(1n)).toBe(true)
      expect(Schema.is(Schema.typeSchema(ArgumentSchema.schema(Argument.Integer)))(1)).toBe(false)
      expect(Schema.is(Schema.typeSchema(ArgumentSchema.schema(Argument.optional(Argument.Unicode))))(undefined)).toBe(true)
      expect([Argument.Integer.is(1n), Argument.Integer.is(1), Argument.ListOf(Argument.Unicode).is(["a", 1])]).toEqual([true, false, false])
      // Composes: wire bytes of a number inside a struct.
      const Msg = Schema.Struct({ n: ArgumentSchema.schema(Argument.IntegerNumber) })
      expect(yield* Schema.decode(Msg)({ n: bytes("7") })).toEqual({ n: 7 })
    }))
})
