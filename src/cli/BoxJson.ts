/**
 * Boxes as JSON for people reading them: a value is its UTF-8 text when the
 * bytes are valid UTF-8, otherwise `{"base64": "…"}`; a key that is not
 * UTF-8 is `"base64:…"`.
 *
 * @since 0.1.0
 */
import { type AmpBox, byteStringToBytes, decodeUtf8, keyToUtf8 } from "../AmpBox.js"

/** One JSON value per box value. */
export type JsonValue = string | { readonly base64: string }

const base64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")

/** The box as a JSON object, keys in box order; `omit` drops keys such as `_answer`. */
export const toJson = (box: AmpBox, omit: ReadonlyArray<string> = []): Record<string, JsonValue> => {
  const out: Record<string, JsonValue> = {}
  for (const [key, value] of box) {
    if (omit.includes(key)) continue
    const k = keyToUtf8(key) ?? `base64:${base64(byteStringToBytes(key))}`
    const text = decodeUtf8(value)
    out[k] = text ?? { base64: base64(value) }
  }
  return out
}
