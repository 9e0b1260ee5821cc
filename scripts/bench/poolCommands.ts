/**
 * The commands of the pool benchmark (pool.ts), as both kinds of worker
 * answer them: pool-worker.ts (effect-amp) and pool_worker.py (Twisted).
 *
 *   Sum(a: Integer, b: Integer) -> total: Integer
 *   Burn(n: Integer) -> result: Integer      n rounds of a 32-bit LCG step and an xorshift
 */
import * as Argument from "../../src/Argument.js"
import * as Demo from "../../src/cli/Demo.js"
import * as Command from "../../src/Command.js"

export const Sum = Demo.Sum

export const Burn = Command.make("Burn", {
  arguments: { n: Argument.Integer },
  response: { result: Argument.Integer }
})

/**
 * The CPU-bound work of `Burn`: the same integer steps as pool_worker.py's
 * `burn` (which checks against the same value), seeded with `n`.
 */
export const burn = (n: number): number => {
  let x = n >>> 0
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    x = (x ^ (x >>> 13)) >>> 0
  }
  return x
}

/** Rounds per Burn call: 1.5 to 2.5 ms in CPython 3.11 on the bench machine, about 25 µs on Node (same n for both). */
export const BURN_N = 5000
