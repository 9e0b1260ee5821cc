/**
 * Wording helpers for error messages, so that every module quotes keys and
 * values, and names a caught error, the same way.
 *
 * Internal (not exported by the package), as everything under `src/internal/`.
 */

/** A caught error as text: its message, or the value itself. */
export const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/** A string for a message: quoted, and cut short (with `...`) when over 64 characters. */
export const quote = (s: string): string => JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}...` : s)

/** A key (or code) for a message: quoted, its first 40 characters only. */
export const quoteKey = (key: string): string => JSON.stringify(key.slice(0, 40))
