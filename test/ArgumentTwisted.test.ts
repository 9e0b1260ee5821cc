/**
 * Argument types against a live Twisted, both ways: the vectors and the
 * answers come from Twisted's own `amp.Integer().toString(...)` and
 * `fromString(...)` at test time (test/support/argument_vectors.py), never
 * from a file we wrote. For every value: our decode of Twisted's bytes is the
 * value, our encode is Twisted's bytes, and Twisted decodes our bytes to the
 * value. Random values go through the same three checks, and odd wire input
 * must be accepted or refused as Twisted does (deliberate differences are
 * pinned down in a test of their own).
 *
 * Needs /usr/bin/python3 with Twisted (AMP_PYTHON overrides the
 * interpreter). Without it every test fails with the line that installs it.
 */
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Argument from "../src/Argument.js"

const PYTHON = process.env.AMP_PYTHON ?? "/usr/bin/python3"
const INSTALL_LINE = "apt-get update && apt-get install -y python3-twisted"
const SCRIPT = path.join(import.meta.dirname, "support", "argument_vectors.py")

let twistedVersion: string | undefined

/** Twisted's version; throws, with the install line, when the interpreter cannot import it. */
const requireTwisted = (): string => {
  if (twistedVersion !== undefined) return twistedVersion
  const r = spawnSync(PYTHON, ["-c", "import twisted; print(twisted.__version__)"], { encoding: "utf8" })
  if (r.status !== 0) {
    const why = r.error ? r.error.message : (r.stderr ?? "").trim().split("\n").pop() || `exit status ${r.status}`
    throw new Error(
      `These tests compare our argument types with a live Twisted, and ${PYTHON} cannot import twisted (${why}).\n` +
        `Install it with: ${INSTALL_LINE}`
    )
  }
  twistedVersion = r.stdout.trim()
  return twistedVersion
}

/** Runs argument_vectors.py in `mode` with `input` as JSON on stdin; its JSON answer. */
const twisted = <T>(mode: "vectors" | "decode" | "encode", input?: unknown): T => {
  requireTwisted()
  const r = spawnSync(PYTHON, [SCRIPT, mode], {
    encoding: "utf8",
    input: input === undefined ? "" : JSON.stringify(input),
    maxBuffer: 512 * 1024 * 1024
  })
  if (r.status !== 0) throw new Error(`argument_vectors.py ${mode} failed (${r.status}): ${r.error?.message ?? r.stderr}`)
  return JSON.parse(r.stdout) as T
}

type Answer = { readonly ok: true; readonly value: unknown; readonly repr: string } | { readonly ok: false; readonly error: string }
type Encoded = { readonly ok: true; readonly wire_b64: string } | { readonly ok: false; readonly error: string }
interface Vector {
  readonly type: string
  readonly repr: string
  readonly value: unknown
  readonly wire_b64: string
}

const b64 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.length).toString("base64")
const fromB64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"))
const latin1 = (s: string) => new Uint8Array(Buffer.from(s, "latin1"))

// ---------------------------------------------------------------------------
// Our types, by the names the Python script uses, with the shared JSON spelling
// ---------------------------------------------------------------------------

interface Kind {
  readonly arg: Argument.Argument<any>
  /** Our value to the JSON spelling (see argument_vectors.py). */
  readonly spell: (value: any) => unknown
  /** The JSON spelling to our value, built without our parsers. */
  readonly unspell: (spelled: any) => any
}

const floatHex = (n: number): string => {
  const view = new DataView(new ArrayBuffer(8))
  view.setFloat64(0, n)
  return Buffer.from(view.buffer).toString("hex")
}
const hexFloat = (h: string): number => new DataView(new Uint8Array(Buffer.from(h, "hex")).buffer).getFloat64(0)

const identity = (x: unknown) => x

