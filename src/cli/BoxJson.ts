/**
 * Boxes as JSON for people reading them, and back: the shape `decode` prints
 * and `encode` reads.
 *
 * - A value is its UTF-8 text when the bytes are valid UTF-8, otherwise
 *   `{"base64": "…"}`.
 * - A key is its UTF-8 text; a key that is not UTF-8, or whose text itself
 *   begins with `base64:`, is `"base64:…"` (so that reading it back is never
 *   ambiguous).
 * - Members are printed in box order (`JSON.stringify` of an object would put
 *   keys such as `"2"` first).
 *
 * So `encode` of what `decode` printed gives back the same bytes, for every
 * box without a repeated key (a repeated key decodes as Twisted does: the
 * first position, the last value).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import { type AmpBox, byteStringToBytes, bytesToByteString, decodeUtf8, fromEntries, keyToUtf8, utf8 } from "../AmpBox.js"
import { quoteKey } from "../internal/messages.js"
import * as Json from "./Json.js"

/** AMP's limits: keys 1..255 bytes, values 0..65535 bytes. */
export const MAX_KEY_BYTES = 255
export const MAX_VALUE_BYTES = 65535

/** Input the command cannot turn into AMP: says what and where (`line 3, key "a"`). */
export class InputError extends Data.TaggedError("InputError")<{ readonly where: string; readonly detail: string }> {
  override get message(): string {
    return this.where === "" ? this.detail : `${this.where}: ${this.detail}`
  }
}

export const base64 = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** Strict base64 (Buffer.from skips characters it does not know, which would hide a typo). */
export const fromBase64 = (text: string, where: string): Uint8Array => {
  if (!BASE64.test(text)) throw new InputError({ where, detail: `${quoteKey(text)} is not base64` })
  return new Uint8Array(Buffer.from(text, "base64"))
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** UTF-8 of `text`, refusing lone surrogates (which TextEncoder would silently turn into U+FFFD). */
export const utf8Strict = (text: string, where: string): Uint8Array => {
  const m = LONE_SURROGATE.exec(text)
  if (m !== null) {
    const code = m[0].charCodeAt(0).toString(16).toUpperCase()
    throw new InputError({
      where,
      detail: `text has a lone surrogate U+${code} at index ${m.index}: it is not Unicode and has no UTF-8 form (send bytes as {"base64": …})`
    })
  }
  return utf8(text)
}

const keyText = (key: string): string => {
  const text = keyToUtf8(key)
  return text === undefined || text.startsWith("base64:") ? `base64:${base64(byteStringToBytes(key))}` : text
}

/** The box as one line of JSON text, members in box order; keys in `omit` (such as `_answer`) are left out. */
export const toJsonText = (box: AmpBox, omit: ReadonlyArray<string> = []): string => {
  const parts: Array<string> = []
  for (const [key, value] of box) {
    if (omit.includes(key)) continue
    const text = decodeUtf8(value)
    parts.push(`${JSON.stringify(keyText(key))}:${text !== undefined ? JSON.stringify(text) : `{"base64":${JSON.stringify(base64(value))}}`}`)
  }
  return `{${parts.join(",")}}`
}

/** A key as `decode` prints it, back to its byte string, checked against AMP's limits. */
export const keyFromText = (text: string, where: string): string => {
  const bytes = text.startsWith("base64:") ? fromBase64(text.slice(7), `${where}, key ${JSON.stringify(text)}`) : utf8Strict(text, `${where}, key ${quoteKey(text)}`)
  if (bytes.length === 0) {
    throw new InputError({ where, detail: "an AMP key cannot be empty (the empty key ends a box)" })
  }
  if (bytes.length > MAX_KEY_BYTES) {
    throw new InputError({
      where,
      detail: `key ${JSON.stringify(text.slice(0, 40) + (text.length > 40 ? "…" : ""))} is ${bytes.length} bytes; AMP keys are at most ${MAX_KEY_BYTES} bytes`
    })
  }
  return bytesToByteString(bytes)
}

/** Checks a value's length; `where` names its key. */
export const checkValue = (bytes: Uint8Array, where: string): Uint8Array => {
  if (bytes.length > MAX_VALUE_BYTES) {
    throw new InputError({
      where,
      detail: `the value is ${bytes.length} bytes; AMP values are at most ${MAX_VALUE_BYTES} bytes (a Twisted BigString splits longer ones over several keys)`
    })
  }
  return bytes
}

/** Whether `v` is `{"base64": "…"}`. */
export const isBase64Value = (v: Json.Json): v is { _tag: "object"; members: readonly [readonly ["base64", { _tag: "string"; value: string }]] } =>
  v._tag === "object" && v.members.length === 1 && v.members[0]![0] === "base64" && v.members[0]![1]._tag === "string"

/**
 * A box from a JSON object in `decode`'s shape: values are strings or
 * `{"base64": …}`. Throws {@link InputError}.
 */
export const fromJson = (
  json: Json.Json,
  where: string,
  value: (v: Json.Json, where: string) => Uint8Array = decodeShapeValue
): AmpBox => {
  if (json._tag !== "object") throw new InputError({ where, detail: `a box is a JSON object, not ${Json.describe(json)}` })
  const seen = new Set<string>()
  const entries: Array<readonly [string, Uint8Array]> = []
  for (const [k, v] of json.members) {
    const key = keyFromText(k, where)
    if (seen.has(key)) throw new InputError({ where, detail: `key ${JSON.stringify(k)} appears twice; a box holds each key once` })
    seen.add(key)
    const at = `${where}, key ${quoteKey(k)}`
    entries.push([key, checkValue(value(v, at), at)])
  }
  return fromEntries(entries)
}

/** A value as `decode` prints it: a string, or `{"base64": …}`. */
export const decodeShapeValue = (v: Json.Json, where: string): Uint8Array => {
  if (v._tag === "string") return utf8Strict(v.value, where)
  if (isBase64Value(v)) return fromBase64(v.members[0][1].value, where)
  throw new InputError({ where, detail: `a value is a string or {"base64": "…"}, not ${Json.describe(v)}` })
}

