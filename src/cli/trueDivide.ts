/**
 * Python's true division of integers (`int / int`): the exact quotient,
 * rounded once to the nearest float64 (ties to even, subnormals included),
 * as CPython's `long_true_divide` does. `Number(n) / Number(d)` rounds the
 * operands first, and gives `NaN` for `10n ** 400n / 10n ** 399n`.
 *
 * @since 0.1.0
 */

/** Largest and smallest binary exponents of a float64 (normal numbers), and its precision in bits. */
const MAX_EXPONENT = 1023
const MIN_EXPONENT = -1022
const PRECISION = 53

/** Operands up to this size convert to floats exactly, and one IEEE division rounds correctly. */
const EXACT = 2n ** 53n

/** What Python raises when the quotient does not fit a float (`OverflowError`). */
export const OVERFLOW_MESSAGE = "integer division result too large for a float"

/** Bits in `x` (> 0): the `k` with `2^(k-1) <= x < 2^k`. */
const bitLength = (x: bigint): number => {
  const hex = x.toString(16)
  return (hex.length - 1) * 4 + 32 - Math.clz32(parseInt(hex[0]!, 16))
}

/**
 * `numerator / denominator` as Python computes it for two ints: the float
 * nearest the exact quotient (ties to even), with the sign of a zero
 * result taken from the operands (`0 / -5` is `-0`). Returns `"overflow"`
 * when the rounded quotient is too large for a float (Python raises
 * `OverflowError`, {@link OVERFLOW_MESSAGE}).
 *
 * Throws `RangeError` for a zero denominator, as bigint division does;
 * callers answer that case themselves.
 *
 * @since 0.1.0
 */
export const trueDivide = (numerator: bigint, denominator: bigint): number | "overflow" => {
  if (denominator === 0n) throw new RangeError("trueDivide: division by zero")
  const negative = (numerator < 0n) !== (denominator < 0n)
  const a = numerator < 0n ? -numerator : numerator
  const b = denominator < 0n ? -denominator : denominator
  if (a === 0n) return negative ? -0 : 0
  if (a <= EXACT && b <= EXACT) {
    const q = Number(a) / Number(b)
    return negative ? -q : q
  }
  // The quotient's binary exponent E: 2^E <= a/b < 2^(E+1).
  const e = bitLength(a) - bitLength(b)
  const exponent = (e >= 0 ? a >= b << BigInt(e) : a << BigInt(-e) >= b) ? e : e - 1
  if (exponent > MAX_EXPONENT) return "overflow"
  // The weight of the last bit kept: 53 bits below the leading one, never finer than the smallest subnormal.
  const ulp = Math.max(exponent, MIN_EXPONENT) - (PRECISION - 1)
  const num = ulp < 0 ? a << BigInt(-ulp) : a
  const den = ulp > 0 ? b << BigInt(ulp) : b
  let q = num / den
  const twice = (num - q * den) * 2n
  if (twice > den || (twice === den && (q & 1n) === 1n)) q += 1n
  // q <= 2^53 converts exactly, and 2^ulp (ulp >= -1074) is a float, so the product is exact;
  // only a quotient rounded up to 2^1024 makes Infinity, an overflow too.
  const result = Number(q) * 2 ** ulp
  if (result === Infinity) return "overflow"
  return negative ? -result : result
}
