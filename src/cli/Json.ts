/**
 * A JSON reader for the command's input that keeps what `JSON.parse` loses:
 * object members in the order written (`JSON.parse` puts keys such as `"2"`
 * first) and the text of every number (`12345678901234567890` stays exact).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/** A JSON value as written. */
export type Json =
  | { readonly _tag: "string"; readonly value: string }
  | { readonly _tag: "number"; readonly text: string }
  | { readonly _tag: "boolean"; readonly value: boolean }
  | { readonly _tag: "null" }
  | { readonly _tag: "array"; readonly items: ReadonlyArray<Json> }
  | { readonly _tag: "object"; readonly members: ReadonlyArray<readonly [string, Json]> }

/** Input that is not JSON, with the character offset where reading stopped. */
export class JsonSyntaxError extends Data.TaggedError("JsonSyntaxError")<{ readonly detail: string; readonly offset: number }> {
  override get message(): string {
    return `${this.detail} at character ${this.offset}`
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y
const WS = /[ \t\n\r]*/y

/** Reads one JSON value (the whole text). Throws {@link JsonSyntaxError}. */
export const parse = (text: string): Json => {
  let at = 0
  const ws = () => {
    WS.lastIndex = at
    WS.exec(text)
    at = WS.lastIndex
  }
  const fail = (detail: string): never => {
    throw new JsonSyntaxError({ detail, offset: at })
  }
  const string = (): string => {
    // JSON.parse reads the escapes; we only find where the string ends.
    const start = at
    at++
    while (at < text.length && text[at] !== '"') at += text[at] === "\\" ? 2 : 1
    if (at >= text.length) fail("unterminated string")
    at++
    try {
      return JSON.parse(text.slice(start, at)) as string
    } catch (e) {
      at = start
      return fail(`bad string (${(e as Error).message})`)
    }
  }
  const value = (depth: number): Json => {
    if (depth > 512) fail("nested too deeply")
    ws()
    const c = text[at]
    if (c === '"') return { _tag: "string", value: string() }
    if (c === "{") {
      at++
      const members: Array<readonly [string, Json]> = []
      ws()
      if (text[at] === "}") {
        at++
        return { _tag: "object", members }
      }
      for (;;) {
        ws()
        if (text[at] !== '"') fail("expected a member name")
        const key = string()
        ws()
        if (text[at] !== ":") fail("expected ':'")
        at++
        members.push([key, value(depth + 1)])
        ws()
        if (text[at] === ",") {
          at++
          continue
        }
        if (text[at] === "}") {
          at++
          return { _tag: "object", members }
        }
        fail("expected ',' or '}'")
      }
    }
    if (c === "[") {
      at++
      const items: Array<Json> = []
      ws()
      if (text[at] === "]") {
        at++
        return { _tag: "array", items }
      }
      for (;;) {
        items.push(value(depth + 1))
        ws()
        if (text[at] === ",") {
          at++
          continue
        }
        if (text[at] === "]") {
          at++
          return { _tag: "array", items }
        }
        fail("expected ',' or ']'")
      }
    }
    for (const [word, v] of [["true", { _tag: "boolean", value: true }], ["false", { _tag: "boolean", value: false }], [
      "null",
      { _tag: "null" }
    ]] as const) {
      if (text.startsWith(word, at)) {
        at += word.length
        return v
      }
    }
    NUMBER.lastIndex = at
    const m = NUMBER.exec(text)
    if (m !== null) {
      at = NUMBER.lastIndex
      return { _tag: "number", text: m[0] }
    }
    return fail(at >= text.length ? "unexpected end of input" : `unexpected ${JSON.stringify(text[at])}`)
  }
  const v = value(0)
  ws()
  if (at < text.length) fail("unexpected text after the value")
  return v
}

/** What a value is, for messages: `a string`, `an array`... */
export const describe = (v: Json): string =>
  v._tag === "array" || v._tag === "object" ? `an ${v._tag}` : v._tag === "null" ? "null" : `a ${v._tag}`
