/**
 * Typed values for `call`: a JSON value to the bytes Twisted's argument
 * types put on the wire, without knowing the command's signature.
 *
 * | JSON | AMP bytes | fits |
 * |---|---|---|
 * | `"text"` | UTF-8 | Unicode, String, Path |
 * | `42`, `-1.5e3` | the number as written | Integer, Float, Decimal |
 * | `true` / `false` | `True` / `False` | Boolean |
 * | `{"base64": "…"}` | those bytes | String |
 * | `[1, "a", …]` | each item's bytes with a 2-byte length (ListOf) | ListOf(…) |
 * | `[{…}, {…}]` | each object as a box (AmpList) | AmpList([…]) |
 *
 * @since 0.1.0
 */
import { encodeBox } from "../BoxCodec.js"
import { checkValue, fromBase64, fromJson, InputError, isBase64Value, utf8Strict } from "./BoxJson.js"
import { concatBytes } from "../internal/bytes.js"
import * as Json from "./Json.js"


/** The AMP bytes of a JSON value (table above). Throws {@link InputError} naming `where`. */
export const toBytes = (v: Json.Json, where: string): Uint8Array => {
  switch (v._tag) {
    case "string":
      return utf8Strict(v.value, where)
    case "number":
      return Buffer.from(v.text, "latin1")
    case "boolean":
      return Buffer.from(v.value ? "True" : "False", "latin1")
    case "null":
      throw new InputError({ where, detail: "null has no AMP form: leave an optional argument out instead" })
    case "object":
      if (isBase64Value(v)) return fromBase64(v.members[0][1].value, where)
      throw new InputError({ where, detail: 'an object is one AmpList item: give a list of objects ([{…}]), or bytes as {"base64": "…"}' })
    case "array": {
      if (v.items.length > 0 && v.items.every((x) => x._tag === "object" && !isBase64Value(x))) {
        return concatBytes(v.items.map((x, i) => encodeBox(fromJson(x, `${where}[${i}]`, toBytes))))
      }
      return concatBytes(v.items.map((x, i) => {
        const at = `${where}[${i}]`
        if (x._tag === "object" && !isBase64Value(x)) {
          throw new InputError({ where: at, detail: "a list mixes objects (AmpList items) with other values" })
        }
        const bytes = checkValue(toBytes(x, at), at)
        const prefix = new Uint8Array([bytes.length >>> 8, bytes.length & 0xff])
        return concatBytes([prefix, bytes])
      }))
    }
  }
}
