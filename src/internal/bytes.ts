/**
 * Byte helpers shared by the codec, the argument types and the transports.
 * Internal: not exported from the package.
 */

/** An empty byte string, shared. */
export const EMPTY_BYTES: Uint8Array = new Uint8Array(0)

/** Uninitialised memory where Node has it (every byte is written before use), zeroed elsewhere. */
export const allocUnsafe: (n: number) => Uint8Array = typeof globalThis.Buffer === "function"
  ? (n) => globalThis.Buffer.allocUnsafe(n)
  : (n) => new Uint8Array(n)

/** `parts` one after another; a single non-empty part is returned as it is, not copied. */
export const concatBytes = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  if (parts.length === 1) return parts[0]!
  let n = 0
  let last: Uint8Array | undefined
  let nonEmpty = 0
  for (const p of parts) {
    n += p.length
    if (p.length > 0) (last = p), nonEmpty++
  }
  if (nonEmpty === 0) return EMPTY_BYTES
  if (nonEmpty === 1) return last!
  const out = allocUnsafe(n)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}