const SCALARS: { readonly [name: string]: Kind } = {
  Integer: { arg: Argument.Integer, spell: (n: bigint) => n.toString(), unspell: (s: string) => BigInt(s) },
  Float: { arg: Argument.Float, spell: floatHex, unspell: hexFloat },
  Boolean: { arg: Argument.Boolean, spell: identity, unspell: identity },
  String: { arg: Argument.String, spell: b64, unspell: fromB64 },
  Unicode: { arg: Argument.Unicode, spell: identity, unspell: identity },
  Path: { arg: Argument.Path, spell: identity, unspell: identity },
  Decimal: {
    arg: Argument.Decimal,
    spell: (d: Argument.AmpDecimal) => ({
      sign: d.negative ? 1 : 0,
      digits: d.special === "Infinity" ? "0" : d.coefficient,
      exponent: d.special === "Infinity" ? "F" : d.special === "NaN" ? "n" : d.special === "sNaN" ? "N" : String(d.exponent)
    }),
    unspell: ({ digits, exponent, sign }: { sign: number; digits: string; exponent: string }) => {
      const negative = sign === 1
      if (exponent === "F") return new Argument.AmpDecimal({ negative, coefficient: "", exponent: 0, special: "Infinity" })
      if (exponent === "n" || exponent === "N") {
        return new Argument.AmpDecimal({ negative, coefficient: digits, exponent: 0, special: exponent === "n" ? "NaN" : "sNaN" })
      }
      return new Argument.AmpDecimal({ negative, coefficient: digits, exponent: Number(exponent) })
    }
  },
  DateTime: {
    arg: Argument.DateTime,
    spell: (d: Argument.AmpDateTime) => [d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, d.offsetMinutes],
    unspell: ([year, month, day, hour, minute, second, microsecond, offsetMinutes]: Array<number>) =>
      Argument.AmpDateTime.make({ year: year!, month: month!, day: day!, hour: hour!, minute: minute!, second: second!, microsecond: microsecond!, offsetMinutes: offsetMinutes! })
  }
}

const listOf = (element: Kind): Kind => ({
  arg: Argument.ListOf(element.arg),
  spell: (values: ReadonlyArray<unknown>) => values.map(element.spell),
  unspell: (spelled: ReadonlyArray<unknown>) => spelled.map(element.unspell)
})

const ampList = (fields: { readonly [wire: string]: readonly [Kind, "optional"?] }): Kind => {
  const entries = Object.entries(fields).map(([wire, [kind, opt]]) => ({ field: Argument.wireNameToField(wire), wire, kind, opt }))
  const mapRecords = (f: (kind: Kind, v: unknown) => unknown) => (records: ReadonlyArray<{ readonly [k: string]: unknown }>) =>
    records.map((r) => {
      const out: { [k: string]: unknown } = {}
      for (const e of entries) if (r[e.field] !== undefined && r[e.field] !== null) out[e.field] = f(e.kind, r[e.field])
      return out
    })
  return {
    arg: Argument.AmpList(
      Object.fromEntries(entries.map((e) => [e.wire, e.opt ? Argument.optional(e.kind.arg) : e.kind.arg]))
    ),
    spell: mapRecords((k, v) => k.spell(v)),
    unspell: mapRecords((k, v) => k.unspell(v))
  }
}

// The shapes argument_vectors.py declares as POINT and NESTED.
const POINT = ampList({ x: [SCALARS.Integer!], "label-text": [SCALARS.Unicode!, "optional"], f: [SCALARS.Float!] })
const NESTED = ampList({ name: [SCALARS.Unicode!], points: [POINT], tags: [listOf(SCALARS.Unicode!)] })

const kindOf = (name: string): Kind => {
  if (name in SCALARS) return SCALARS[name]!
  if (name === "AmpList:point") return POINT
  if (name === "AmpList:nested") return NESTED
  const m = /^ListOf\((.*)\)$/.exec(name)
  if (m !== null) return listOf(kindOf(m[1]!))
  throw new Error(`no kind ${name}`)
}

/** Our decode of `wire` as `type`, as Twisted's answers look. */
const ourDecode = (type: string, wire: Uint8Array): { ok: true; value: unknown } | { ok: false; error: string } => {
  try {
    return { ok: true, value: kindOf(type).arg.fromWire(wire) }
  } catch (e) {
    if (!(e instanceof Argument.ArgumentError)) throw e
    return { ok: false, error: e.message }
  }
}

let vectorsMemo: ReadonlyArray<Vector> | undefined
const vectors = (): ReadonlyArray<Vector> => (vectorsMemo ??= twisted<Array<Vector>>("vectors"))

const label = (v: { readonly type: string; readonly repr?: string }, extra = "") =>
  `${v.type} ${(v.repr ?? "").slice(0, 120)}${extra}`

// ---------------------------------------------------------------------------

