/**
 * Records to box fields and back, by a list of declared fields: the one rule
 * for a command's arguments and answers and for an `AmpList`'s elements.
 *
 * Writing: a field whose value is `undefined` is absent (so `{ x: undefined }`
 * is `{}`), an absent required field and a defined field nobody declared are
 * refused. Reading: keys nobody declared are ignored, as in Twisted.
 *
 * Internal (not exported by the package), as everything under `src/internal/`.
 */
import type { AmpBox } from "../AmpBox.js"
import type { Argument, Fields } from "../Argument.js"
import type { BoxFields } from "../BoxBuilder.js"
import { describe, quote } from "./messages.js"

/** A declared field: its wire name, its field name, its type. */
export interface Field {
  readonly wire: string
  readonly field: string
  readonly argument: Argument<unknown>
}

/** `foo-bar` to `foo_bar`, as Twisted's `_wireNameToPythonIdentifier` does (without its keyword rule). */
export const fieldName = (wireName: string): string =>
  wireName.indexOf("-") >= 0 ? wireName.replace(/-/g, "_") : wireName

/** The declared fields of a spec by wire name, in declaration order. */
export const fieldsOf = (spec: Fields): Array<Field> =>
  Object.entries(spec).map(([wire, argument]) => ({ wire, field: fieldName(wire), argument: argument as Argument<unknown> }))

/** Writes `values` into `out` per `spec`; `onError` builds the error to throw. */
export const writeFields = (
  spec: ReadonlyArray<Field>,
  known: ReadonlySet<string>,
  values: Readonly<Record<string, unknown>>,
  out: BoxFields,
  onError: (detail: string) => Error
): void => {
  for (const k in values) {
    if (!known.has(k) && values[k] !== undefined) throw onError(`unknown field ${quote(k)}`)
  }
  for (const f of spec) {
    const v = values[f.field]
    if (v === undefined) {
      if (f.argument.optional) continue
      throw onError(`missing field ${quote(f.field)}`)
    }
    try {
      f.argument.toBox(v, f.wire, out)
    } catch (e) {
      throw onError(`field ${quote(f.field)}: ${describe(e)}`)
    }
  }
}

/** Reads `spec`'s fields from `box`; `onError` builds the error to throw. */
export const readFields = (
  spec: ReadonlyArray<Field>,
  box: AmpBox,
  onError: (detail: string) => Error
): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const f of spec) {
    let v: unknown
    try {
      v = f.argument.fromBox(box, f.wire)
    } catch (e) {
      throw onError(`field ${quote(f.wire)}: ${describe(e)}`)
    }
    if (v === undefined) {
      if (!f.argument.optional) throw onError(`missing field ${quote(f.wire)}`)
      continue
    }
    out[f.field] = v
  }
  return out
}
