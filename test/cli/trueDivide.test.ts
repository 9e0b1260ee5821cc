/**
 * trueDivide against Python's own `int / int` (CPython's correctly rounded
 * true division), on seeded random vectors of every kind that goes wrong
 * with `Number(n) / Number(d)`: huge operands, quotients near overflow and
 * in the subnormal range, exact ties, and the edge of the exact fast path.
 * Python (/usr/bin/python3; no Twisted needed) answers all of them in one batch.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { OVERFLOW_MESSAGE, trueDivide } from "../../src/cli/trueDivide.js"
import { PYTHON } from "../support/twisted.js"

/** mulberry32: a small seeded generator, so that a failure names a vector that comes back. */
const generator = (seed: number) => {
  let s = seed >>> 0
  return (): number => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

const random = generator(0x5eed_0011)
const int = (n: number) => Math.floor(random() * n)
/** A random bigint of exactly `bits` bits (top bit set). */
const bits = (n: number): bigint => {
  if (n <= 0) return 0n
  let x = 1n
  for (let i = 1; i < n; i++) x = (x << 1n) | (random() < 0.5 ? 1n : 0n)
  return x
}
/** A random bigint of 1..`max` bits. */
const upTo = (max: number) => bits(1 + int(max))
const signed = (x: bigint) => (random() < 0.5 ? -x : x)
const nonZero = (x: bigint) => (x === 0n ? 1n : x)

type Vector = readonly [bigint, bigint]

const vectors: Array<Vector> = [
  [10n ** 400n, 10n ** 399n],
  [2n ** 1024n, 2n ** 1023n],
  [10n ** 400n, 1n],
  [2n ** 1024n - 2n ** 970n, 1n], // a tie between the largest float and 2^1024: rounds to even, which overflows
  [2n ** 1024n - 2n ** 970n - 1n, 1n],
  [1n, 2n ** 1075n], // half the smallest subnormal: ties to 0
  [1n, 2n ** 1075n - 1n],
  [3n, 2n ** 1076n],
  [0n, -5n],
  [-3n, 10n ** 400n],
  [2n ** 53n + 1n, 1n],
  [2n ** 53n + 1n, 3n],
  [1n, 2n ** 53n + 1n]
]
const add = (n: bigint, d: bigint) => vectors.push([n, nonZero(d)])

for (let i = 0; i < 400; i++) add(signed(upTo(24)), signed(upTo(24))) // small
for (let i = 0; i < 400; i++) { // around 2^53, where the fast path ends
  const near = () => 2n ** BigInt(52 + int(3)) + BigInt(int(2001) - 1000)
  add(signed(near()), signed(random() < 0.5 ? near() : upTo(60)))
}
for (let i = 0; i < 600; i++) add(signed(upTo(1500)), signed(upTo(1500))) // huge, any ratio
for (let i = 0; i < 200; i++) add(signed(10n ** BigInt(300 + int(120))), signed(10n ** BigInt(int(120)) + BigInt(int(1000)))) // like 10**400
for (let i = 0; i < 500; i++) { // quotients near 2^1024
  const d = upTo(300)
  const q = bits(1020 + int(6)) // 2^1019 .. 2^1025
  add(signed(d * q + (random() < 0.5 ? 0n : BigInt(int(1000)))), signed(d))
}
for (let i = 0; i < 100; i++) { // within half an ulp of 2^1024, on either side: the largest float, or an overflow
  const d = upTo(100)
  add(signed(d * (2n ** 1024n - bits(969 + int(3))) + BigInt(int(1000))), signed(d))
}
for (let i = 0; i < 500; i++) { // quotients in and below the subnormal range (2^-1022 .. 2^-1090)
  const n = upTo(200)
  add(signed(n), signed((n << BigInt(1010 + int(80))) + BigInt(int(3)) - 1n))
}
for (let i = 0; i < 600; i++) { // exact ties: a 54-bit odd mantissa times a power of two, scaled by a common factor
  const c = upTo(80)
  const shift = int(2200) - 1100 // quotient exponents from normal to subnormal and past overflow
  const odd = random() < 0.7 ? (bits(53) << 1n) | 1n : (bits(1 + int(20)) << 1n) | 1n
  const nudge = BigInt(int(3) - 1) // the tie, or one either side of it
  const n = shift >= 0 ? (odd << BigInt(shift)) * c + nudge : odd * c + nudge
  const d = shift >= 0 ? c : c << BigInt(-shift)
  add(signed(n), signed(d))
}
for (let i = 0; i < 300; i++) { // subnormal ties: (2k+1) * 2^-1075
  const k = upTo(52)
  const c = upTo(40)
  add(signed(((k << 1n) | 1n) * c + BigInt(int(3) - 1)), signed(c << 1075n))
}

/** Python's answer to each vector: repr of the float, or OverflowError with its message. */
const python = (vs: ReadonlyArray<Vector>): Array<string> => {
  const script = [
    "import sys",
    "for line in sys.stdin:",
    "    n, d = (int(x, 16) for x in line.split())",
    "    try: print(repr(n / d))",
    "    except OverflowError as e: print('OverflowError: ' + str(e))"
  ].join("\n")
  const r = spawnSync(PYTHON, ["-c", script], {
    input: vs.map(([n, d]) => `${n.toString(16)} ${d.toString(16)}\n`).join(""),
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024
  })
  if (r.status !== 0) throw new Error(`${PYTHON} failed (${r.error?.message ?? r.status}): ${r.stderr}`)
  return r.stdout.trimEnd().split("\n")
}

describe("trueDivide", () => {
  it(`agrees with Python's int / int on ${vectors.length} vectors, bit for bit`, () => {
    const expected = python(vectors)
    expect(expected).toHaveLength(vectors.length)
    const mismatches: Array<string> = []
    let overflows = 0
    let subnormals = 0
    vectors.forEach(([n, d], i) => {
      const want = expected[i]!
      const got = trueDivide(n, d)
      if (want.startsWith("OverflowError")) {
        overflows++
        expect(want).toBe(`OverflowError: ${OVERFLOW_MESSAGE}`)
        if (got !== "overflow") mismatches.push(`#${i} ${n} / ${d}: Python overflows, we give ${got}`)
        return
      }
      const value = Number(want)
      if (value !== 0 && Math.abs(value) < 2 ** -1022) subnormals++
      if (!Object.is(got, value)) mismatches.push(`#${i} ${n} / ${d}: Python ${want}, we give ${String(got)}`)
    })
    expect(mismatches.slice(0, 10)).toEqual([])
    // The generator must really reach the hard cases.
    expect(overflows).toBeGreaterThan(100)
    expect(subnormals).toBeGreaterThan(300)
  })

  it("the cases the demo got wrong: 10**400 / 10**399 is 10, 2**1024 / 2**1023 is 2; 10**400 / 1 overflows", () => {
    expect(trueDivide(10n ** 400n, 10n ** 399n)).toBe(10)
    expect(trueDivide(2n ** 1024n, 2n ** 1023n)).toBe(2)
    expect(trueDivide(-(2n ** 1024n), 2n ** 1023n)).toBe(-2)
    expect(trueDivide(10n ** 400n, 1n)).toBe("overflow")
    expect(trueDivide(-(10n ** 400n), 1n)).toBe("overflow")
    expect(Object.is(trueDivide(0n, -5n), -0)).toBe(true)
  })

  it("a zero denominator is a RangeError (callers answer it themselves)", () => {
    expect(() => trueDivide(1n, 0n)).toThrow(RangeError)
  })
})
