/**
 * `call --module`: a command's signature checks the arguments before they
 * are sent, and types the answer for printing.
 *
 * @since 0.1.0
 */
import type { AmpBox } from "../AmpBox.js"
import { pythonFloatRepr } from "../Argument.js"
import type { Argument } from "../Argument.js"
import type * as Command from "../Command.js"
import { base64, InputError } from "./BoxJson.js"
import { describe } from "../internal/messages.js"

/**
 * Checks a request box against `command`'s arguments: every required one is
 * there and reads as its type, and nothing else is sent. Throws
 * {@link InputError} naming the argument.
 */
export const checkArguments = (command: Command.Any, box: AmpBox, where: string): void => {
  const known = new Set(Object.keys(command.arguments))
  for (const [wire, argument] of Object.entries<Argument<unknown>>(command.arguments)) {
    let value: unknown
    try {
      value = argument.fromBox(box, wire)
    } catch (e) {
      throw new InputError({ where, detail: `${command.name}'s argument ${JSON.stringify(wire)} is ${argument.typeName}: ${describe(e)}` })
    }
    if (value === undefined && !argument.optional) {
      throw new InputError({ where, detail: `${command.name} needs the argument ${JSON.stringify(wire)} (${argument.typeName})` })
    }
  }
  for (const key of box.keys()) {
    // Multi-key arguments (BigString) spread over `key`, `key.2`...: accept their parts.
    const base = key.replace(/\.\d+$/, "")
    if (key === "_command" || known.has(key) || known.has(base)) continue
    throw new InputError({
      where,
      detail: `${command.name} has no argument ${JSON.stringify(key)} (its arguments: ${[...known].join(", ") || "none"})`
    })
  }
}

/** A decoded argument value as JSON text: integers exact, floats as Python writes them, bytes as `{"base64": …}`. */
export const valueToJson = (v: unknown): string => {
  if (typeof v === "bigint") return v.toString()
  if (typeof v === "number") return Number.isFinite(v) ? pythonFloatRepr(v) : JSON.stringify(pythonFloatRepr(v))
  if (typeof v === "string" || typeof v === "boolean") return JSON.stringify(v)
  if (v instanceof Uint8Array) return `{"base64":${JSON.stringify(base64(v))}}`
  if (Array.isArray(v)) return `[${v.map(valueToJson).join(",")}]`
  if (v === undefined || v === null) return "null"
  if (typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    return `{${Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => `${JSON.stringify(k)}:${valueToJson(x)}`).join(",")}}`
  }
  // Decimal, DateTime: their text, as Twisted writes it on the wire.
  return JSON.stringify(String(v))
}

/** The answer box read with `command`'s response types, as JSON text; a field that does not read is an error. */
export const answerToJson = (command: Command.Any, box: AmpBox): string => {
  const parts: Array<string> = []
  for (const [wire, argument] of Object.entries<Argument<unknown>>(command.response)) {
    let value: unknown
    try {
      value = argument.fromBox(box, wire)
    } catch (e) {
      throw new InputError({ where: "the answer", detail: `${command.name}'s response field ${JSON.stringify(wire)} is not ${argument.typeName}: ${describe(e)}` })
    }
    if (value !== undefined) parts.push(`${JSON.stringify(wire)}:${valueToJson(value)}`)
  }
  return `{${parts.join(",")}}`
}