describe("Argument types against a live Twisted", () => {
  it("Twisted is installed for /usr/bin/python3", () => {
    expect(requireTwisted()).toMatch(/^\d+\.\d+/)
    // Every type the script covers has vectors.
    const types = new Set(vectors().map((v) => v.type))
    for (const t of ["Integer", "Float", "Boolean", "String", "Unicode", "Path", "Decimal", "DateTime", "ListOf(Integer)", "AmpList:nested"]) {
      expect(types.has(t), t).toBe(true)
    }
  })

  it("we decode Twisted's bytes to the value Twisted encoded", () => {
    for (const v of vectors()) {
      const kind = kindOf(v.type)
      expect(kind.arg.fromWire(fromB64(v.wire_b64)), label(v)).toEqual(kind.unspell(v.value))
    }
  })

  it("we encode each value to exactly Twisted's bytes", () => {
    for (const v of vectors()) {
      const kind = kindOf(v.type)
      expect(b64(kind.arg.toWire(kind.unspell(v.value))), label(v)).toBe(v.wire_b64)
    }
  })

  it("Twisted decodes our bytes to the value", () => {
    const vs = vectors()
    const requests = vs.map((v) => {
      const kind = kindOf(v.type)
      return { type: v.type, wire_b64: b64(kind.arg.toWire(kind.unspell(v.value))) }
    })
    const answers = twisted<Array<Answer>>("decode", requests)
    vs.forEach((v, i) => {
      const a = answers[i]!
      expect(a, label(v)).toMatchObject({ ok: true })
      if (a.ok) expect(kindOf(v.type).unspell(a.value), label(v)).toEqual(kindOf(v.type).unspell(v.value))
    })
  })

  describe("random values, both ways", () => {
    const seed = Date.now() | 0
    const runs = { seed, numRuns: 300 }
    const daysIn = (y: number, m: number) => new Date(Date.UTC(y, m, 0)).getUTCDate()
    const arbitraries: ReadonlyArray<readonly [string, FastCheck.Arbitrary<unknown>]> = [
      ["Integer", FastCheck.oneof(FastCheck.bigInt(), FastCheck.bigInt({ min: -(10n ** 300n), max: 10n ** 300n }))],
      ["Float", FastCheck.oneof(FastCheck.double(), FastCheck.double({ min: -1e20, max: 1e20 }), FastCheck.integer().map((n) => n / 1000))],
      ["Boolean", FastCheck.boolean()],
      ["String", FastCheck.uint8Array({ maxLength: 64 })],
      ["Unicode", FastCheck.string({ unit: "binary", maxLength: 40 })],
      // Twisted's FilePath makes every path absolute and normalized: generate those.
      [
        "Path",
        FastCheck.array(
          FastCheck.string({ unit: "binary", minLength: 1, maxLength: 8 }).filter((s) => !s.includes("/") && s !== "." && s !== ".."),
          { maxLength: 5 }
        ).map((parts) => "/" + parts.join("/"))
      ],
      [
        "Decimal",
        FastCheck.oneof(
          FastCheck.record({
            negative: FastCheck.boolean(),
            coefficient: FastCheck.bigInt({ min: 0n, max: 10n ** 40n }).map(String),
            exponent: FastCheck.oneof(FastCheck.integer({ min: -40, max: 40 }), FastCheck.integer({ min: -1_000_000, max: 1_000_000 }))
          }).map((f) => new Argument.AmpDecimal(f)),
          FastCheck.record({
            negative: FastCheck.boolean(),
            special: FastCheck.constantFrom("Infinity" as const, "NaN" as const, "sNaN" as const),
            payload: FastCheck.constantFrom("", "1", "42", "1234567890")
          }).map(({ negative, payload, special }) =>
            new Argument.AmpDecimal({ negative, special, exponent: 0, coefficient: special === "Infinity" ? "" : payload })
          )
        )
      ],
      [
        "DateTime",
        FastCheck.record({
          year: FastCheck.integer({ min: 1, max: 9999 }),
          month: FastCheck.integer({ min: 1, max: 12 }),
          day: FastCheck.integer({ min: 1, max: 31 }),
          hour: FastCheck.integer({ min: 0, max: 23 }),
          minute: FastCheck.integer({ min: 0, max: 59 }),
          second: FastCheck.integer({ min: 0, max: 59 }),
          microsecond: FastCheck.integer({ min: 0, max: 999_999 }),
          offsetMinutes: FastCheck.integer({ min: -1439, max: 1439 })
        }).map((f) => {
          const d = new Date(0)
          d.setUTCFullYear(f.year, f.month, 0)
          return Argument.AmpDateTime.make({ ...f, day: Math.min(f.day, d.getUTCDate() || daysIn(f.year, f.month)) })
        })
      ],
      ["ListOf(Float)", FastCheck.array(FastCheck.double(), { maxLength: 8 })],
      ["ListOf(Unicode)", FastCheck.array(FastCheck.string({ unit: "binary", maxLength: 10 }), { maxLength: 8 })],
      [
        "AmpList:point",
        FastCheck.array(
          FastCheck.record(
            { x: FastCheck.bigInt(), label_text: FastCheck.string({ unit: "binary", maxLength: 10 }), f: FastCheck.double() },
            { requiredKeys: ["x", "f"] }
          ),
          { maxLength: 5 }
        )
      ]
    ]

    for (const [type, arb] of arbitraries) {
      it(`${type}: same bytes as Twisted, and each side reads the other's`, () => {
        const kind = kindOf(type)
        const values = FastCheck.sample(arb, runs)
        const ours = values.map((v) => kind.arg.toWire(v))
        const theirs = twisted<Array<Encoded>>("encode", values.map((v) => ({ type, value: kind.spell(v) })))
        const decoded = twisted<Array<Answer>>("decode", ours.map((w) => ({ type, wire_b64: b64(w) })))
        values.forEach((v, i) => {
          const what = `${type} #${i} (seed ${seed}): ${JSON.stringify(kind.spell(v)).slice(0, 200)}`
          const t = theirs[i]!
          expect(t, what).toMatchObject({ ok: true })
          if (!t.ok) return
          expect(b64(ours[i]!), what).toBe(t.wire_b64)
          expect(kind.arg.fromWire(fromB64(t.wire_b64)), what).toEqual(v)
          const d = decoded[i]!
          expect(d, what).toMatchObject({ ok: true })
          if (d.ok) expect(kind.unspell(d.value), what).toEqual(v)
        })
      })
    }
  })

  it("odd wire input is accepted or refused as Twisted does", () => {
    const bytesOf = (xs: ReadonlyArray<number>) => new Uint8Array(xs)
    const cases: ReadonlyArray<readonly [string, Uint8Array]> = [
      ...[" +1_000 ", "\t-5\n", "\v7\f", "007", "0_7", "-0", "+0", "", " ", "-", "+-1", "1.5", "1e3", "0x10", "1__0", "_1", "1_", "1 2",
        "\x001", "1\x00", "\x1c1", "\x851", "\xa01", "123456789012345678901234567890"]
        .map((s) => ["Integer", latin1(s)] as const),
      ...["inf", "Infinity", "iNF", "+inf", "-Infinity", "nan", "-nan", "+nAn", " -1E5 ", "1.", ".5", "1_0.5", ".5_5", "1e5_0",
        "1e+0_5", "1E-05", "1.5\v", "1e400", "-1e400", "1e-400", "-0", "", " ", ".", "1e", "e5", "x", "--1", "1.2.3", "1._5",
        "_5", "1_.5", "1.5_", "1_e5", "1e_5", "0x10", "infinit", "nan(1)", "\x1c1.5", "1,5", "\xa01.5", "4.9e-324", "2.4703282292062327e-324",
        "2.4703282292062328e-324", "1.7976931348623158e308", "1.7976931348623159e308", "0.1000000000000000055511151231257827"]
        .map((s) => ["Float", latin1(s)] as const),
      ...["True", "False", "true", "TRUE", "1", "", "True ", " False"].map((s) => ["Boolean", latin1(s)] as const),
      ...[" 7.50\x1c", "\t1\n", "_+1", "1__0", "in_f", "s_nan", "NaN0123", "-sNaN07", "nan0", "1.e5", ".e5", "1 _", "1E+999999999", "",
        " ", ".", "e", "1e", "1e+", "+", "-", "0x1", "Infinity1", "NaN-1", "1e1_0", "-0.00", "0E-7", "1.2.3", "inf", "-INFINITY", "\xa01"]
        .map((s) => ["Decimal", latin1(s)] as const),
      ...[[0xef, 0xbb, 0xbf, 0x41], [0xff], [0xc0, 0x80], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf], [0xed, 0x9f, 0xbf],
        [0xee, 0x80, 0x80], [0xf4, 0x8f, 0xbf, 0xbf], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82], [0x80],
        [0x41, 0xc3], [0xf0, 0x9f, 0x90, 0x8d], [0x00], [0xc2, 0xa0]]
        // As an absolute path too: Twisted's FilePath would make a relative one absolute.
        .flatMap((b) => [["Unicode", bytesOf(b)] as const, ["Path", bytesOf([0x2f, ...b])] as const]),
      ...["2026-11-24T23:59:59.999999+05:45", "2026-11-24T23:59:59.999999-00:00", "2026-11-24T23:59:59.999999+00:00",
        "0001-01-01T00:00:00.000000+23:59", "2026-02-30T00:00:00.000000+00:00", "2023-02-29T00:00:00.000000+00:00",
        "2024-02-29T00:00:00.000000+00:00", "2026-13-01T00:00:00.000000+00:00", "0000-01-01T00:00:00.000000+00:00",
        "2026-01-01T24:00:00.000000+00:00", "2026-01-01T00:60:00.000000+00:00", "2026-01-01T00:00:60.000000+00:00",
        "2026-01-01T00:00:00.000000+24:00", "2026-01-01T00:00:00.000000*01:00", "2026-11-24", "2026-11-24T23:59:59.999999+05:45 ",
        "2026-1x-24T23:59:59.999999+05:45", "2026-11-24T23:59:59.99999a+05:45"]
        .map((s) => ["DateTime", latin1(s)] as const),
      ...[[], [0, 1, 0x31], [0, 0], [0, 1, 0x78], [0, 2, 0x31, 0x32, 0, 1, 0x2d]].map((b) => ["ListOf(Integer)", bytesOf(b)] as const)
    ]
    const answers = twisted<Array<Answer>>("decode", cases.map(([type, wire]) => ({ type, wire_b64: b64(wire) })))
    cases.forEach(([type, wire], i) => {
      const t = answers[i]!
      const o = ourDecode(type, wire)
      const what = `${type} ${JSON.stringify(Buffer.from(wire).toString("latin1"))}: Twisted ${t.ok ? `reads ${t.repr}` : `refuses (${t.error})`}, we ${
        o.ok ? "read it" : `refuse (${o.error})`
      }`
      expect(o.ok, what).toBe(t.ok)
      if (t.ok && o.ok) expect(o.value, what).toEqual(kindOf(type).unspell(t.value))
    })
  })

  it("deliberate differences from Twisted stay as documented", () => {
    const point = POINT.arg.toWire([{ x: 1n, f: 0.5 }])
    const cases: ReadonlyArray<readonly [string, Uint8Array, "only Twisted reads it" | "only we read it"]> = [
      // Twisted drops a truncated last element (or box) silently; we refuse it.
      ["ListOf(Integer)", new Uint8Array([0, 2, 0x31]), "only Twisted reads it"],
      ["ListOf(Integer)", new Uint8Array([0, 1, 0x31, 0]), "only Twisted reads it"],
      ["AmpList:point", point.subarray(0, point.length - 2), "only Twisted reads it"],
      // Twisted checks a datetime's length and reads each field with int(); we want the form it writes.
      ["DateTime", latin1("2026/11/24 23:59:59.999999+05:45"), "only Twisted reads it"],
      ["DateTime", latin1("2026- 1-24T23:59:59.999999+05:45"), "only Twisted reads it"],
      ["DateTime", latin1("2026-11-24T23:59:59.999999+00:60"), "only Twisted reads it"],
      // Decimal exponents past 2^53 (Python goes to 10^18).
      ["Decimal", latin1("1E+999999999999999999"), "only Twisted reads it"],
      // CPython refuses to convert integers of more than 4300 digits.
      ["Integer", latin1("9".repeat(5000)), "only we read it"]
    ]
    const answers = twisted<Array<Answer>>("decode", cases.map(([type, wire]) => ({ type, wire_b64: b64(wire) })))
    cases.forEach(([type, wire, which], i) => {
      const what = `${type} ${Buffer.from(wire).toString("latin1").slice(0, 40)}`
      expect(answers[i]!.ok, what).toBe(which === "only Twisted reads it")
      expect(ourDecode(type, wire).ok, what).toBe(which === "only we read it")
    })
    // A relative Path: Twisted resolves it against its own working directory; we keep the text.
    const [relative] = twisted<Array<Answer>>("decode", [{ type: "Path", wire_b64: b64(latin1("a/../b")) }])
    expect(relative).toMatchObject({ ok: true })
    if (relative!.ok) expect(relative!.value).toBe(path.resolve(process.cwd(), "b"))
    expect(Argument.Path.fromWire(latin1("a/../b"))).toBe("a/../b")
  })
})
